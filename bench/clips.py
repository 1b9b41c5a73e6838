"""Benchmark audio: long English clips spoken by offline TTS engines, with their exact script.

Clips are made at bench time into bench/out/clips/ (git-ignored) and cached there; no audio is
ever committed. Each clip is a sequence of utterances (one sentence in one voice) separated by
short pauses; the voice rotates every sentence and shifts on each pass through the script, so
the 30-minute clip never repeats one (sentence, voice) pair back to back. flite and espeak-ng
are Debian packages; a machine without them (the GPU host) gets the clips carried in.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
CLIPS_DIR = OUT / "clips"
SAMPLE_RATE = 16000
PAUSE_S = 0.6

sys.path.insert(0, str(ROOT / "tests"))
from audio_tools import JFK, JFK_WORDS, pyannote_sample  # noqa: E402
from audio_tools import silent_opus as silent_opus  # noqa: E402  (for long_audio.py)

# Written for this benchmark: ordinary meeting talk with numbers, names and places, so the
# word error rate reflects what the service is used for.
SCRIPT = (
    "Good morning everyone, let us start the weekly planning meeting.",
    "The budget report is ready and the numbers look better than last quarter.",
    "Please send the slides to the whole team by Friday afternoon.",
    "Our customers in Canada asked for the new billing feature twice this month.",
    "The server migration finished on Tuesday without any downtime.",
    "I would like to thank Maria for organising the workshop in Lisbon.",
    "We still need two more engineers for the mobile application.",
    "The marketing campaign starts on the first of March.",
    "Can someone take notes for the design review tomorrow?",
    "Sales grew by twelve percent in the northern region.",
    "The support team closed almost four hundred tickets last week.",
    "Let us move the release to next Wednesday to finish the testing.",
    "The new office has a large kitchen and plenty of meeting rooms.",
    "Remember to update your passwords before the end of the month.",
    "The training sessions will be recorded for people in other time zones.",
    "Our partners in Germany want a shorter contract with clearer terms.",
    "The data shows that most users open the app in the evening.",
    "We should write a short guide for the installation process.",
    "The quality of the audio recordings has improved a lot.",
    "Please check the spelling of the product names in the documentation.",
    "The conference in Chicago was useful and the talks were excellent.",
    "I think we can reduce the cost of the cloud servers by half.",
    "The legal team will review the privacy policy next week.",
    "Our next hiring round opens in the spring.",
    "The battery of the old laptops does not last a full working day.",
    "Thank you all for the quick answers to the customer survey.",
    "The printer on the second floor is broken again.",
    "We agreed to meet the suppliers on Thursday at ten o'clock.",
    "The final version of the contract arrived this morning.",
    "Let us keep the questions for the end of the presentation.",
    "The project is on schedule and within the budget.",
    "Please book the large room for the board meeting.",
    "The weather forecast says it will rain all weekend.",
    "Our website had more visitors in January than in the whole of last year.",
    "The engineers fixed the bug that slowed down the search page.",
    "We will celebrate the anniversary of the company in June.",
    "Everyone should finish the security training by the end of the week.",
    "The translation of the manual into Spanish is almost done.",
    "I will send a summary of this meeting to everyone tonight.",
    "That is all for today, thank you and see you next week.",
)

# (engine, voice): four flite voices and two espeak-ng accents.
VOICES = (
    ("flite", "slt"),
    ("flite", "kal16"),
    ("espeak-ng", "en-us"),
    ("flite", "awb"),
    ("espeak-ng", "en-gb"),
    ("flite", "rms"),
)

# Name -> target length in seconds for the TTS clips.
TTS_LENGTHS = {
    "30s": 30.0,
    "5min": 300.0,
    "10min": 600.0,
    "30min": 1800.0,
    "60min": 3600.0,
    "3h": 10800.0,
}


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    reference: str
    """What is said in the clip, for the word error rate."""
    duration_s: float


def tts_available() -> bool:
    return all(shutil.which(tool) for tool in ("flite", "espeak-ng"))


def _synthesize(engine: str, voice: str, text: str, dst: Path) -> None:
    if engine == "flite":
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(dst)]
    else:
        cmd = ["espeak-ng", "-v", voice, "-s", "150", "-w", str(dst), text]
    subprocess.run(cmd, check=True, capture_output=True)


def read_mono_16k(path: Path) -> np.ndarray:
    """Decode any file to 16 kHz mono int16 (espeak-ng writes 22.05 kHz, flite 8 or 16)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            frame.pts = None  # as app/audio.py does, so both sides get the same samples
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.int16)


def _utterance(index: int, cache: Path) -> tuple[str, np.ndarray]:
    text = SCRIPT[index % len(SCRIPT)]
    engine, voice = VOICES[(index + index // len(SCRIPT)) % len(VOICES)]
    key = hashlib.sha1(f"{engine}|{voice}|{text}".encode()).hexdigest()[:16]
    wav = cache / f"{key}.wav"
    if not wav.exists():
        _synthesize(engine, voice, text, wav)
    return text, read_mono_16k(wav)


def write_flac(samples: np.ndarray, dst: Path) -> None:
    with av.open(str(dst), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def tts_clip(name: str, out_dir: Path = CLIPS_DIR) -> Clip:
    """The TTS clip `name` (a key of TTS_LENGTHS), made on first use and cached."""
    target_s = TTS_LENGTHS[name]
    flac, txt = out_dir / f"tts-{name}.flac", out_dir / f"tts-{name}.txt"
    if flac.exists() and txt.exists():
        return Clip(f"tts-{name}", flac, txt.read_text(), target_s)
    if not tts_available():
        raise RuntimeError(f"{flac} is missing and flite/espeak-ng are not installed to make it")
    cache = out_dir / "utterances"
    cache.mkdir(parents=True, exist_ok=True)
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.int16)
    parts, texts, length, index = [pause], [], len(pause), 0
    while True:
        text, speech = _utterance(index, cache)
        if (length + len(speech) + len(pause)) / SAMPLE_RATE > target_s:
            break
        parts += [speech, pause]
        texts.append(text)
        length += len(speech) + len(pause)
        index += 1
    # Pad with silence to the exact length so real-time factors use round durations.
    parts.append(np.zeros(int(target_s * SAMPLE_RATE) - length, dtype=np.int16))
    write_flac(np.concatenate(parts), flac)
    txt.write_text(" ".join(texts))
    return Clip(f"tts-{name}", flac, txt.read_text(), target_s)


def _stm_text(stm: Path) -> str:
    # STM lines: <file> <channel> <speaker> <start> <end> <words...>
    return " ".join(" ".join(line.split()[5:]) for line in stm.read_text().splitlines())


def _duration_s(path: Path) -> float:
    return len(read_mono_16k(path)) / SAMPLE_RATE


def pyannote_clip(out_dir: Path = CLIPS_DIR) -> Clip:
    """pyannote.audio's 30 s recording of two people, with its reference transcript.

    Copied into the clips folder so it can travel to a machine without pyannote.audio."""
    wav, txt = out_dir / "pyannote-30s.wav", out_dir / "pyannote-30s.txt"
    if not (wav.exists() and txt.exists()):
        src_wav, stm = pyannote_sample()
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_wav, wav)
        txt.write_text(_stm_text(stm))
    return Clip("pyannote-30s", wav, txt.read_text(), _duration_s(wav))


def jfk_clip() -> Clip:
    """The short committed fixture (about 9 s), for the memory and load sections."""
    return Clip("jfk-9s", JFK, JFK_WORDS, _duration_s(JFK))


def clip(name: str) -> Clip:
    if name in TTS_LENGTHS:
        return tts_clip(name)
    if name == "pyannote":
        return pyannote_clip()
    if name == "jfk":
        return jfk_clip()
    raise ValueError(f"unknown clip '{name}': use {', '.join([*TTS_LENGTHS, 'pyannote', 'jfk'])}")
