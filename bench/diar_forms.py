"""pyannote's sample (two real women, a real conversation) in the forms real clients send it,
the material on which issue 27 found voices split and a phantom speaker added: the telephone
band, Ogg/Opus voice notes at 24, 32 and 64 kbit/s, and each woman alone (her turns joined),
as recorded and through the telephone band. The end-to-end tests send the same forms
through `/asr`; this is the development material for the rule that keeps them right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from clips import read_mono_16k, write_flac
from diar_devset import OUT, DevFile, Turn, _phone, _pyannote_sample, _sample_wav
from diar_real import _opus


def sample_forms(out: Path = OUT / "forms") -> list[DevFile]:
    out.mkdir(parents=True, exist_ok=True)
    sample = _pyannote_sample()
    files = [sample]
    phone = out / "sample-phone.wav"
    if not phone.is_file():
        _phone(sample.path, phone)
    files.append(DevFile("sample-phone", phone, sample.turns))
    for rate in (24, 32, 64):
        opus = out / f"sample-opus{rate}.ogg"
        if not opus.is_file():
            _opus(sample.path, opus, rate * 1000)
        files.append(DevFile(f"sample-opus{rate}", opus, sample.turns))
    samples = read_mono_16k(_sample_wav())
    for who in sorted({t.speaker for t in sample.turns}):
        turns, pieces, at = [], [], 0.0
        for t in sample.turns:
            if t.speaker == who:
                piece = samples[int(t.start * 16000) : int(t.end * 16000)]
                turns.append(Turn(who, round(at, 3), round(at + len(piece) / 16000, 3)))
                pieces.append(piece)
                at += len(piece) / 16000
        alone = out / f"alone-{who}.flac"
        if not alone.is_file():
            write_flac(np.concatenate(pieces).astype(np.int16), alone)
        files.append(DevFile(f"alone-{who}", alone, tuple(turns)))
        alone_phone = out / f"alone-{who}-phone.wav"
        if not alone_phone.is_file():
            _phone(alone, alone_phone)
        files.append(DevFile(f"alone-{who}-phone", alone_phone, tuple(turns)))
    return files
