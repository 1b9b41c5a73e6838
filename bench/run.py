"""Benchmark the service against the engines underneath it; prints Markdown tables.

    uv run --frozen python bench/run.py                 # everything, on CPU (~40 min, 2 cores)
    uv run --frozen python bench/run.py --smoke         # seconds: one tiny clip, tiny.en
    uv run --frozen python bench/run.py --sections speed --models tiny.en --clips 30s

Not part of the test suite (tests/test_bench_smoke.py only checks that it still runs).
See bench/RESULTS.md for recorded numbers and how they were taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python bench/run.py` puts bench/ on the path; the service's own code lives at the root.
sys.path.insert(0, str(ROOT))

from clips import OUT, clip  # noqa: E402
from load import memory_section, throughput_section  # noqa: E402
from report import Table, header, loadavg  # noqa: E402
from runners import Engine  # noqa: E402
from speed import SpeedPlan, configs_section, speed_section  # noqa: E402

from app.config import Settings  # noqa: E402
from app.models.hub import HubClient  # noqa: E402
from app.models.registry import ModelRegistry  # noqa: E402

SECTIONS = ("speed", "configs", "memory", "load")


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ints(text: str) -> list[int]:
    return [int(item) for item in _list(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="one tiny clip, tiny.en, one run")
    p.add_argument("--sections", default=",".join(SECTIONS), help="subset of " + ",".join(SECTIONS))
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--clips", default="30s,5min,30min,pyannote", help="30s,5min,30min,pyannote,jfk")
    p.add_argument("--runs", type=int, default=3, help="timed runs per clip, after a warm-up")
    p.add_argument("--long-runs", type=int, default=2, help="timed runs for clips over 10 min")
    p.add_argument("--device", default="auto", help="DEVICE: auto, cpu, cuda")
    p.add_argument("--compute-type", default="auto", help="COMPUTE_TYPE for speed/memory/load")
    p.add_argument("--batch-sizes", default="8", help="batched-pipeline sizes in the speed table")
    p.add_argument(
        "--config-compute-types",
        default=None,
        help="default: int8,float32 on CPU, float16,int8_float16 on CUDA",
    )
    p.add_argument("--config-batch-sizes", default=None, help="default: 1,8 (CPU), 1,8,16 (CUDA)")
    p.add_argument("--config-clips", default="5min")
    p.add_argument("--growth-requests", type=int, default=50)
    p.add_argument("--short-clip", default="jfk", help="clip of the memory and load sections")
    p.add_argument("--clients", default="1,2,4,8")
    p.add_argument("--gpu-concurrency", default="1,2")
    p.add_argument("--requests-per-client", type=int, default=3)
    p.add_argument("--diarize", action="store_true", help="ask /asr for speaker labels too")
    p.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="folder of CTranslate2 models by name (MODELS_DIR), e.g. on a GPU host",
    )
    p.add_argument("--machine-label", default=None, help="name the machine in the header")
    p.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = p.parse_args(argv)
    if args.smoke:
        args.sections, args.models, args.clips = "speed", "tiny.en", "jfk"
        args.runs, args.long_runs, args.batch_sizes = 1, 1, "2"
    return args


def resolve_models(names: list[str], cache_dir: Path, models_dir: Path | None) -> dict[str, str]:
    """Model folders exactly as the service finds them (bundled packages, MODELS_DIR)."""
    settings = Settings(cache_dir=cache_dir, models_dir=models_dir, hf_hub_offline=True)
    registry = ModelRegistry(settings, HubClient(settings))
    return {name: str(registry.resolve(name).path) for name in names}


def _done(tables: list[Table], table: Table, json_path: Path | None) -> None:
    """Print each section as it finishes and keep the JSON current, so a run cut short (a
    time limit on a lent machine) still leaves every finished section behind."""
    tables.append(table)
    print(table.markdown(), flush=True)
    if json_path:
        json_path.write_text(json.dumps({t.title: t.as_dicts() for t in tables}, indent=2))


def run(args: argparse.Namespace) -> tuple[str, list[Table]]:
    started_load = loadavg()
    sections = _list(args.sections)
    engine = Engine.resolve(args.device, args.compute_type)
    cuda = engine.device == "cuda"
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / "service.log"
    log_path.write_text("")
    env = {"DEVICE": engine.device, "COMPUTE_TYPE": engine.compute_type, "BATCH_SIZE": "1"}
    if args.models_dir:
        env["MODELS_DIR"] = str(args.models_dir)
    tables: list[Table] = []
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        cache = Path(tmp)
        models = _list(args.models)
        plan = SpeedPlan(
            models=models,
            model_paths=resolve_models(models, cache, args.models_dir),
            engine=engine,
            clips=[clip(name) for name in _list(args.clips)],
            batch_sizes=_ints(args.batch_sizes),
            runs=args.runs,
            long_runs=args.long_runs,
            cache_dir=cache,
            log_path=log_path,
            diarize=args.diarize,
            service_env={k: v for k, v in env.items() if k == "MODELS_DIR"},
        )
        if "speed" in sections:
            _done(tables, speed_section(plan), args.json)
        if "configs" in sections:
            computes = args.config_compute_types or (
                "float16,int8_float16" if cuda else "int8,float32"
            )
            batches = args.config_batch_sizes or ("1,8,16" if cuda else "1,8")
            plan.clips = [clip(name) for name in _list(args.config_clips)]
            _done(tables, configs_section(plan, _list(computes), _ints(batches)), args.json)
        short = clip(args.short_clip)
        if "memory" in sections:
            table = memory_section(models[0], short, args.growth_requests, cache, log_path, env)
            _done(tables, table, args.json)
        if "load" in sections:
            _done(
                tables,
                throughput_section(
                    models[0],
                    short,
                    _ints(args.clients),
                    _ints(args.gpu_concurrency),
                    args.requests_per_client,
                    cache,
                    log_path,
                    env,
                ),
                args.json,
            )
    return header(args.machine_label, started_load), tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    head, tables = run(args)
    # The full report last: header (machine, commit, load) and every table, ready to paste.
    print("=" * 30 + " report " + "=" * 30)
    print("\n".join([head, *(t.markdown() for t in tables)]))
    print(f"(bench took {time.perf_counter() - began:.0f} s)", flush=True)
    if args.json:
        payload = {"header": head, "tables": {t.title: t.as_dicts() for t in tables}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
