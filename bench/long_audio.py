"""Memory and time against recording length, through the service's /asr over HTTP.

Each row is one request on a fresh peak: the server's peak resident memory (VmHWM, reset just
before the request) and the wall time, for TTS speech of 10 min, 60 min and 3 h (the bench's
TTS clips: read sentences with pauses, several voices) and for 3 h of silence in a small
Opus file. `--before REV` runs the same rows on an older commit (from a git worktree, with
this checkout's environment) in the same run, for a before/after table.

    uv run --frozen python bench/long_audio.py --models tiny.en,base --lengths 10min,60min,3h \
        --diarize --before 40b7213
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from clips import OUT, ROOT, silent_opus, tts_clip
from report import Table, header, loadavg
from service import Service


def worktree(rev: str) -> Path:
    path = OUT / f"worktree-{rev}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True)
    return path


def measure(service: Service, audio: Path, diarize: bool) -> tuple[float, float, int, int, str]:
    """(wall s, peak MiB, segments, speakers, notes) of one /asr request."""
    service.reset_peak()
    started = time.perf_counter()
    with audio.open("rb") as f:
        response = service.client.post(
            "/asr",
            params={"model": service.model, "diarize": str(diarize).lower(), "output": "json"},
            files={"audio_file": (audio.name, f)},
        )
    wall = time.perf_counter() - started
    response.raise_for_status()
    body = response.json()
    notes = "; ".join(body.get("notes") or [])
    speakers = len(body.get("speakers") or [])
    return wall, service.peak_rss_mib(), len(body["segments"]), speakers, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--lengths", default="10min,60min,3h")
    parser.add_argument("--diarize", action="store_true")
    parser.add_argument("--silence", action="store_true", help="add 3 h of silence (Opus)")
    parser.add_argument("--before", help="also run an older commit (e.g. 40b7213)")
    parser.add_argument("--before-lengths", help="lengths for --before (default: --lengths)")
    parser.add_argument("--machine", help="a label for the machine")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    load = loadavg()
    cache = OUT / "cache"
    table = Table(
        f"Memory and time against length (/asr, diarize={str(args.diarize).lower()})",
        [
            "code",
            "model",
            "audio",
            "upload MiB",
            "wall s",
            "x real time",
            "peak RSS MiB",
            "RSS after load MiB",
            "segments",
            "speakers",
            "notes",
        ],
    )
    audio: dict[str, tuple[Path, float]] = {}
    for name in args.lengths.split(","):
        clip = tts_clip(name)
        audio[name] = (clip.path, clip.duration_s)
    if args.silence:
        audio["3h silence"] = (silent_opus(OUT / "clips" / "silence-3h.ogg", 10800), 10800.0)
    runs: list[tuple[str, Path | None, list[str]]] = [("this", None, list(audio))]
    if args.before:
        lengths = (args.before_lengths or args.lengths).split(",")
        runs.append((args.before, worktree(args.before), [n for n in audio if n in lengths]))
    for label, root, names in runs:
        for model in args.models.split(","):
            log = OUT / f"long-audio-{label}-{model}.log"
            env = {"MAX_FILE_SIZE_MB": "2048", "LOG_LEVEL": "INFO"}
            with Service(model, cache, log, env, root=root or ROOT) as service:
                loaded = service.rss_mib()
                for name in names:
                    path, seconds = audio[name]
                    wall, peak, segments, speakers, notes = measure(service, path, args.diarize)
                    table.add(
                        label,
                        model,
                        name,
                        f"{path.stat().st_size / 1048576:.1f}",
                        f"{wall:.1f}",
                        f"{seconds / wall:.0f}",
                        f"{peak:.0f}",
                        f"{loaded:.0f}",
                        segments,
                        speakers,
                        notes or "-",
                    )
                    print(table.rows[-1], file=sys.stderr, flush=True)
    print(header(args.machine, load))
    print(table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
