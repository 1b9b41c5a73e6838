"""How far apart the two halves of each found speaker lie, window by window: the
measurement behind DIARIZATION_SPLIT_ABOVE (app/diarization/split.py). For every file of the
sets, the service's offline diarizer (its linkage, join and reassignment, split off) runs on
what the service hears; each found speaker's turns are cut into back-to-back windows, each
embedded on its own, split in two by spherical 2-means; printed: the windows a side, the
cosine distance between the halves' mean directions, and the true speakers of the windows
(a speaker holding two people is what a split should find).

  cd bench && ../.venv/bin/python diar_windows.py --sets forms,dev,real-dev [--window 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from diar_devset import DevFile
from diar_dump import SETS
from diarization import ROOT

sys.path.insert(0, str(ROOT))


def true_speaker(file: DevFile, start_s: float, end_s: float) -> str:
    talk = {t.speaker: 0.0 for t in file.turns}
    for t in file.turns:
        talk[t.speaker] += max(0.0, min(end_s, t.end) - max(start_s, t.start))
    return max(talk, key=lambda k: talk[k])


def main() -> None:
    from app.diarization.diarizer import Diarizer, SpeakerTurn, unit_rows
    from app.diarization.pipelines import build_offline
    from app.diarization.reassign import reassign_turns
    from app.diarization.split import two_means
    from app.domain import Audio, SpeakerLimits
    from app.pipeline.decode import decode_to_pcm
    from app.pipeline.diarize import diarization_spans, to_recording
    from app.pipeline.vad import speech_probabilities, speech_regions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="forms,dev,real-dev")
    parser.add_argument("--window", type=float, default=2.0, help="seconds")
    parser.add_argument("--files", default="", help="comma-separated names; default all")
    args = parser.parse_args()
    files = [f for s in args.sets.split(",") for f in SETS[s]()]
    if args.files:
        files = [f for f in files if f.name in args.files.split(",")]
    cache = ROOT / "bench" / "out" / "cache" / "diarization"
    diarizer = Diarizer("offline", build_offline("cpu", "campplus", cache_dir=cache))
    size = args.window
    print("| file | speaker | windows a side | apart | true speakers (windows) |")
    print("|---|---|---|---|---|")
    for file in files:
        pcm = decode_to_pcm(file.path, Path("/tmp/diar-windows.pcm"))
        vad = speech_regions(speech_probabilities(pcm), pcm.samples)
        (span,) = diarization_spans(vad)  # the sets' files are under 5 minutes of speech
        heard = span.speech(pcm)
        found = diarizer.diarize(Audio(heard, 16000), SpeakerLimits())
        turns, _ = reassign_turns(found.turns, found.embeddings, heard, 16000, diarizer.embed_many)
        for speaker in sorted({t.speaker for t in turns}):
            wavs, truth = [], []
            for t in (t for t in turns if t.speaker == speaker):
                at = t.start_ms / 1000
                while at + size <= t.end_ms / 1000 + 1e-9:
                    wavs.append(heard[int(at * 16000) : int((at + size) * 16000)])
                    piece = SpeakerTurn(int(at * 1000), int((at + size) * 1000), speaker)
                    where = to_recording([piece], span.regions)
                    truth.append(
                        true_speaker(file, where[0].start_ms / 1000, where[-1].end_ms / 1000)
                    )
                    at += size
            if len(wavs) < 2:
                print(f"| {file.name} | {speaker} | {len(wavs)} window(s) | | |")
                continue
            side, apart = two_means(unit_rows(np.asarray(diarizer.embed_many(wavs))))
            names = {k: truth.count(k) for k in sorted(set(truth))}
            sides = np.bincount(side, minlength=2).tolist()
            print(f"| {file.name} | {speaker} | {sides} | {apart:.3f} | {names} |", flush=True)


if __name__ == "__main__":
    main()
