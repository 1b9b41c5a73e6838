"""Shared fixtures. The real service runs in a subprocess over real HTTP (live_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, start_server
from model_files import bundled_model

ServerFactory = Callable[..., LiveServer]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_en(cache_dir: Path) -> Path:
    """The bundled CTranslate2 tiny.en folder, as the registry lays it out."""
    return bundled_model("tiny.en", cache_dir)


@pytest.fixture(scope="module")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> Iterator[ServerFactory]:
    """Start servers with extra environment (`factory(GPU_CONCURRENCY="2")`); every server
    a module started is stopped when the module is done."""
    started: list[LiveServer] = []

    def factory(**env: str) -> LiveServer:
        server = start_server(tmp_path_factory.mktemp("server"), cache_dir, **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[LiveServer]:
    """The service on its offline defaults (default model: bundled base), shared."""
    server = start_server(tmp_path_factory.mktemp("server"), cache_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=300) as c:
        yield c
