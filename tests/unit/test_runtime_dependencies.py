"""Everything app/ imports is declared as a runtime dependency of the project (or of the extra
its module belongs to), never provided only by the dev group or by chance through another
package: the README's serve command installs `--no-dev`, so a dev-only import is a crash on a
newcomer's machine (httpx was one)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

# Modules that run only with an extra installed, and the extra that provides what they import.
EXTRA_MODULES = {
    "app.serve": "ray",
    "app.engines.mlx_engine": "mlx",
    "app.models.ct2_to_mlx": "mlx",
    "app.engines.memory": "mlx",  # mlx.core only when the MLX engine has loaded it
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of the requirements that apply on this platform."""
    names = set()
    for line in requirements:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.add(_canonical(req.name))
    return names


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(package_dir: Path) -> Iterator[tuple[str, str]]:
    """(module, top-level import) for every import statement of every module, including the
    ones inside functions (they run too, only later)."""
    for path in sorted(package_dir.rglob("*.py")):
        module = _module_name(path, package_dir.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in ("__future__", "app"):
                    yield module, top


def undeclared_imports(
    pyproject: Mapping[str, object],
    package_dir: Path,
    providers: Mapping[str, list[str]],
) -> list[str]:
    """One line per import that no declared runtime distribution provides."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    runtime = _names(project.get("dependencies", []))
    extras = {k: _names(v) for k, v in project.get("optional-dependencies", {}).items()}
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(groups, dict)
    dev = _names([g for g in groups.get("dev", []) if isinstance(g, str)])
    problems = []
    for module, top in imported_names(package_dir):
        extra = next(
            (
                e
                for prefix, e in EXTRA_MODULES.items()
                if module == prefix or module.startswith(f"{prefix}.")
            ),
            None,
        )
        allowed = runtime | (extras.get(extra, set()) if extra else set())
        candidates = {_canonical(d) for d in providers.get(top, [])}
        if candidates & allowed:
            continue
        where = (
            "only in the dev group"
            if candidates & dev
            else f"from {', '.join(sorted(candidates))}, not declared"
            if candidates
            else "installed by no distribution here"
        )
        problems.append(f"{module} imports {top}: {where}")
    return sorted(set(problems))


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_import_of_app_is_a_declared_runtime_dependency() -> None:
    problems = undeclared_imports(_pyproject(), ROOT / "app", metadata.packages_distributions())
    assert not problems, "\n".join(problems)


def test_an_import_provided_only_by_the_dev_group_is_reported() -> None:
    """The check itself: with httpx moved back to the dev group (as it was), it fails."""
    pyproject = _pyproject()
    project = pyproject["project"]
    groups = pyproject["dependency-groups"]
    assert isinstance(project, dict) and isinstance(groups, dict)
    project["dependencies"] = [
        d for d in project["dependencies"] if _canonical(Requirement(d).name) != "httpx"
    ]
    groups["dev"] = [*groups["dev"], "httpx>=0.27"]
    problems = undeclared_imports(pyproject, ROOT / "app", metadata.packages_distributions())
    assert problems == ["app.jobs.webhooks imports httpx: only in the dev group"]
