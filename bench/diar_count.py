"""Ways of counting speakers, compared on the chunk embeddings bench/diar_dump.py kept:
pyannote's centroid linkage at fixed thresholds (the service's recipe before issue 27)
against bench/spectral_count.py's count from the affinity graph.

  cd bench && ../.venv/bin/python diar_count.py --set real-dev [--thresholds 0.6,0.65]

Per file: true speakers, the count each way finds, and for the spectral count the
neighbours chosen and its gap (how clear the count was).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from diar_dump import OUT
from diarization import ROOT

sys.path.insert(0, str(ROOT))


def ahc_count(embeddings: np.ndarray, threshold: float) -> int:
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    clustering = AgglomerativeClustering(metric="cosine")
    clustering.instantiate({"method": "centroid", "min_cluster_size": 12, "threshold": threshold})
    labels = clustering.cluster(embeddings.copy(), min_clusters=1, max_clusters=8)
    return len(set(labels.tolist()))


def main() -> None:
    from spectral_count import count_speakers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="real-dev")
    parser.add_argument("--thresholds", default="0.6,0.65")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    files = sorted(Path(OUT / args.set).glob("*.npz"))
    heads = [f"ahc@{t}" for t in thresholds] + ["spectral (p, gap)"]
    print("| file | n | true | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 3) + "|")
    right = np.zeros(len(heads), int)
    for path in files:
        data = np.load(path)
        x, truth = data["embeddings"], int(data["speakers"])
        counts = [ahc_count(x, t) for t in thresholds]
        found = count_speakers(x)
        cells = [str(c) for c in counts] + [f"{found.count} ({found.neighbours}, {found.gap:.3f})"]
        right += np.array([c == truth for c in [*counts, found.count]])
        print(f"| {path.stem} | {len(x)} | {truth} | " + " | ".join(cells) + " |")
    print("| right | | | " + " | ".join(f"{r}/{len(files)}" for r in right) + " |")


if __name__ == "__main__":
    main()
