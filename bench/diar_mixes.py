"""The harder part of the diarization development set: real voices and broadcast sound.

  real-3spk        real speech only: the two women of pyannote's sample (one telephone
                   channel; their voices sit close together for every embedding tried) and
                   John F. Kennedy (whisper.cpp's jfk.wav, from the npm package
                   nodejs-whisper), cut at their pauses and re-joined as a quick
                   conversation with short gaps and some cut-ins
  broadcast-3spk   a news programme: an anchor over a music bed, jingles between items, a
                   field reporter in street noise and a real interviewee (JFK)
  real-3spk-phone  real-3spk through the telephone band (diar_devset.py)

Pieces and the order they play in come from a seeded random generator, so the same script
gives the same files; references come from how they were made (pyannote's own RTTM for its
sample's turns).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from clips import SCRIPT, read_mono_16k

RATE = 16000
JFK_PACKAGE = "nodejs-whisper@0.3.1"
JFK_MEMBER = "package/cpp/whisper.cpp/bindings/go/samples/jfk.wav"
Piece = tuple[str, np.ndarray]  # (speaker, samples)
Say = Callable[[str, str, str], np.ndarray]  # (engine, voice, text) -> samples


def jfk_wav(cache: Path) -> Path | None:
    """whisper.cpp's 11 s of JFK from the npm registry (None without npm)."""
    path = cache / "jfk.wav"
    if path.is_file():
        return path
    if shutil.which("npm") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["npm", "pack", JFK_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True
        )
        if done.returncode != 0:
            return None
        with tarfile.open(Path(tmp) / done.stdout.strip().splitlines()[-1]) as tar:
            member = tar.extractfile(JFK_MEMBER)
            if member is None:
                return None
            path.write_bytes(member.read())
    return path


def _phrases(samples: np.ndarray, min_pause_s: float = 0.25) -> list[np.ndarray]:
    """Cut speech at pauses of at least `min_pause_s` (20 ms frames under -24 dB of peak:
    above the hiss of an old broadcast recording)."""
    frame = RATE // 50
    energy = np.array(
        [np.sqrt(np.mean(samples[i : i + frame] ** 2)) for i in range(0, len(samples), frame)]
    )
    loud = energy > energy.max() * 10 ** (-24 / 20)
    phrases, start, quiet = [], None, 0
    for i, on in enumerate([*loud, False] + [False] * 50):
        if on:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet * frame >= min_pause_s * RATE:
                end = i - quiet + 1
                if (end - start) * frame >= 0.6 * RATE:
                    phrases.append(samples[start * frame : end * frame])
                start, quiet = None, 0
    return phrases


def sample_pieces(wav: Path, rttm: Path) -> list[Piece]:
    """pyannote's sample cut into the stretches where exactly one speaker talks."""
    audio = read_mono_16k(wav).astype(np.float32) / 32768
    rows = [line.split() for line in rttm.read_text().splitlines()]
    turns = [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in rows]
    pieces = []
    for start, end, speaker in turns:
        for s2, e2, other in turns:
            if other != speaker and s2 < end and e2 > start:  # trim away overlapped speech
                if s2 <= start:
                    start = max(start, e2)
                else:
                    end = min(end, s2)
        if end - start >= 0.8:
            pieces.append((speaker, audio[int(start * RATE) : int(end * RATE)]))
    return pieces


def _place(
    pieces: list[tuple[float, np.ndarray, str]], gain: float = 0.8
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    total = int((max(s + len(a) / RATE for s, a, _ in pieces) + 0.5) * RATE)
    mix = np.zeros(total, dtype=np.float32)
    reference = []
    for start, audio, label in pieces:
        first = int(start * RATE)
        mix[first : first + len(audio)] += audio * gain
        if label:
            reference.append((label, round(start, 3), round(start + len(audio) / RATE, 3)))
    return mix, sorted(reference, key=lambda t: t[1])


def real_conversation(
    pieces: list[Piece], turns: int, seed: int
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Real phrases re-joined: gaps of 0.15-0.7 s, one cut-in (0.2-0.5 s early) in five."""
    rng = random.Random(seed)
    speakers = sorted({s for s, _ in pieces})
    placed: list[tuple[float, np.ndarray, str]] = []
    at, previous = 0.5, ""
    for _ in range(turns):
        speaker = rng.choice([s for s in speakers if s != previous])
        audio = rng.choice([a for s, a in pieces if s == speaker])
        peak = float(np.abs(audio).max()) or 1.0
        audio = audio * (0.5 / peak)  # recordings at one level, as a call recorder's AGC does
        cut_in = placed and rng.random() < 0.2
        start = at - rng.uniform(0.2, 0.5) if cut_in else at + rng.uniform(0.15, 0.7)
        placed.append((start, audio, speaker))
        at, previous = max(at, start + len(audio) / RATE), speaker
    mix, reference = _place(placed)
    return np.clip(mix, -1, 1), reference


def _music(seconds: float, level: float) -> np.ndarray:
    """A synthetic music bed: a chord progression of soft saw-ish tones and a kick."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t, dtype=np.float32)
    roots = [220.0, 174.6, 196.0, 246.9]
    for i, start in enumerate(np.arange(0, seconds, 2.0)):
        span = (t >= start) & (t < start + 2.0)
        for ratio in (1.0, 1.26, 1.5):
            f = roots[i % 4] * ratio
            out[span] += sum(np.sin(2 * np.pi * f * k * t[span]) / k for k in (1, 2, 3)) * 0.2
    for beat in np.arange(0, seconds, 0.5):
        first = int(beat * RATE)
        n = min(int(0.12 * RATE), len(out) - first)
        out[first : first + n] += np.sin(2 * np.pi * 60 * t[:n]) * np.exp(-t[:n] * 30) * 0.8
    return out / (np.abs(out).max() or 1.0) * level


def _street(samples: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Brown-ish noise (traffic rumble), RMS `level`."""
    noise = np.cumsum(rng.standard_normal(samples)).astype(np.float32)
    noise -= np.convolve(noise, np.ones(801) / 801, mode="same")
    return noise / (np.sqrt(np.mean(noise**2)) or 1.0) * level


def broadcast(
    say: Say, jfk: list[np.ndarray], seed: int
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Anchor (flite rms) over music, a 2.5 s jingle between items, reporter (flite slt) in
    street noise, interviewee (real JFK phrases); four items."""
    rng = random.Random(seed)
    noise_rng = np.random.default_rng(seed)
    placed: list[tuple[float, np.ndarray, str]] = []
    beds: list[tuple[float, np.ndarray]] = []
    at = 0.3
    for item in range(4):
        jingle = _music(2.5, 0.35)
        beds.append((at, jingle))
        at += 2.7
        anchor = say("flite", "rms", " ".join(rng.sample(SCRIPT, 2)))
        placed.append((at, anchor, "anchor"))
        beds.append((at, _music(len(anchor) / RATE, 0.08)))
        at += len(anchor) / RATE + rng.uniform(0.3, 0.8)
        for _ in range(2):
            report = say("flite", "slt", rng.choice(SCRIPT))
            placed.append((at, report, "reporter"))
            beds.append((at, _street(len(report), noise_rng, 0.03)))
            at += len(report) / RATE + rng.uniform(0.2, 0.6)
            if item % 2 == 0:
                quote = jfk[rng.randrange(len(jfk))]
                quote = quote * (0.5 / (float(np.abs(quote).max()) or 1.0))
                placed.append((at, quote, "guest"))
                at += len(quote) / RATE + rng.uniform(0.2, 0.6)
    mix, reference = _place(placed)
    for start, bed in beds:
        first = int(start * RATE)
        n = min(len(bed), len(mix) - first)
        mix[first : first + n] += bed[:n]
    return np.clip(mix, -1, 1), reference


def spoken_phrases(path: Path) -> list[np.ndarray]:
    """A recording of one voice cut into its phrases (at pauses of 0.25 s or more)."""
    return _phrases(read_mono_16k(path).astype(np.float32) / 32768)
