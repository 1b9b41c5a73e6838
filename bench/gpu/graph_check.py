"""The torch engine's windows of one clip with and without CUDA graphs: same text, WER.

python3 bench/gpu/graph_check.py MODELS_DIR CLIP [DEVICE]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from audio_tools import wer  # noqa: E402

from app.domain import DecodeOptions  # noqa: E402
from app.engines.base import SpeechWindow  # noqa: E402
from app.engines.torch_engine import TorchEngine  # noqa: E402
from app.pipeline.decode import decode_to_pcm  # noqa: E402

models, clip = Path(sys.argv[1]), Path(sys.argv[2])
device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
audio = decode_to_pcm(clip, Path("/tmp/check.pcm")).read()
engine = TorchEngine(Path("/tmp/check-cache"), device, "auto", 16)
model = engine.load("base", models / "base")
step = 30 * 16000
options = DecodeOptions(language="en")
windows = [SpeechWindow(audio[s : s + step], options) for s in range(0, len(audio), step)]
script = clip.with_suffix(".txt").read_text()
for graphs in (True, False) if device == "cuda" else (False,):
    model._decoder.static._use_graphs = graphs
    started = time.perf_counter()
    texts = model.decode_windows(windows)
    text = " ".join(s.text for w in texts for s in w.segments)
    took = time.perf_counter() - started
    print(f"graphs={graphs} {took:.2f}s WER {wer(script, text):.4f} | {text[:400]}", flush=True)
