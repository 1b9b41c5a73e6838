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


def test_defaults_match_the_readme() -> None:
    settings = Settings(_env_file=None)
    assert settings.port == 9001 and settings.max_queue_size == 32
    assert settings.gpu_concurrency == 1 and settings.model_eviction_interval_seconds == 60
