"""The app factory: every service is built in the lifespan and lives on app.state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.api import asr, jobs_routes, openai_routes, system
from app.api.auth import ApiKeyMiddleware, KeyRing
from app.api.docs import install_docs
from app.api.error_handlers import install_error_handlers
from app.api.event_schemas import EVENT_MODELS
from app.api.key_concurrency import KeyConcurrencyMiddleware
from app.api.openapi_spec import with_models, without_validation_errors
from app.api.request_metrics import RequestMetricsMiddleware
from app.api.upload_limit import UploadLimitMiddleware
from app.config import Settings
from app.engines.base import Engine
from app.stack import model_services

log = logging.getLogger("app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    remote = app.state.remote
    if remote is not None:  # the ingress of a Ray Serve application: no model work here
        from app.serve.front import front_services  # the ray extra, imported only then

        async with front_services(settings, app.state, remote):
            yield
        return
    async with model_services(settings, app.state, engine=app.state.engine_override):
        yield


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, remote: Any = None
) -> FastAPI:
    """Build the app. `engine` replaces the configured ASR engine (tests use fakes);
    `remote` (ray mode's ingress) is the handle of the transcription deployment that does
    the model work instead of this process."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = FastAPI(
        title="whisperx-service",
        version=__version__,
        description="Self-hosted speech-to-text: whisper-asr-webservice and OpenAI-compatible "
        "APIs on Whisper, offline first.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs with local assets (no CDN offline)
        redoc_url=None,
    )
    app.state.settings = settings

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = with_models(FastAPI.openapi(app), EVENT_MODELS)
            app.openapi_schema = without_validation_errors(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.engine_override = engine
    app.state.remote = remote
    install_error_handlers(app)
    install_docs(app)
    app.include_router(system.router)
    app.include_router(asr.router)
    app.include_router(openai_routes.router)
    app.include_router(jobs_routes.router)
    app.mount("/web", StaticFiles(directory=system.WEB_DIR), name="web")
    # Last added runs first: metrics see every answer, the 401s and the 413s of the upload
    # limit included; keys, then each key's requests in flight, are checked before any
    # upload is read.
    app.add_middleware(UploadLimitMiddleware, max_file_bytes=settings.max_file_size_bytes)
    app.add_middleware(KeyConcurrencyMiddleware, most=settings.max_concurrent_requests_per_key)
    keys = KeyRing.from_settings(settings)
    if keys.enabled:
        log.info(
            "API keys required (%d keys: %s)",
            len(keys.keys),
            ", ".join(f"{t.key_id}{' (admin)' if t.admin else ''}" for _, t in keys.keys),
        )
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(RequestMetricsMiddleware)
    return app
