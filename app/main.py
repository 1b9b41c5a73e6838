"""ASGI entry point for `uvicorn app.main:app`; settings come from the environment."""

from app.factory import create_app

app = create_app()
