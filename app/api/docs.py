"""Interactive API docs served from this process: FastAPI's default /docs page loads
Swagger UI from a CDN, which an offline install cannot reach. The assets ship in the
`fastapi-offline` package (Swagger UI 5, which renders OpenAPI 3.1)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

_STATIC_URL = "/static/docs"


def _assets_dir() -> Path:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the fastapi-offline package (Swagger UI assets) is missing")
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, with every asset served locally."""
    app.mount(_STATIC_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{_STATIC_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            redoc_js_url=f"{_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{_STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
