"""ASGI entry point for `uvicorn app.main:app`; settings come from the environment."""

from app.allocator import tune_malloc

# Before any import starts a thread: glibc's arena limit binds only threads started later.
tune_malloc()

# CTranslate2 before torch. CPython binds an extension's symbols as it loads it, so loaded
# first, CTranslate2's OpenMP calls bind to its own libgomp copy. Loaded after torch (which
# puts its libgomp in the global symbol scope) they bind to torch's, the two share one OpenMP
# runtime, and once CTranslate2 has run, its worker's threads and torch's are more than the
# cores: libgomp stops spinning and torch's LSTMs (diarization) ran 3-5x slower on 2 cores
# (bench/RESULTS.md, "Diarization on the development set").
import ctranslate2  # noqa: E402, F401

from app.factory import create_app  # noqa: E402

app = create_app()
