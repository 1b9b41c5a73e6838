"""Parsing of loosely typed request fields (query strings and form fields are all strings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import UploadFile

from app.domain import DecodeOptions, SpeakerLimits, SpeakerRequest, TranscriptionRequest
from app.errors import InvalidRequest
from app.languages import normalize_language

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def form_list(form: Any, name: str) -> list[str]:
    """Every non-empty value of an array field, sent as `name[]` (as the OpenAI SDK sends
    lists) or as repeated `name`, stripped."""
    values = (str(v).strip() for v in (*form.getlist(f"{name}[]"), *form.getlist(name)))
    return [v for v in values if v]


class Fields:
    """Query parameters and form fields of one request, read as one mapping (form wins)."""

    def __init__(self, query: Mapping[str, str], form: Mapping[str, Any]) -> None:
        self._values: dict[str, str] = {k: v for k, v in query.items()}
        for key, value in form.items():
            if not isinstance(value, UploadFile):
                self._values[key] = str(value)

    def keys(self) -> set[str]:
        return set(self._values)

    def text(self, *names: str) -> str | None:
        """First non-empty value among `names` (aliases), stripped; None if absent."""
        for name in names:
            value = self._values.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    def boolean(self, *names: str, default: bool) -> bool:
        raw = self.text(*names)
        if raw is None:
            return default
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise InvalidRequest(f"'{names[0]}' must be true or false, not '{raw}'.", param=names[0])

    def integer(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(f"'{name}' must be an integer, not '{raw}'.", param=name) from None
        if minimum is not None and value < minimum:
            raise InvalidRequest(f"'{name}' must be at least {minimum}, not {value}.", param=name)
        if maximum is not None and value > maximum:
            raise InvalidRequest(f"'{name}' must be at most {maximum}, not {value}.", param=name)
        return value

    def number(self, name: str, *, minimum: float, maximum: float) -> float | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise InvalidRequest(f"'{name}' must be a number, not '{raw}'.", param=name) from None
        if not minimum <= value <= maximum:
            raise InvalidRequest(
                f"'{name}' must be between {minimum:g} and {maximum:g}.", param=name
            )
        return value

    def choice(self, *names: str, options: tuple[str, ...], default: str) -> str:
        raw = self.text(*names)
        if raw is None:
            return default
        if raw.lower() not in options:
            raise InvalidRequest(
                f"'{names[0]}' must be one of {', '.join(options)}; got '{raw}'.", param=names[0]
            )
        return raw.lower()

    def language(self, name: str = "language") -> str | None:
        raw = self.text(name)
        if raw is None or raw.lower() == "auto":
            return None
        code = normalize_language(raw)
        if code is None:
            raise InvalidRequest(
                f"Unknown language '{raw}': use an ISO-639-1 code such as 'en' or 'es'.",
                param=name,
            )
        return code


MAX_SPEAKERS = 64
"""The largest speaker count a request may name (the clustering's work grows with it)."""


def speaker_limits(fields: Fields) -> SpeakerLimits:
    """num_speakers, or min/max_speakers: 1 to MAX_SPEAKERS, and min <= max."""
    num = fields.integer("num_speakers", minimum=1, maximum=MAX_SPEAKERS)
    low = fields.integer("min_speakers", minimum=1, maximum=MAX_SPEAKERS)
    high = fields.integer("max_speakers", minimum=1, maximum=MAX_SPEAKERS)
    if low is not None and high is not None and low > high:
        raise InvalidRequest(
            f"min_speakers ({low}) is greater than max_speakers ({high}).", param="min_speakers"
        )
    if num is not None:
        return SpeakerLimits(num_speakers=num)  # an exact count overrides the bounds
    return SpeakerLimits(min_speakers=low, max_speakers=high)


def asr_request(fields: Fields) -> TranscriptionRequest:
    """/asr's options (whisper-asr-webservice names and defaults), also what a job takes."""
    options = DecodeOptions(
        task=fields.choice("task", options=("transcribe", "translate"), default="transcribe"),  # type: ignore[arg-type]
        language=fields.language(),
        initial_prompt=fields.text("initial_prompt", "prompt"),
        hotwords=fields.text("hotwords"),
        temperature=fields.number("temperature", minimum=0.0, maximum=1.0),
        word_timestamps=fields.boolean("word_timestamps", default=True),
        vad_filter=fields.boolean("vad_filter", default=True),
    )
    limits = speaker_limits(fields)
    speakers = None
    if fields.boolean("diarize", "enable_diarization", default=True):
        speakers = SpeakerRequest(
            limits, return_embeddings=fields.boolean("return_speaker_embeddings", default=False)
        )
    return TranscriptionRequest(
        model=fields.text("model"),
        options=options,
        speakers=speakers,
        encoded=fields.boolean("encode", default=True),
    )
