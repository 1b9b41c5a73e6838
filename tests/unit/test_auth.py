"""Which keys a request offers and which configured key it is (the HTTP behaviour is tested
end to end in tests/test_e2e_auth.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from app.api.auth import KeyRing, key_id, presented_keys
from app.config import Settings
from app.domain import Tenant


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_keys_come_from_every_place_a_client_may_send_them() -> None:
    assert presented_keys(Headers({"authorization": "Bearer k1"})) == ["k1"]
    assert presented_keys(Headers({"authorization": "bearer  k1 "})) == ["k1"]
    assert presented_keys(Headers({"x-api-key": "k2"})) == ["k2"]
    assert presented_keys(Headers({"authorization": basic("speakr", "k3")})) == ["k3"]
    assert presented_keys(Headers({"authorization": basic("k4", "")})) == ["k4"]
    assert presented_keys(Headers({"authorization": "Basic %%%"})) == []
    assert presented_keys(Headers({})) == []


def test_key_ring_from_the_variable_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text("# staff\nfile-key-1\n\n  file-key-2  \nboss-key admin\n")
    ring = KeyRing.from_settings(
        Settings(_env_file=None, api_keys=SecretStr(" env-key ,,file-key-1"), api_keys_file=file)
    )
    keys = ("env-key", "file-key-1", "file-key-2", "boss-key")
    assert [t.key_id for _, t in ring.keys] == [key_id(k) for k in keys]
    assert ring.identify("file-key-2") == Tenant(key_id("file-key-2"), admin=False)
    assert ring.identify("boss-key") == Tenant(key_id("boss-key"), admin=True)
    assert ring.identify("file-key") is None and ring.identify("") is None
    assert key_id("env-key").startswith("key-") and "env-key" not in key_id("env-key")
    assert not KeyRing.from_settings(Settings(_env_file=None)).enabled


def test_an_unreadable_key_file_stops_the_server_from_starting_open(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API_KEYS_FILE"):
        KeyRing.from_settings(Settings(_env_file=None, api_keys_file=tmp_path / "missing"))


def test_a_key_file_line_with_anything_but_admin_after_the_key_is_refused(
    tmp_path: Path,
) -> None:
    file = tmp_path / "keys"
    file.write_text("good-key\nother-key amdin\n")
    with pytest.raises(ValueError, match="admin"):
        KeyRing.from_settings(Settings(_env_file=None, api_keys_file=file))
