"""The diarizer's networks through ONNX Runtime on the CPU, where it beats torch eager
(2-core VM: CAM++ 2.3x, 10 s of speech in 43 vs 99 ms; the segmentation network 1.8x, four
10 s chunks in 47 vs 83 ms; outputs equal to 3e-5). Each network is exported once into the
cache folder, keyed by its weights' digest; if that fails, torch eager, with a log line."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2
"""Part of every exported file's name: files of an older export (other input names) are
never opened."""

Session = Callable[[np.ndarray], np.ndarray]
"""One input array -> the network's (first) output array."""


def weights_digest(model: torch.nn.Module) -> str:
    """A short digest of the model's parameters: a new export whenever the weights change."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cpu_session(
    model: torch.nn.Module,
    example: torch.Tensor,
    dynamic_axes: dict[int, str],
    cache_dir: Path,
    name: str,
) -> Session | None:
    """An ONNX Runtime session of `model` (exported into `cache_dir` under `name` the first
    time, from `example`, with `dynamic_axes` of its input free), or None (logged) when
    ONNX Runtime cannot be had or the export fails."""
    path = cache_dir / f"{name}.v{EXPORT_FORMAT}.onnx"
    try:
        import onnxruntime as ort

        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            with warnings.catch_warnings():  # the tracer's notes on shape branches
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (example,),
                    str(partial),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={"input": dynamic_axes},
                    dynamo=False,
                    opset_version=17,
                )
            partial.replace(path)  # a crash mid-export never leaves a half file behind
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        # Two sessions (segmentation, CAM++) and torch's OpenMP pool take turns on the same
        # cores: a pool left spinning after its work only takes cycles from the next one
        # (in the pipeline, the segmentation export was slower than torch with spinning
        # on, ~5 % faster with it off: bench/diar_speed.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        log.warning("%s runs in torch eager: ONNX Runtime unavailable (%s)", name, exc)
        return None

    def run(inputs: np.ndarray) -> np.ndarray:
        result: np.ndarray = session.run(None, {"input": inputs})[0]
        return result

    return run


def fast_segmentation(inference: Any, cache_dir: Path) -> bool:
    """Route pyannote's segmentation `Inference` through ONNX Runtime: its `infer` (a batch
    of chunks -> per-frame scores, converted as pyannote converts them) is replaced.
    False (torch eager stays) when no session can be had."""
    model = inference.model
    if not hasattr(inference.conversion, "forward"):  # several tasks: not this pipeline's
        return False
    example = torch.zeros(1, 1, int(model.specifications.duration * model.audio.sample_rate))
    name = f"segmentation-{weights_digest(model)}"
    session = cpu_session(model, example, {0: "batch"}, cache_dir, name)
    if session is None:
        return False

    def infer(chunks: torch.Tensor) -> np.ndarray:
        scores = torch.from_numpy(session(chunks.numpy().astype(np.float32, copy=False)))
        with torch.inference_mode():
            converted: np.ndarray = inference.conversion(scores).cpu().numpy()
        return converted

    inference.infer = infer
    return True
