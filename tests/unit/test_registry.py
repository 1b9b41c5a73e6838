from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ModelNotAvailable
from app.models.registry import ModelRegistry


class FakeHub:
    def __init__(self, reachable: bool, cached: dict[str, Path] | None = None) -> None:
        self._reachable = reachable
        self._cached = cached or {}
        self.downloads: list[str] = []

    def reachable(self) -> bool:
        return self._reachable

    def cached(self, repo: str) -> Path | None:
        return self._cached.get(repo)

    def download(self, repo: str) -> Path:
        self.downloads.append(repo)
        return Path("/downloaded") / repo


def registry(tmp_path: Path, hub: FakeHub, **settings: object) -> ModelRegistry:
    return ModelRegistry(Settings(_env_file=None, cache_dir=tmp_path, **settings), hub)  # type: ignore[arg-type]


def test_offline_default_is_the_bundled_base_model(tmp_path: Path) -> None:
    reg = registry(tmp_path, FakeHub(reachable=False))
    assert reg.default_model() == "base"
    ref = reg.resolve(None)
    assert ref.name == "base" and ref.source == "bundled"
    assert ref.path is not None and (ref.path / "model.bin").stat().st_size > 140_000_000
    assert reg.resolve("tiny.en").source == "bundled"
    assert reg.available_names() == ["base", "tiny.en"]


def test_split_model_is_assembled_once_and_repaired_when_short(tmp_path: Path) -> None:
    reg = registry(tmp_path, FakeHub(reachable=False))
    path = reg.resolve("base").path
    assert path is not None
    model_bin = path / "model.bin"
    size, mtime = model_bin.stat().st_size, model_bin.stat().st_mtime_ns
    assert reg.resolve("base").path == path and model_bin.stat().st_mtime_ns == mtime
    model_bin.write_bytes(b"short")  # e.g. a crash or a full disk left it incomplete
    reg.resolve("base")
    assert model_bin.stat().st_size == size


def test_aliases_and_whisper1(tmp_path: Path) -> None:
    reg = registry(tmp_path, FakeHub(reachable=False), openai_whisper1_model="tiny.en")
    assert reg.canonical("whisper-1") == "tiny.en"
    assert reg.canonical("turbo") == "large-v3-turbo"
    assert reg.canonical("whisper-large-v3") == "large-v3"
    assert reg.resolve("whisper-tiny.en").name == "tiny.en"
    assert registry(tmp_path, FakeHub(False)).canonical("whisper-1") == "base"


def test_preload_model_sets_the_default(tmp_path: Path) -> None:
    assert registry(tmp_path, FakeHub(False), preload_model="tiny.en").default_model() == "tiny.en"


def test_unavailable_model_is_a_400_naming_what_is_available(tmp_path: Path) -> None:
    reg = registry(tmp_path, FakeHub(reachable=False), allowed_models="*")
    with pytest.raises(ModelNotAvailable, match=r"cannot be reached.*base, tiny\.en"):
        reg.resolve("large-v3")
    offline = registry(tmp_path, FakeHub(False), hf_hub_offline=True, allowed_models="*")
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE"):
        offline.resolve("large-v3")


def test_a_model_outside_allowed_models_is_refused_before_any_download(tmp_path: Path) -> None:
    """By default only what the server was set up with (bundled, local, PRELOAD_MODEL):
    a client cannot make it download and hold every Whisper size."""
    hub = FakeHub(reachable=True)
    reg = registry(tmp_path, hub)
    for name in ("large-v3", "turbo", "small"):
        with pytest.raises(ModelNotAvailable, match="ALLOWED_MODELS"):
            reg.resolve(name)
    assert hub.downloads == [] and "large-v3" not in reg.available_names()
    assert reg.resolve("tiny.en").source == "bundled"
    chosen = registry(tmp_path, hub, allowed_models="large-v3, turbo")
    assert chosen.resolve("whisper-large-v3").name == "large-v3"
    assert chosen.resolve("large-v3-turbo").source == "hub"
    with pytest.raises(ModelNotAvailable, match="ALLOWED_MODELS"):
        chosen.resolve("tiny.en")
    preloaded = registry(tmp_path, hub, preload_model="small")
    assert preloaded.resolve(None).name == "small" and preloaded.resolve("small").source == "hub"


@pytest.mark.parametrize("name", ["../base", "/etc/passwd", "base/../../x", "nope"])
def test_names_are_never_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelNotAvailable, match="Unknown model"):
        registry(tmp_path, FakeHub(reachable=True)).resolve(name)


def test_hub_path_when_online(tmp_path: Path) -> None:
    hub = FakeHub(reachable=True)
    reg = registry(tmp_path, hub, allowed_models="*")
    ref = reg.resolve("large-v3")
    assert ref.source == "hub" and ref.hub_repo == "Systran/faster-whisper-large-v3"
    assert reg.materialize(ref) == Path("/downloaded/Systran/faster-whisper-large-v3")
    assert "large-v3" in reg.available_names()


def test_hub_cache_and_local_folder_serve_offline(tmp_path: Path) -> None:
    cached = tmp_path / "snap"
    (tmp_path / "models" / "my-finetune").mkdir(parents=True)
    (tmp_path / "models" / "my-finetune" / "model.bin").write_bytes(b"x")
    hub = FakeHub(reachable=False, cached={"Systran/faster-whisper-small": cached})
    reg = registry(tmp_path, hub)
    assert reg.resolve("small").source == "hub-cache"
    local = reg.resolve("my-finetune")
    assert local.source == "local" and local.path == tmp_path / "models" / "my-finetune"
    assert {"small", "my-finetune", "base", "tiny.en"} <= set(reg.available_names())


def test_auto_engine_is_torch_on_cuda_and_ctranslate2_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.engines import select

    def settings(**values: str) -> Settings:
        return Settings(_env_file=None, cache_dir=tmp_path, **values)  # type: ignore[arg-type]

    monkeypatch.setattr(select, "is_apple_silicon", lambda: False)
    monkeypatch.setattr(select, "cuda_available", lambda: True)
    assert select.engine_name(settings()) == "torch"
    assert select.engine_name(settings(device="cpu")) == "ctranslate2"
    assert select.engine_name(settings(asr_engine="ctranslate2")) == "ctranslate2"
    monkeypatch.setattr(select, "cuda_available", lambda: False)
    assert select.engine_name(settings()) == "ctranslate2"
    monkeypatch.setattr(select, "is_apple_silicon", lambda: True)
    assert select.engine_name(settings()) == "mlx"
