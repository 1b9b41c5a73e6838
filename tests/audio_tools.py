"""Test helpers: fixture paths, re-encoding audio into other containers, text normalisation."""

from __future__ import annotations

import json
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
JFK = FIXTURES / "jfk_style.flac"
CONVERSATION = FIXTURES / "conversation.flac"
SPANISH = FIXTURES / "spanish.flac"
SPANISH_SCRIPT = (  # what make_fixtures.sh had espeak-ng say
    "hola me llamo carlos y vivo en madrid hoy hace muy buen tiempo y vamos a la playa"
)
JFK_WORDS = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)


def pyannote_sample() -> tuple[Path, Path]:
    """pyannote.audio's own 30 s two-speaker sample and its reference transcript (.stm)."""
    import importlib.util

    spec = importlib.util.find_spec("pyannote.audio")  # locate without importing torch
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent / "sample"
    return root / "sample.wav", root / "sample.stm"


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    text: str


def conversation_turns(name: str = "conversation") -> list[Turn]:
    return [Turn(**t) for t in json.loads((FIXTURES / f"{name}.json").read_text())]


# extension -> (container format, codec, sample rate)
CONTAINERS: dict[str, tuple[str, str, int]] = {
    "wav": ("wav", "pcm_s16le", 16000),
    "mp3": ("mp3", "libmp3lame", 16000),
    "m4a": ("ipod", "aac", 16000),
    "flac": ("flac", "flac", 16000),
    "aac": ("adts", "aac", 16000),
    "ogg": ("ogg", "libopus", 48000),
    "opus": ("ogg", "libopus", 48000),
    "wma": ("asf", "wmav2", 16000),
    "mp4": ("mp4", "aac", 16000),
    "avi": ("avi", "libmp3lame", 16000),
    "mov": ("mov", "aac", 16000),
    "mkv": ("matroska", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "3gp": ("3gp", "aac", 16000),
}


def encode(src: Path, dst: Path) -> Path:
    """Re-encode `src` into the container named by dst's extension, with PyAV."""
    fmt, codec, rate = CONTAINERS[dst.suffix.lstrip(".")]
    with av.open(str(dst), "w", format=fmt) as out:
        mux_audio(src, out, codec, rate)
    return dst


def mux_audio(src: Path, out: Any, codec: str, rate: int, bit_rate: int = 64000) -> None:
    """Encode `src`'s audio, mono at `rate`, into the open output container `out`."""
    with av.open(str(src)) as source:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        stream.bit_rate = bit_rate  # wmav2 refuses to open without one
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            frame.pts = None
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    out.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_wav(samples: np.ndarray, path: Path) -> Path:
    """16 kHz mono float samples as a 16-bit WAV file."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return path


def encode_video(src: Path, dst: Path) -> Path:
    """An .mp4 video of `src`: black 64x64 MPEG-4 frames at 5 fps beside its audio in AAC
    (a screen recording or a phone video, as users upload them)."""
    from app.pipeline.decode import decode_file  # the app's decoder, only where a test needs it

    samples = decode_file(src).samples
    assert isinstance(samples, np.ndarray)
    with av.open(str(dst), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=5)
        assert isinstance(video, av.VideoStream)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        assert isinstance(audio, av.AudioStream)
        audio.layout = "mono"
        black = np.zeros((64, 64, 3), dtype=np.uint8)
        for i in range(int(len(samples) / 16000 * 5)):
            frame = av.VideoFrame.from_ndarray(black, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None]
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        sound.sample_rate = 16000
        resampler = av.AudioResampler(format=audio.format.name, layout="mono", rate=16000)
        for resampled in resampler.resample(sound):
            for packet in audio.encode(resampled):
                out.mux(packet)
        for packet in [*audio.encode(None), *video.encode(None)]:
            out.mux(packet)
    return dst


def normalize(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference length."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / max(len(ref), 1)


def silent_opus(path: Path, seconds: int) -> Path:
    """`seconds` of digital silence as Ogg/Opus (a few kB a minute), made once."""
    if path.exists():
        return path
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        zeros = np.zeros((1, 48000 * 10), dtype=np.int16)
        for i in range(seconds // 10):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 48000 * 10
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
