"""bench/run.py --smoke: the benchmark still runs end to end and prints the table it promises.

No timing is asserted (CI machines vary); only that every number is there and sane, and that
the service transcribes exactly what faster-whisper does in-process with the same settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What every row must name (issue 7): the model, compute type, batch size and clip, with the
# timing, speed and accuracy columns the comparison is about.
REQUIRED_COLUMNS = (
    "model",
    "compute",
    "clip",
    "runner",
    "batch",
    "wall s (median)",
    "min-max",
    "RTF",
    "÷ in-process",
    "WER vs script",
    "WER vs in-process",
)


@pytest.mark.e2e
def test_bench_smoke_prints_a_sane_table(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--json", str(out_json)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = done.stdout.split("=" * 30 + " report " + "=" * 30)[-1]
    assert "commit: " in report and " cores" in report and "load average" in report
    header_row = next(line for line in report.splitlines() if line.startswith("| model |"))
    columns = [cell.strip() for cell in header_row.strip("|").split("|")]
    assert set(REQUIRED_COLUMNS) <= set(columns), columns

    tables = json.loads(out_json.read_text())["tables"]
    rows = tables["Speed and accuracy per model and clip"]
    by_runner = {row["runner"]: row for row in rows}
    assert set(by_runner) == {"service", "in-process", "in-process batched bs=2"}
    for row in rows:
        assert row["model"] == "tiny.en" and row["clip"] == "jfk-9s" and row["n"] == "1"
        assert 0 < float(row["wall s (median)"]) < 300
        assert 0 < float(row["RTF"]) < 30
        assert float(row["÷ in-process"]) > 0
        assert float(row["WER vs script"].rstrip("%")) <= 20

    service = by_runner["service"]
    assert service["WER vs in-process"] == "0.0% (same text)"
    assert 50 < float(service["service peak RSS MiB"]) < 20000
    assert "vad+asr" in service["stage shares (service)"]
    assert by_runner["in-process"]["÷ in-process"] == "1.00"
