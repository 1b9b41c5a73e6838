from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.metrics import Metrics
from app.models.cache import ModelCache
from app.models.eviction import IdleEvictor


class Model:
    def __init__(self) -> None:
        self.unloaded = False

    def unload(self) -> None:
        self.unloaded = True


def test_racing_requests_load_once() -> None:
    cache = ModelCache()
    loads: list[int] = []
    lock = threading.Lock()

    def load() -> Model:
        time.sleep(0.1)
        with lock:
            loads.append(1)
        return Model()

    def use() -> Model:
        with cache.use("whisper/base", load) as model:
            return model

    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: use(), range(8)))
    assert len(loads) == 1 and all(m is models[0] for m in models)
    assert cache.loaded() == ["whisper/base"] and cache.loaded("whisper") == ["base"]


def test_a_model_in_use_is_never_evicted() -> None:
    cache = ModelCache()
    with cache.use("whisper/base", Model) as busy:
        time.sleep(0.02)
        assert cache.evict_idle(0.0) == []
        assert not busy.unloaded
    time.sleep(0.02)
    assert cache.evict_idle(0.01) == ["whisper/base"]
    assert busy.unloaded and cache.loaded() == []


def test_background_sweep_unloads_idle_models_and_counts_them() -> None:
    cache = ModelCache()
    metrics = Metrics()
    with cache.use("diarization/x", Model) as model:
        pass
    evictor = IdleEvictor(cache, metrics, keep_alive_s=0.05, interval_s=0.05)

    async def run_briefly() -> None:
        task = asyncio.create_task(evictor.run())
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(run_briefly())
    assert model.unloaded and cache.loaded() == []
    value = metrics.registry.get_sample_value(
        "whisperx_model_evictions_total", {"model": "diarization/x"}
    )
    assert value == 1.0


def test_disabled_evictor_keeps_everything() -> None:
    cache = ModelCache()
    with cache.use("whisper/base", Model):
        pass
    assert IdleEvictor(cache, Metrics(), keep_alive_s=0, interval_s=30).sweep() == []
    assert cache.loaded() == ["whisper/base"]


def test_a_failed_load_is_remembered_then_retried() -> None:
    attempts: list[int] = []

    def broken() -> Model:
        attempts.append(1)
        raise OSError("weights missing")

    cache = ModelCache(failure_ttl_s=0.2)
    for _ in range(3):
        with pytest.raises(OSError, match="weights missing"), cache.use("whisper/x", broken):
            pass
    assert len(attempts) == 1  # the second and third requests did not try again
    time.sleep(0.25)
    with cache.use("whisper/x", Model) as model:
        assert isinstance(model, Model)
    assert len(attempts) == 1


def test_max_loaded_unloads_the_least_recently_used_idle_model_of_its_kind() -> None:
    evicted: list[str] = []
    cache = ModelCache(max_loaded={"whisper": 2}, on_evict=evicted.append)
    models = {}
    for name in ("a", "b"):
        with cache.use(f"whisper/{name}", Model) as model:
            models[name] = model
    with cache.use("whisper/a", Model):  # a is now the more recently used
        pass
    with cache.use("diarization/x", Model):  # another kind: not counted
        pass
    with cache.use("whisper/c", Model) as c:
        assert cache.loaded("whisper") == ["a", "c"] and models["b"].unloaded
        assert evicted == ["whisper/b"]
        # Both loaded ones in use (c here, a below): the next loads beside them.
        with cache.use("whisper/a", Model), cache.use("whisper/d", Model):
            assert cache.loaded("whisper") == ["a", "c", "d"]
    assert not c.unloaded and cache.loaded("diarization") == ["x"]
