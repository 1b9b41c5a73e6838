"""README and .env.example document every setting the service reads, and no others."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_env_example_lists_every_setting() -> None:
    documented = set(re.findall(r"^#?([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == setting_names()


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M))
    assert documented == setting_names()


def _as_setting(name: str, raw: str) -> object:
    """The value `raw` (as documented for variable `name`) becomes once Settings reads it."""
    value = raw.replace("~", str(Path.home()), 1) if raw.startswith("~") else raw
    # model_validate reads neither the environment nor .env: only what it is given.
    return getattr(Settings.model_validate({name.lower(): value}), name.lower())


def _default(name: str) -> object:
    return getattr(Settings.model_validate({}), name.lower())


def test_env_example_values_are_the_defaults() -> None:
    """`.env.example` says its values are the defaults: an empty value means unset."""
    lines = re.findall(r"^#?([A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M)
    assert len(lines) == len(setting_names())
    for name, raw in lines:
        if raw == "":
            assert _default(name) is None, f"{name} is documented as unset"
        else:
            assert _as_setting(name, raw) == _default(name), (name, raw)


def test_defaults_match_the_readme() -> None:
    """The README's default column: a `literal` is the value; plain words (unset, hub
    default) mean the setting is unset."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", table, re.M)
    assert len(rows) == len(setting_names())
    for name, cell in rows:
        literal = re.fullmatch(r"`([^`]*)`", cell.strip())
        if literal is None:
            assert _default(name) is None, f"{name}: README says '{cell.strip()}'"
        else:
            assert _as_setting(name, literal.group(1)) == _default(name), (name, cell)
