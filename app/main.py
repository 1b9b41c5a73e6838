"""ASGI entry point for `uvicorn app.main:app`; settings come from the environment."""

from app.allocator import tune_malloc

# Before any import starts a thread: glibc's arena limit binds only threads started later.
tune_malloc()

from app.factory import create_app  # noqa: E402

app = create_app()
