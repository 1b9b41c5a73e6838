"""Speed and accuracy, side by side: the service, faster-whisper in-process and its batched
pipeline on the same clips, runs interleaved so that load from other processes on the
machine falls on all runners alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from audio_tools import wer
from clips import Clip, jfk_clip
from report import Samples, Table
from runners import Engine, InProcessRunner
from service import Service, ServiceRunner

COLUMNS = [
    "model",
    "compute",
    "clip",
    "runner",
    "batch",
    "n",
    "wall s (median)",
    "min-max",
    "RTF",
    "÷ in-process",
    "service peak RSS MiB",
    "WER vs script",
    "WER vs in-process",
    "stage shares (service)",
]


PIPELINE_ORDER = ("decode", "vad+asr", "align", "diarize")


class Runner(Protocol):
    label: str
    batch_size: int

    def transcribe(self, clip: Clip) -> tuple[float, str]: ...


@dataclass
class Result:
    walls: Samples = field(default_factory=Samples)
    texts: list[str] = field(default_factory=list)
    peaks: Samples = field(default_factory=Samples)
    stages: list[dict[str, float]] = field(default_factory=list)


def measure(runners: list[Runner], clips: list[Clip], runs: int, long_runs: int) -> dict:
    """{(runner index, clip name): Result}. One untimed warm-up per runner first (model load,
    allocator growth, first-call set-up), then `runs` rounds over all runners per clip."""
    warm = jfk_clip()
    for runner in runners:
        runner.transcribe(warm)
    results: dict[tuple[int, str], Result] = {}
    for clip in clips:
        rounds = long_runs if clip.duration_s > 600 else runs
        for _ in range(rounds):
            for i, runner in enumerate(runners):
                wall, text = runner.transcribe(clip)
                result = results.setdefault((i, clip.name), Result())
                result.walls.add(wall)
                result.texts.append(text)
                if isinstance(runner, ServiceRunner):
                    result.peaks.add(runner.last_peak_mib)
                    result.stages.append(runner.last_stages)
    return results


def stage_shares(result: Result) -> str:
    """Median share of the request's wall time spent in each stage; the rest is HTTP, the
    upload, queueing and writing the response."""
    if not result.stages:
        return "-"
    seen = {k for stages in result.stages for k in stages}
    names = [s for s in PIPELINE_ORDER if s in seen] + sorted(seen - set(PIPELINE_ORDER))
    parts = []
    for name in names:
        shares = Samples(
            [s.get(name, 0.0) / w for s, w in zip(result.stages, result.walls.values, strict=True)]
        )
        parts.append(f"{name} {shares.median:.0%}")
    other = Samples(
        [1 - sum(s.values()) / w for s, w in zip(result.stages, result.walls.values, strict=True)]
    )
    return " · ".join([*parts, f"other {other.median:.0%}"])


def _wer_cell(reference: str, hypothesis: str) -> str:
    if reference == hypothesis:
        return "0.0% (same text)"
    return f"{wer(reference, hypothesis):.1%}"


def add_rows(
    table: Table,
    model: str,
    engine: Engine,
    runners: list[Runner],
    clips: list[Clip],
    results: dict,
    baselines: dict[str, float],
) -> None:
    """One row per runner and clip; `baselines` maps a clip to the in-process median wall."""
    for clip in clips:
        by_label = {r.label: results[(i, clip.name)] for i, r in enumerate(runners)}
        baseline = baselines.get(clip.name)
        for i, runner in enumerate(runners):
            res = results[(i, clip.name)]
            # The library run with the same batching is what the service should reproduce.
            twin = "in-process"
            if runner.batch_size > 1:
                twin = f"in-process batched bs={runner.batch_size}"
            twin_res = by_label.get(twin) if isinstance(runner, ServiceRunner) else None
            ratio = f"{res.walls.median / baseline:.2f}" if baseline else "-"
            table.add(
                model,
                engine.compute_type,
                clip.name,
                runner.label,
                runner.batch_size,
                len(res.walls.values),
                f"{res.walls.median:.2f}",
                res.walls.spread(),
                f"{res.walls.median / clip.duration_s:.3f}",
                ratio,
                f"{max(res.peaks.values):.0f}" if res.peaks.values else "-",
                f"{wer(clip.reference, res.texts[0]):.1%}",
                _wer_cell(twin_res.texts[0], res.texts[0]) if twin_res else "-",
                stage_shares(res),
            )


@dataclass
class SpeedPlan:
    models: list[str]
    model_paths: dict[str, str]
    engine: Engine
    clips: list[Clip]
    batch_sizes: list[int]
    runs: int
    long_runs: int
    cache_dir: Path
    log_path: Path
    diarize: bool = False
    service_env: dict[str, str] = field(default_factory=dict)


def _service(plan: SpeedPlan, model: str, engine: Engine, batch: int) -> Service:
    return Service(
        model,
        plan.cache_dir,
        plan.log_path,
        {
            "DEVICE": engine.device,
            "COMPUTE_TYPE": engine.compute_type,
            "BATCH_SIZE": str(batch),
            "GPU_CONCURRENCY": "1",
            **plan.service_env,
        },
    )


def speed_section(plan: SpeedPlan) -> Table:
    """Every model on every clip: service (BATCH_SIZE=1), in-process, batched pipeline."""
    table = Table("Speed and accuracy per model and clip", list(COLUMNS))
    for model in plan.models:
        with _service(plan, model, plan.engine, 1) as service:
            runners: list[Runner] = [
                ServiceRunner(service, diarize=plan.diarize),
                InProcessRunner(plan.model_paths[model], plan.engine),
            ]
            runners += [
                InProcessRunner(plan.model_paths[model], plan.engine, bs) for bs in plan.batch_sizes
            ]
            results = measure(runners, plan.clips, plan.runs, plan.long_runs)
            add_rows(table, model, plan.engine, runners, plan.clips, results, _baselines(results))
    return table


def _baselines(results: dict) -> dict[str, float]:
    """Clip name -> median wall of the sequential in-process runner (runner index 1)."""
    return {clip: res.walls.median for (i, clip), res in results.items() if i == 1}


def configs_section(plan: SpeedPlan, compute_types: list[str], service_batches: list[int]) -> Table:
    """The service's BATCH_SIZE and COMPUTE_TYPE, each next to the library run with the same
    settings (WhisperModel for 1, the batched pipeline for more), on the first model."""
    model = plan.models[0]
    table = Table(f"BATCH_SIZE and COMPUTE_TYPE ({model})", list(COLUMNS))
    # Batch 1 first: its library run is the baseline of the ratio column for the others.
    batches = sorted({1, *service_batches})
    for compute in compute_types:
        engine = Engine(plan.engine.device, compute, plan.engine.cpu_threads)
        baselines: dict[str, float] = {}
        for batch in batches:
            with _service(plan, model, engine, batch) as service:
                runners: list[Runner] = [
                    ServiceRunner(service, diarize=plan.diarize),
                    InProcessRunner(plan.model_paths[model], engine, batch),
                ]
                results = measure(runners, plan.clips, plan.runs, plan.long_runs)
                baselines = baselines or _baselines(results)
                add_rows(table, model, engine, runners, plan.clips, results, baselines)
    return table
