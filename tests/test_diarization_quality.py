"""The offline diarization pipeline on real and synthetic conversations, scored with
pyannote.metrics' DER (0.25 s collar) against reference turns."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from audio_tools import CONVERSATION, FIXTURES, conversation_turns, pyannote_sample

from app.config import Settings
from app.diarization.diarizer import Diarization
from app.diarization.service import DiarizationService
from app.domain import Audio, SpeakerLimits
from app.models.cache import ModelCache
from app.models.hub import HubClient
from app.pipeline.decode import decode_file, decode_to_pcm
from app.pipeline.diarize import diarize_recording
from app.pipeline.pcm import SAMPLE_RATE
from app.pipeline.vad import SpeechRegion

pytestmark = pytest.mark.e2e
CONVERSATION3 = FIXTURES / "conversation3.flac"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> DiarizationService:
    settings = Settings(
        _env_file=None,
        cache_dir=tmp_path_factory.mktemp("d"),
        hf_hub_offline=True,
        diarization_model="offline",
    )
    return DiarizationService(settings, HubClient(settings), ModelCache(), "cpu")


def der(reference: list[tuple[float, float, str]], hypothesis: Diarization) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for start, end, label in reference:
        ref[Segment(start, end)] = label
    for turn in hypothesis.turns:
        hyp[Segment(turn.start_ms / 1000, turn.end_ms / 1000)] = turn.speaker
    return float(DiarizationErrorRate(collar=0.25)(ref, hyp))


def run(service: DiarizationService, path: Path, **limits: int) -> Diarization:
    result = service.diarize(decode_file(path), SpeakerLimits(**limits))
    assert result.diarization is not None, result.notes
    return result.diarization


def test_pyannote_sample_der_under_10_percent(service: DiarizationService) -> None:
    wav, _ = pyannote_sample()
    rttm = wav.with_suffix(".rttm").read_text().splitlines()
    reference = [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in map(str.split, rttm)]
    run(service, wav)  # warm-up: loads the pipeline
    started = time.perf_counter()
    diarization = run(service, wav)
    elapsed = time.perf_counter() - started
    score = der(reference, diarization)
    print(f"\npyannote sample: DER {score:.3f}, {elapsed:.2f} s for 30 s of audio")
    assert score < 0.10
    assert len({t.speaker for t in diarization.turns}) == 2


@pytest.mark.parametrize(("path", "speakers"), [(CONVERSATION, 2), (CONVERSATION3, 3)])
def test_synthetic_conversations(service: DiarizationService, path: Path, speakers: int) -> None:
    turns = conversation_turns(path.stem)
    diarization = run(service, path)
    score = der([(t.start, t.end, t.speaker) for t in turns], diarization)
    print(f"\n{path.name}: DER {score:.3f}")
    # The reference turns include the TTS engine's own leading and trailing silence, which
    # counts as missed speech: 10 % bounds that and any real confusion.
    assert score < 0.10
    assert len({t.speaker for t in diarization.turns}) == speakers
    embeddings = diarization.embeddings
    assert len(embeddings) == speakers and all(len(v) == 192 for v in embeddings.values())


@pytest.mark.parametrize("seed", [2, 4])
def test_a_short_turn_between_another_voice_gets_its_own_speaker(
    service: DiarizationService, seed: int
) -> None:
    # The two real women of pyannote's sample and a third (male, flite awb) voice, cut at
    # their pauses and re-joined as a quick conversation by the development set's own mixer
    # (bench/diar_mixes.py). segmentation-3.0 puts some of the man's 2 s phrases into the
    # same local speaker as the woman around them in most of the chunks that see them, so
    # the pipeline alone names them after her (DER 6.0 % and 9.7 % on these two seeds); each
    # turn embedded on its own and moved to its nearest speaker gets them right (0.5 %, 2.2 %).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from diar_mixes import real_conversation, sample_pieces, spoken_phrases

    wav, _ = pyannote_sample()
    pieces = sample_pieces(wav, wav.with_suffix(".rttm"))
    pieces += [("awb", phrase) for phrase in spoken_phrases(FIXTURES / "voice_awb.flac")]
    mix, reference = real_conversation(pieces, 24, seed)
    result = service.diarize(Audio(mix.astype(np.float32)), SpeakerLimits())
    assert result.diarization is not None, result.notes
    score = der([(start, end, speaker) for speaker, start, end in reference], result.diarization)
    print(f"\nreal voices + awb, seed {seed}: DER {score:.3f}")
    assert score < 0.03
    assert len({t.speaker for t in result.diarization.turns}) == 3


def test_speaker_count_limits(service: DiarizationService) -> None:
    assert len({t.speaker for t in run(service, CONVERSATION3, num_speakers=1).turns}) == 1
    assert len({t.speaker for t in run(service, CONVERSATION3, max_speakers=2).turns}) <= 2
    assert len({t.speaker for t in run(service, CONVERSATION, min_speakers=3).turns}) >= 3


def test_failure_is_a_note_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.diarization.service as module

    def broken(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("segmentation weights missing")

    monkeypatch.setattr(module, "build_offline", broken)
    settings = Settings(_env_file=None, cache_dir=tmp_path, diarization_model="offline")
    service = DiarizationService(settings, HubClient(settings), ModelCache(), "cpu")
    result = service.diarize(decode_file(CONVERSATION), SpeakerLimits())
    assert result.diarization is None
    assert result.notes and "segmentation weights missing" in result.notes[0]


def test_speakers_are_linked_across_spans(service: DiarizationService, tmp_path: Path) -> None:
    # conversation3 (slt, awb, rms, slt, awb, rms) diarized in spans of at most 6 s, as a
    # long recording is in spans of 5 minutes: each turn is a span of its own, so only the
    # linking, at the pipeline's own threshold, can give each voice one label, and it must
    # keep the three voices apart with nothing but their embeddings.
    pcm = decode_to_pcm(CONVERSATION3, tmp_path / "c3.pcm")
    turns = conversation_turns("conversation3")
    regions = [SpeechRegion(int(t.start * SAMPLE_RATE), int(t.end * SAMPLE_RATE)) for t in turns]
    result = diarize_recording(
        service, pcm, regions, SpeakerLimits(), lambda _: None, 6 * SAMPLE_RATE
    )
    assert result.diarization is not None, result.notes
    found = result.diarization

    def label_of(start: float, end: float) -> str:
        turn = max(
            found.turns, key=lambda t: min(end * 1000, t.end_ms) - max(start * 1000, t.start_ms)
        )
        return turn.speaker

    labels: dict[str, set[str]] = {t.speaker: set() for t in turns}
    for t in turns:
        labels[t.speaker].add(label_of(t.start, t.end))
    assert all(len(v) == 1 for v in labels.values()), labels
    assert len({next(iter(v)) for v in labels.values()}) == 3, labels
    assert len({t.speaker for t in found.turns}) == 3
