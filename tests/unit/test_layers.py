"""The house's layers, written down once: a module of app/ imports only from its own layer or
the layers below it (data flows down, never back up). A new import that runs back up the
house fails here with the module, the import and the two layers named."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"

# Top to bottom. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry", ("app.main", "app.factory", "app.serve")),  # processes, the app, Ray Serve
    ("api", ("app.api",)),  # thin routers, schemas, auth
    ("wiring", ("app.stack",)),  # builds the services on app.state
    ("jobs", ("app.jobs",)),  # store, worker, webhooks
    ("run", ("app.run",)),  # one transcription: admission, permit, work folder, cancel token
    ("pipeline", ("app.pipeline",)),  # decode, VAD, windows, the stages, the runner
    ("stages", ("app.scheduler", "app.alignment", "app.diarization")),
    ("engines", ("app.engines",)),
    ("models", ("app.models",)),  # registry, hub, converters, the loaded-model cache
    (
        "base",
        (
            "app.domain",
            "app.errors",
            "app.config",
            "app.metrics",
            "app.languages",
            "app.intervals",
            "app.writers",
            "app.allocator",
            "app.compute_thread",
            "app",  # app/__init__.py: the version
        ),
    ),
)


EXACT = frozenset({"app"})
"""Packages placed as themselves only (their __init__): what lies in them has its own place,
so a new module there must be given one."""


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            below = prefix not in EXACT and module.startswith(prefix + ".")
            if (module == prefix or below) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if n == "app" or n.startswith("app.")]
    return found


def upward_imports(root: Path = APP) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        own = layer_of(module)
        for target in app_imports(path):
            theirs = layer_of(target)
            if theirs < own:
                problems.append(
                    f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]})"
                )
    return problems


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    problems = upward_imports()
    assert not problems, "\n".join(problems)


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    """The check itself: an engine that imported the job store would be caught."""
    fake = tmp_path / "app" / "engines"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from app.jobs.store import JobStore\n")
    global APP
    real, APP = APP, tmp_path / "app"
    try:
        assert upward_imports(APP) == ["app.engines.bad (engines) imports app.jobs.store (jobs)"]
    finally:
        APP = real
