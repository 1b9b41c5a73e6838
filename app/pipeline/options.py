"""What a model can be asked: checked before any work, so a request is refused with a 400
rather than answered with the wrong thing."""

from __future__ import annotations

from app.domain import DecodeOptions
from app.errors import InvalidRequest


def check_options(name: str, english_only: bool, options: DecodeOptions) -> None:
    """English-only models cannot translate or transcribe other languages: say so rather
    than silently transcribing as English (which is what the engines would do)."""
    if not english_only:
        return
    if options.task == "translate":
        raise InvalidRequest(
            f"Model '{name}' is English-only and cannot translate; use a multilingual "
            "model such as 'base'.",
            param="model",
        )
    if options.language not in (None, "en"):
        raise InvalidRequest(
            f"Model '{name}' is English-only but language='{options.language}' was "
            "requested; use a multilingual model such as 'base'.",
            param="language",
        )
