"""What crashes leave on disk is swept at start-up: work folders of replicas that were
killed on this node (a SIGKILL runs no exit code), and uploads no job owns."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from app.config import Settings
from app.jobs.store import QUEUED, Job, JobStore
from app.jobs.worker import JobWorker
from app.stack import claim_work_folder


def test_work_folders_of_killed_processes_on_this_host_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    host = socket.gethostname()
    owners = {
        "killed-replica": f"{host} {dead.pid}",
        "live-replica": f"{host} {os.getpid()}",
        "other-node": f"another-host {dead.pid}",
    }
    for name, owner in owners.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / ".owner").write_text(owner)
        (tmp_path / name / "audio.pcm").write_bytes(b"\0" * 1024)
    removed = claim_work_folder(tmp_path / "me")
    assert removed == [tmp_path / "killed-replica"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live-replica", "me", "other-node"]
    assert (tmp_path / "me" / ".owner").read_text() == f"{host} {os.getpid()}"


def test_uploads_no_job_owns_are_removed_once_old(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    settings = Settings(_env_file=None, data_dir=tmp_path)
    none = cast(Any, None)
    worker = JobWorker(settings, store, none, none, none)
    uploads = worker.uploads
    for name in ("owned", "orphan", "fresh-orphan", "requests"):
        (uploads / name).mkdir(parents=True)
    (uploads / "requests" / "asr-upload-old.wav").write_bytes(b"x")
    store.add(Job("owned", QUEUED, time.time(), "a.wav", str(uploads / "owned" / "a"), "{}"))
    old = time.time() - 7 * 3600
    for path in (uploads / "owned", uploads / "orphan", uploads / "requests"):
        os.utime(path, (old, old))
    os.utime(uploads / "requests" / "asr-upload-old.wav", (old, old))
    removed = worker.sweep_orphaned_uploads()
    assert sorted(p.name for p in removed) == ["asr-upload-old.wav", "orphan"]
    assert sorted(p.name for p in uploads.iterdir()) == ["fresh-orphan", "owned", "requests"]
    store.close()
