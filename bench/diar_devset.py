"""The diarization development set: conversations made with offline TTS voices, with
references known from how they were made, plus pyannote's real two-speaker sample.

Every file is built on first use under `bench/out/diar/` (never committed) from espeak-ng
(and flite's voices when flite is installed); the same script and seed give the same turns.
Each utterance is trimmed to its voiced samples before it is placed, so the reference turns
hold speech, not the synthesiser's own silence.

  clean-2spk     two voices taking turns (pauses of 0.3-1.2 s), ~2 minutes
  clean-4spk     four voices, short and long turns, ~2.5 minutes
  overlap-2spk   two voices; a third of the turns start 0.3-1.0 s before the other ends,
                 and short backchannels ("yeah", "right") land inside long turns
  *-phone        clean-2spk and overlap-2spk through the telephone band: 8 kHz, G.711
                 mu-law in a WAV file (what a call recorder writes)

the end-to-end tests' three short flite conversations, and, from bench/diar_mixes.py,
real-3spk (+ -phone) and broadcast-3spk: real voices that sound alike, music and street
noise. `variant_set()` makes 11 more arrangements of those two (other seeds).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from clips import SCRIPT, read_mono_16k, write_flac
from diar_mixes import broadcast, jfk_wav, real_conversation, sample_pieces, spoken_phrases

OUT = Path(__file__).resolve().parent / "out" / "diar"
RATE = 16000
_BACKCHANNELS = ("Yeah.", "Right.", "Okay.", "I see.", "Sure.")


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class DevFile:
    name: str
    path: Path
    turns: tuple[Turn, ...]

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.turns})

    @property
    def duration_s(self) -> float:
        return max(t.end for t in self.turns)


def voices() -> list[tuple[str, str, str]]:
    """(speaker label, engine, voice): espeak-ng variants of clearly different pitch and
    accent, and flite's recorded voices when flite is installed."""
    found = [
        ("A", "espeak-ng", "en-us+m3"),
        ("B", "espeak-ng", "en-gb+f2"),
        ("C", "espeak-ng", "en-us+f4"),
        ("D", "espeak-ng", "en-gb-scotland+m1"),
    ]
    if shutil.which("flite"):
        found = [("A", "flite", "kal"), ("B", "flite", "slt"), *found[2:]]
    return found


def _say(engine: str, voice: str, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "raw.wav"
        if engine == "flite":
            cmd = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        else:
            cmd = ["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True)
        samples = read_mono_16k(wav).astype(np.float32) / 32768
    voiced = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[voiced[0] : voiced[-1] + 1] if len(voiced) else samples


def _conversation(
    name: str, speakers: int, turns: int, overlap: bool, seed: int
) -> tuple[np.ndarray, list[Turn]]:
    rng = random.Random(seed)
    cast = voices()[:speakers]
    pieces: list[tuple[float, np.ndarray, str]] = []  # (start s, samples, speaker)
    at, previous = 0.5, -1
    for k in range(turns):
        choice = rng.choice([i for i in range(len(cast)) if i != previous])
        label, engine, voice = cast[choice]
        text = " ".join(rng.sample(SCRIPT, rng.choice((1, 1, 2))))
        audio = _say(engine, voice, text)
        if overlap and k and rng.random() < 1 / 3:
            start = max(0.0, at - rng.uniform(0.3, 1.0))  # cuts in before the other ends
        else:
            start = at + rng.uniform(0.3, 1.2)
        pieces.append((start, audio, label))
        end = start + len(audio) / RATE
        if overlap and len(audio) / RATE > 4 and rng.random() < 0.5:
            other = cast[(choice + 1) % len(cast)]
            nod = _say(other[1], other[2], rng.choice(_BACKCHANNELS))
            pieces.append((start + rng.uniform(1.5, len(audio) / RATE - 1.5), nod, other[0]))
        at, previous = max(at, end), choice
    total = int((max(s + len(a) / RATE for s, a, _ in pieces) + 0.5) * RATE)
    mix = np.zeros(total, dtype=np.float32)
    reference = []
    for start, audio, label in pieces:
        first = int(start * RATE)
        mix[first : first + len(audio)] += audio * 0.8
        reference.append(Turn(label, round(start, 3), round(start + len(audio) / RATE, 3)))
    return np.clip(mix, -1, 1), sorted(reference, key=lambda t: t.start)


def _phone(src: Path, dst: Path) -> None:
    """The telephone band: down to 8 kHz and G.711 mu-law (PyAV, as the service decodes)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="wav") as out:
        stream = out.add_stream("pcm_mulaw", rate=8000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        for frame in inp.decode(audio=0):
            for piece in resampler.resample(frame):
                out.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))


def _sample_wav() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "sample" / "sample.wav"


def _pyannote_sample() -> DevFile:
    wav = _sample_wav()
    rows = [line.split() for line in wav.with_suffix(".rttm").read_text().splitlines()]
    turns = tuple(Turn(f[7], float(f[3]), float(f[3]) + float(f[4])) for f in rows)
    return DevFile("pyannote-sample", wav, turns)


_RECIPES = {  # name: (speakers, turns, overlap, seed)
    "clean-2spk": (2, 24, False, 1),
    "clean-4spk": (4, 30, False, 2),
    "overlap-2spk": (2, 24, True, 3),
}


def _mixed(out: Path, name: str, make: Callable[[], tuple[np.ndarray, list]]) -> DevFile:
    flac, labels = out / f"{name}.flac", out / f"{name}.json"
    if not (flac.is_file() and labels.is_file()):
        audio, made = make()
        write_flac((audio * 32767).astype(np.int16), flac)
        labels.write_text(json.dumps([Turn(*t).__dict__ for t in made], indent=1))
    return DevFile(name, flac, tuple(Turn(**t) for t in json.loads(labels.read_text())))


def _hard_files(out: Path) -> list[DevFile]:
    """Real voices and broadcast sound (bench/diar_mixes.py); skipped without npm."""
    jfk = jfk_wav(out)
    if jfk is None:
        print("no npm: real-3spk and broadcast-3spk (they need JFK from npm) are skipped")
        return []
    wav = _sample_wav()
    pieces = sample_pieces(wav, wav.with_suffix(".rttm"))
    phrases = spoken_phrases(jfk)
    pieces += [("JFK", p) for p in phrases]
    real = _mixed(out, "real-3spk", lambda: real_conversation(pieces, 28, seed=4))
    phone = out / "real-3spk-phone.wav"
    if not phone.is_file():
        _phone(real.path, phone)
    news = _mixed(out, "broadcast-3spk", lambda: broadcast(_say, phrases, seed=5))
    return [real, DevFile("real-3spk-phone", phone, real.turns), news]


def _test_fixtures() -> list[DevFile]:
    """The end-to-end tests' short flite conversations (1 s and 0.2 s pauses)."""
    folder = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    files = []
    for name in ("conversation", "conversation3", "rapid"):
        rows = json.loads((folder / f"{name}.json").read_text())
        turns = tuple(Turn(r["speaker"], r["start"], r["end"]) for r in rows)
        files.append(DevFile(f"fixture-{name}", folder / f"{name}.flac", turns))
    return files


def variant_set(out: Path = OUT / "variants") -> list[DevFile]:
    """More arrangements of the real-voice and broadcast files (other seeds): a check that a
    choice made on the development set is not luck of one arrangement."""
    out.mkdir(parents=True, exist_ok=True)
    jfk = jfk_wav(OUT)
    if jfk is None:
        return []
    wav = _sample_wav()
    phrases = spoken_phrases(jfk)
    pieces = [*sample_pieces(wav, wav.with_suffix(".rttm")), *(("JFK", p) for p in phrases)]
    files = []
    for seed in (11, 12, 13, 14):
        real = _mixed(out, f"real-3spk-s{seed}", partial(real_conversation, pieces, 28, seed))
        phone = out / f"real-3spk-s{seed}-phone.wav"
        if not phone.is_file():
            _phone(real.path, phone)
        files += [real, DevFile(f"real-3spk-s{seed}-phone", phone, real.turns)]
    for seed in (21, 22, 23):
        files.append(_mixed(out, f"broadcast-s{seed}", partial(broadcast, _say, phrases, seed)))
    return files


def development_set(out: Path = OUT) -> list[DevFile]:
    out.mkdir(parents=True, exist_ok=True)
    files = [_pyannote_sample(), *_test_fixtures()]
    for name, (speakers, turns, overlap, seed) in _RECIPES.items():
        flac, labels = out / f"{name}.flac", out / f"{name}.json"
        if not (flac.is_file() and labels.is_file()):
            audio, made = _conversation(name, speakers, turns, overlap, seed)
            write_flac((audio * 32767).astype(np.int16), flac)
            labels.write_text(json.dumps([t.__dict__ for t in made], indent=1))
        reference = tuple(Turn(**t) for t in json.loads(labels.read_text()))
        files.append(DevFile(name, flac, reference))
        if name != "clean-4spk":
            phone = out / f"{name}-phone.wav"
            if not phone.is_file():
                _phone(flac, phone)
            files.append(DevFile(f"{name}-phone", phone, reference))
    return files + _hard_files(out)


if __name__ == "__main__":
    for f in development_set():
        print(f"{f.name}: {f.duration_s:.1f} s, {f.speakers} speakers, {len(f.turns)} turns")
