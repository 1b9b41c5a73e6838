"""The offline pipeline for several requests at once: copies that share its networks, and
its two networks called through a NetworkBatcher (app/scheduler/network_batcher.py), so
that requests diarizing side by side share the networks' batches."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # injected (app/stack.py): the scheduler sits above this package
    from app.scheduler.network_batcher import NetworkBatcher


def route_through(pipeline: Any, batcher: NetworkBatcher) -> None:
    """The segmentation network's batches of chunks and the speaker embedding's batches of
    crops go through `batcher`."""
    inference = pipeline._segmentation
    inference.infer = batcher.wrap("segmentation", inference.infer)
    embedding = pipeline._embedding
    if hasattr(embedding, "run"):  # CAM++ (GE2E runs its LSTM in the request's thread)
        embedding.run = batcher.wrap("embedding", embedding.run)


def copy_pipeline(pipeline: Any) -> Any:
    """A pipeline of its own for one more request at a time (pyannote keeps per-call state
    on the instance: the clustering's, the inference buffers) that shares the original's
    networks: the segmentation model and the embedding, which hold no per-call state."""
    shared = (pipeline._segmentation.model, pipeline._embedding)
    return copy.deepcopy(pipeline, {id(part): part for part in shared})
