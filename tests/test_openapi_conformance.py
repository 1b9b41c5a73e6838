"""The OpenAPI spec tells the truth: schemathesis (`--checks all`, bounded examples, the
coverage, fuzzing and stateful phases) over every operation of a real server on the offline
defaults finds no failure. Uploads carry real speech (tests/schemathesis/hooks.py), so the
2xx answers are checked against the spec as well as the errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ServerFactory

HERE = Path(__file__).resolve().parent / "schemathesis"

pytestmark = pytest.mark.e2e


def test_schemathesis_finds_no_failure(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{server.url}/openapi.json",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": str(HERE)}
    run = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-4000:]
