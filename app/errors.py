"""Service exceptions and the one table that maps them to HTTP status codes.

Routers and services raise these; `app/error_handlers.py` renders them in the error shape of
the API family that the request belongs to (OpenAI's under /v1, FastAPI's `detail` elsewhere).
"""

from __future__ import annotations

import re

_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"\\/:]+){2,}[\\/]?")


def safe_reason(exc: BaseException) -> str:
    """An exception as a client may read it (in `notes`): its type and message, with file
    system paths (where the server keeps its models, uploads and code) left out."""
    if isinstance(exc, ServiceError):
        return exc.message
    text = _PATH.sub("<path>", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ServiceError(Exception):
    """Base class: a failure with a message that is safe and useful to show the client."""

    code: str = "internal_error"
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(ServiceError):
    code = "invalid_request"
    error_type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class ModelNotAvailable(InvalidRequest):
    code = "model_not_found"


class AudioDecodeError(InvalidRequest):
    """An upload that cannot be decoded. Its message always begins with DECODE_FAILED:
    Speakr retries such an upload once, converted to MP3, only when the error text holds
    one of a few phrases, this one among them."""

    code = "invalid_audio"
    DECODE_FAILED = "Failed to decode audio: "

    def __init__(self, reason: str, *, param: str | None = None, code: str | None = None) -> None:
        # Idempotent: an error pickled back from a CPU worker process is built again from
        # its message.
        message = reason if reason.startswith(self.DECODE_FAILED) else self.DECODE_FAILED + reason
        super().__init__(message, param=param, code=code)


class EmptyUpload(AudioDecodeError):
    code = "empty_file"


class UploadTooLarge(ServiceError):
    code = "file_too_large"
    error_type = "invalid_request_error"

    @classmethod
    def over(cls, limit_bytes: int) -> UploadTooLarge:
        """The one 413 for an upload past MAX_FILE_SIZE_MB, wherever it is noticed."""
        return cls(
            f"The file is larger than MAX_FILE_SIZE_MB ({limit_bytes / 1048576:g} MiB).",
            param="file",
        )


class UnsupportedMediaType(ServiceError):
    """A request body that is not multipart/form-data where an upload is expected."""

    code = "unsupported_media_type"
    error_type = "invalid_request_error"


class AudioTooLong(ServiceError):
    """Decoded audio past MAX_AUDIO_DURATION_S: refused before any model runs."""

    code = "audio_too_long"
    error_type = "invalid_request_error"


class NotFound(ServiceError):
    code = "not_found"
    error_type = "invalid_request_error"


class Conflict(ServiceError):
    """The resource exists but is not in a state that allows this (e.g. no result yet)."""

    code = "conflict"
    error_type = "invalid_request_error"


class QueueFull(ServiceError):
    code = "queue_full"
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LimitReached(ServiceError):
    """A per-key limit (queued jobs): 429 with Retry-After."""

    code = "rate_limit_exceeded"
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClientGone(ServiceError):
    """The client went away before its request ran; nobody reads the answer."""

    code = "client_closed_request"
    error_type = "invalid_request_error"


class EngineUnavailable(ServiceError):
    code = "engine_unavailable"
    error_type = "server_error"


# Exception -> status. The most specific class wins (walk the MRO).
STATUS_BY_ERROR: dict[type[ServiceError], int] = {
    InvalidRequest: 400,
    UploadTooLarge: 413,
    AudioTooLong: 413,
    UnsupportedMediaType: 415,
    NotFound: 404,
    Conflict: 409,
    QueueFull: 503,
    LimitReached: 429,
    ClientGone: 499,  # nginx's "client closed request"
    EngineUnavailable: 503,
    ServiceError: 500,
}


def status_for(error: ServiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def is_retryable(status: int) -> bool:
    """Whether a client (the OpenAI SDK reads `x-should-retry`) should try again."""
    return status in (408, 409, 429) or status >= 500


class StageAbandoned(Exception):
    """Raised inside a stage (or a network call queued for one) whose request failed or was
    cancelled while the stage ran; never reaches a client (the request has its own error)."""
