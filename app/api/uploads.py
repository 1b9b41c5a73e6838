"""Uploads: copied to a private temporary file (removed afterwards), size limit enforced."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from app.api.auth import tenant_of
from app.api.openapi_spec import upload_body
from app.errors import EmptyUpload, InvalidRequest, UnsupportedMediaType, UploadTooLarge
from app.jobs.usage import AudioAllowance

_COPY_CHUNK = 1024 * 1024


def upload_route(field: str) -> dict[str, Any]:
    """What every upload route declares: the multipart check (a 415 otherwise) and, in the
    spec, the media types of its file part `field`."""
    return {"dependencies": [Depends(require_multipart)], "openapi_extra": upload_body(field)}


async def require_multipart(request: Request) -> None:
    """Dependency of upload routes: a body of another type cannot carry the file, a 415
    rather than a confusing "no file was sent" (no body at all stays that 400)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Send the upload as multipart/form-data, not '{media_type}'.", param="file"
        )


def _copy_limited(src: BinaryIO, dst: BinaryIO, limit: int) -> int:
    written = 0
    while chunk := src.read(_COPY_CHUNK):
        written += len(chunk)
        if written > limit:
            raise UploadTooLarge.over(limit)
        dst.write(chunk)
    return written


def checked_upload(upload: UploadFile | None, field: str) -> UploadFile:
    """The file part, there and with a name that is text: a NUL or other control character
    in the client's file name is a 400 (it would break the job store and the headers)."""
    if upload is None or not isinstance(upload, UploadFile):
        raise InvalidRequest(
            f"No audio file was sent: attach it as the '{field}' form field.", param=field
        )
    name = upload.filename or ""
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name) > 1024:
        raise InvalidRequest(
            "The file name must be text of at most 1024 characters, without control characters.",
            param=field,
        )
    return upload


def safe_suffix(upload: UploadFile) -> str:
    """The file name's extension (a hint for the decoder), letters and digits only."""
    suffix = Path(upload.filename or "").suffix
    return "." + "".join(c for c in suffix[1:17] if c.isascii() and c.isalnum()) if suffix else ""


@asynccontextmanager
async def saved_upload(
    upload: UploadFile | None, limit_bytes: int, *, field: str, folder: Path | None = None
) -> AsyncIterator[Path]:
    """Yield a path holding the upload's bytes; the file is deleted on exit, always.
    `folder`: where (ray mode: storage every replica reads); None = the system's temp."""
    upload = checked_upload(upload, field)
    suffix = safe_suffix(upload)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="asr-upload-", suffix=suffix, dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = await asyncio.to_thread(_copy_limited, upload.file, out, limit_bytes)
        if size == 0:
            raise EmptyUpload("the uploaded file is empty.", param=field)
        yield path
    finally:
        path.unlink(missing_ok=True)  # first: an await below may be cut short by a cancel
        await upload.close()


@asynccontextmanager
async def request_upload(
    request: Request,
    upload: UploadFile | None,
    *,
    field: str,
    encoded: bool = True,
    charge: bool = True,
) -> AsyncIterator[Path]:
    """saved_upload with this app's size limit and upload folder (its state), then the
    cheap checks of the file (empty, unreadable, too long) and, when `charge`, the caller's
    daily audio allowance, all before any queue or decode."""
    state = request.app.state
    limit = state.settings.max_file_size_bytes
    async with saved_upload(upload, limit, field=field, folder=state.upload_dir) as path:
        allowance: AudioAllowance = state.allowance
        await allowance.accept(tenant_of(request.scope), path, encoded=encoded, charge=charge)
        yield path


async def persist_upload(
    upload: UploadFile | None, folder: Path, limit_bytes: int, *, field: str
) -> Path:
    """Copy the upload into `folder` (created; removed again on failure) for a job."""
    upload = checked_upload(upload, field)
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / f"upload{safe_suffix(upload)}"
    try:
        with path.open("wb") as out:
            size = await asyncio.to_thread(_copy_limited, upload.file, out, limit_bytes)
        if size == 0:
            raise EmptyUpload("the uploaded file is empty.", param=field)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        await upload.close()
    return path


def upload_name(upload: UploadFile | None) -> str:
    """A safe stem for Content-Disposition: the client's name without its extension."""
    raw = Path((upload.filename if upload else None) or "audio").stem or "audio"
    return "".join(c if c.isalnum() or c in "-_. " else "_" for c in raw)[:100]
