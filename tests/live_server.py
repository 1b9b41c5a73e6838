"""The real service as a subprocess on a free port, over real HTTP: the one harness the
end-to-end tests and the benchmarks share (tests/conftest.py, bench/service.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`uvicorn app.main:app` with `env` on top of ours; offline, its own DATA_DIR."""

    def __init__(self, log_path: Path, env: Mapping[str, str], *, root: Path = ROOT) -> None:
        """`root`: the checkout to serve (the bench runs an older commit from a worktree)."""
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            # Tests and benchmarks behave the same on a machine with internet: no downloads.
            "HF_HUB_OFFLINE": "1",
            "PYANNOTE_METRICS_ENABLED": "false",
            "LOG_LEVEL": "INFO",
            "DATA_DIR": str(log_path.parent / "data"),
            **env,
        }
        self._log = log_path.open("ab")
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env}
        if self.env.get("SERVE_MODE") == "ray":  # Ray Serve's proxy on our port
            command = [sys.executable, "-m", "app.serve.launch"]
            env.update(HOST="127.0.0.1", PORT=str(self.port))
        else:
            command = [sys.executable, "-m", "uvicorn", "app.main:app"]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        return subprocess.Popen(
            command,
            cwd=self.root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 300) -> LiveServer:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"server not ready:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine or the OOM killer stops it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self) -> LiveServer:
        """Start again on the same port, environment and DATA_DIR (after stop or kill)."""
        if self.process.poll() is None:
            self.stop(close_log=False)
        self.process = self._spawn()
        return self.wait_ready()

    def stop(self, *, close_log: bool = True) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if close_log:
            self._log.close()

    # --- memory (Linux /proc) ------------------------------------------------------------
    def _status_kib(self, field: str) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory since start or since the last reset_peak()."""
        return self._status_kib("VmHWM") / 1024

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so a peak belongs to one run.
        Returns False where the kernel refuses; the peak then counts from process start."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


def start_server(folder: Path, cache: Path, **env: str) -> LiveServer:
    """A ready server whose log and data live in `folder`, models cached in `cache`."""
    folder.mkdir(parents=True, exist_ok=True)
    return LiveServer(folder / "server.log", {"CACHE_DIR": str(cache), **env}).wait_ready()
