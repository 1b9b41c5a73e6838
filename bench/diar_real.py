"""Real voices for diarization: conversations assembled from recorded (not synthesised)
voice prompts that ship in Debian packages, split by speaker into a development part and a
held-out part that no tuning decision may look at.

The voices (each a real person, recorded for a telephone system; fetched with
`apt-get download` on first use into bench/out/diar-real/debs, never committed). Debian 12
package, version, folder under usr/share/asterisk/, licence, how it was recorded:

  dev       allison  asterisk-core-sounds-en-g722 1.6.1-1, sounds/en_US_f_Allison,
                     CC-BY-SA-3.0, G.722 16 kHz
            allison  asterisk-core-sounds-es-g722 1.6.1-1, sounds/es_MX_f_Allison,
                     CC-BY-SA-3.0, G.722 16 kHz (the same woman, in Spanish)
            june     asterisk-core-sounds-fr-g722 1.6.1-1, sounds/fr_CA_f_June,
                     CC-BY-SA-3.0, G.722 16 kHz
            carlo    asterisk-core-sounds-it-g722 1.6.1-1, sounds/it_IT_m_Carlo,
                     CC-BY-SA-3.0, G.722 16 kHz
            ivr-ru   asterisk-core-sounds-ru-g722 1.6.1-1, sounds/ru_RU_f_IvrvoiceRU,
                     CC-BY-SA-3.0, G.722 16 kHz
  held out  es-co    asterisk-prompt-es-co 0.20070403-2.1, sounds/es, GPL-2+, GSM 8 kHz
            armelle  asterisk-prompt-fr-armelle 20070613-2.2, sounds/fr, BSD-style
                     (Michel Gutierrez; voice: Armelle Desjardins), GSM 8 kHz
            menardi  asterisk-prompt-it-menardi-wav 1:1.4.22+mm20110907-3.1,
                     sounds/it_IT_f_Menardi, CC-BY-SA-3.0, PCM 8 kHz

What this is and is not: real voices, real microphones and real telephone codecs (the
held-out voices are 8 kHz GSM or PCM: the narrowband case), six women and one man, several
languages; but read prompts, not conversation: turns are placed by this script (pauses,
some overlaps and short turns, each speaker at its own level, optionally over the music on
hold of asterisk-moh-opsound-g722, CC-BY-SA-3.0), so references are exact. Each prompt is
trimmed to its voiced part. Same seed, same files.

  cd bench && ../.venv/bin/python diarization.py --set real
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from clips import read_mono_16k
from diar_devset import DevFile, _mixed, _phone

OUT = Path(__file__).resolve().parent / "out" / "diar-real"
RATE = 16000


@dataclass(frozen=True)
class Voice:
    speaker: str
    package: str
    folder: str
    held_out: bool


VOICES = (
    Voice("allison", "asterisk-core-sounds-en-g722", "sounds/en_US_f_Allison", False),
    Voice("allison", "asterisk-core-sounds-es-g722", "sounds/es_MX_f_Allison", False),
    Voice("june", "asterisk-core-sounds-fr-g722", "sounds/fr_CA_f_June", False),
    Voice("carlo", "asterisk-core-sounds-it-g722", "sounds/it_IT_m_Carlo", False),
    Voice("ivr-ru", "asterisk-core-sounds-ru-g722", "sounds/ru_RU_f_IvrvoiceRU", False),
    Voice("es-co", "asterisk-prompt-es-co", "sounds/es", True),
    Voice("armelle", "asterisk-prompt-fr-armelle", "sounds/fr", True),
    Voice("menardi", "asterisk-prompt-it-menardi-wav", "sounds/it_IT_f_Menardi", True),
)
MUSIC = "asterisk-moh-opsound-g722"

# name: (voices by package, turns, overlap share, seed, music level); a voice's package
# names it, so "allison in Spanish" can be cast apart from "allison in English".
RECIPES: dict[str, tuple[tuple[str, ...], int, float, int, float]] = {
    "dev-2spk-allison-carlo": (("en-g722", "it-g722"), 20, 0.0, 1, 0.0),
    "dev-2spk-june-ivr": (("fr-g722", "ru-g722"), 20, 0.15, 2, 0.0),
    "dev-2spk-women": (("en-g722", "fr-g722"), 24, 0.15, 3, 0.0),
    "dev-3spk": (("en-g722", "it-g722", "ru-g722"), 30, 0.1, 4, 0.0),
    "dev-4spk": (("en-g722", "fr-g722", "it-g722", "ru-g722"), 36, 0.1, 5, 0.0),
    "dev-2spk-music": (("fr-g722", "it-g722"), 20, 0.0, 6, 0.08),
    "dev-1spk-two-languages": (("en-g722", "es-g722"), 16, 0.0, 7, 0.0),
    "held-2spk-es-fr": (("prompt-es-co", "prompt-fr-armelle"), 20, 0.0, 11, 0.0),
    "held-2spk-fr-it": (("prompt-fr-armelle", "prompt-it-menardi-wav"), 20, 0.15, 12, 0.0),
    "held-3spk": (("prompt-es-co", "prompt-fr-armelle", "prompt-it-menardi-wav"), 30, 0.1, 13, 0.0),
    "held-2spk-music": (("prompt-es-co", "prompt-it-menardi-wav"), 20, 0.0, 14, 0.08),
    "held-1spk": (("prompt-it-menardi-wav",), 12, 0.0, 15, 0.0),
}


def _package_dir(package: str) -> Path:
    """The package's files, unpacked from the .deb that `apt-get download` fetches."""
    root = OUT / "debs" / package
    if not (root / "usr").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=root, check=True, capture_output=True)
        (deb,) = root.glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _voice(tag: str) -> Voice:
    (found,) = [v for v in VOICES if v.package.endswith(tag)]
    return found


def _prompts(voice: Voice) -> list[Path]:
    folder = _package_dir(voice.package) / "usr/share/asterisk" / voice.folder
    return sorted(p for p in folder.iterdir() if p.is_file())


def _voiced(samples: np.ndarray) -> np.ndarray:
    """The prompt without its leading and trailing silence (10 ms frames under -40 dBFS)."""
    x = samples.astype(np.float32) / 32768
    frames = len(x) // 160
    if frames == 0:
        return x
    energy = np.sqrt((x[: frames * 160].reshape(frames, 160) ** 2).mean(axis=1))
    loud = np.flatnonzero(energy > 0.01)
    if len(loud) == 0:
        return x[:0]
    return x[loud[0] * 160 : (loud[-1] + 1) * 160]


def _music(seconds: float) -> np.ndarray:
    tracks = sorted((_package_dir(MUSIC) / "usr/share/asterisk/moh").glob("*.g722"))
    bed = np.concatenate([read_mono_16k(t).astype(np.float32) / 32768 for t in tracks[:3]])
    bed = np.tile(bed, int(seconds * RATE) // len(bed) + 1)[: int(seconds * RATE)]
    return bed / (np.abs(bed).max() or 1.0)


def _conversation(
    cast: tuple[str, ...], turns: int, overlap: float, seed: int, music: float
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The mix and its turns as (speaker, start s, end s), in time order."""
    rng = random.Random(seed)
    voices = [_voice(tag) for tag in cast]
    prompts = [rng.sample(_prompts(v), min(120, len(_prompts(v)))) for v in voices]
    levels = [rng.uniform(0.35, 0.9) for _ in voices]  # near and far talkers
    pieces: list[tuple[float, np.ndarray, str]] = []
    at, previous = 0.5, -1
    for _ in range(turns):
        who = rng.choice([i for i in range(len(voices)) if i != previous or len(voices) == 1])
        parts = []
        for _ in range(rng.choice((1, 1, 2, 3))):  # short turns and longer ones
            audio = _voiced(read_mono_16k(prompts[who].pop()))
            parts += [audio, np.zeros(int(rng.uniform(0.1, 0.3) * RATE), np.float32)]
        audio = np.concatenate(parts[:-1]) * levels[who]
        if pieces and rng.random() < overlap:
            start = max(0.0, at - rng.uniform(0.2, 0.8))
        else:
            start = at + rng.uniform(0.3, 1.0)
        pieces.append((start, audio, voices[who].speaker))
        at, previous = max(at, start + len(audio) / RATE), who
    total = int((at + 0.5) * RATE)
    mix = np.zeros(total, dtype=np.float32)
    reference = []
    for start, audio, speaker in pieces:
        first = int(start * RATE)
        mix[first : first + len(audio)] += audio
        reference.append((speaker, round(start, 3), round(start + len(audio) / RATE, 3)))
    if music:
        mix += _music(total / RATE) * music
    return np.clip(mix, -1, 1), sorted(reference, key=lambda t: t[1])


def _opus(src: Path, dst: Path, bit_rate: int) -> None:
    """A voice note as a phone app sends it: Ogg/Opus at `bit_rate` bits per second."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for frame in inp.decode(audio=0):
            frame.pts = None
            for piece in resampler.resample(frame):
                for packet in stream.encode(piece):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def real_set(out: Path = OUT, *, variants: bool = True) -> list[DevFile]:
    """Every recipe, and (`variants`) each through the telephone band (8 kHz mu-law) and as
    24 kbit/s Opus. Names start with `dev-` or `held-`: held-out files are for reporting
    only, never for choosing."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, (cast, turns, overlap, seed, music) in RECIPES.items():
        made = _mixed(out, name, partial(_conversation, cast, turns, overlap, seed, music))
        flac, reference = made.path, made.turns
        files.append(made)
        if not variants:
            continue
        phone, opus = out / f"{name}-phone.wav", out / f"{name}-opus24.ogg"
        if not phone.is_file():
            _phone(flac, phone)
        if not opus.is_file():
            _opus(flac, opus, 24000)
        files += [
            DevFile(f"{name}-phone", phone, reference),
            DevFile(f"{name}-opus24", opus, reference),
        ]
    return files


if __name__ == "__main__":
    for f in real_set():
        print(f"{f.name}: {f.speakers} speakers, {f.duration_s:.0f} s, {len(f.turns)} turns")


def group_of(name: str) -> str:
    """`dev` / `held` and the variant: `held, phone`."""
    part = "dev" if name.startswith("dev-") else "held-out"
    for variant in ("phone", "opus24"):
        if name.endswith("-" + variant):
            return f"{part}, {variant}"
    return f"{part}, original"


def summary(files: list[DevFile], rows: list[dict[str, Any]]) -> str:
    """Per runner and group: mean DER (word spans for the service, turns for the peers),
    the service's mean floor (the same words with the true speakers: what the ASR's word
    coverage alone costs; in this set of five languages it is most of the DER) and words
    given the wrong speaker, the share of files whose speaker count is right, s / min."""
    truth = {f.name: f.speakers for f in files}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if "error" not in r and r["file"] in truth:
            groups.setdefault((r["runner"], group_of(r["file"])), []).append(r)
    lines = [
        "| runner | files | n | mean DER | floor | words, wrong speaker | speakers right"
        " | s / min |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def mean(found: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in found if key in r]
        return f"{np.mean(values):.1%}" if values else ""

    for (runner, group), found in sorted(groups.items()):
        right = np.mean([r["speakers"] == truth[r["file"]] for r in found])
        speed = float(np.mean([r["s_per_min"] for r in found]))
        lines.append(
            f"| {runner} | {group} | {len(found)} | {mean(found, 'der')} | "
            f"{mean(found, 'floor')} | {mean(found, 'wrong_words')} | {right:.0%} | {speed:.2f} |"
        )
    return "\n".join(lines)
