"""Webhooks: a signed POST of the job summary when a job completes or fails.

Signature (when WEBHOOK_SECRET is set): header `Webhook-Signature: t=<unix seconds>,v1=<hex>`
where hex = HMAC-SHA256(secret, f"{t}.{body}"). Receivers recompute it over the raw body
and reject old timestamps (replays). `Webhook-Id` is the job id: deliveries are
at-least-once (a server killed between the receiver's 2xx and recording it sends again),
so receivers de-duplicate on it. 5xx answers, timeouts and connection errors are retried
with exponential backoff; a 4xx answer is final.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.errors import InvalidRequest

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Webhook-Signature"
ID_HEADER = "Webhook-Id"
ATTEMPTS = 6
FIRST_BACKOFF_S = 1.0
TIMEOUT_S = 10.0

DELIVERED, FAILED, PENDING, SENDING = "delivered", "failed", "pending", "sending"
"""A webhook is `pending` until a worker claims it, `sending` while that worker tries, then
`delivered` or `failed`."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: float = 300) -> bool:
    """What a receiver does (and the tests do): recompute, compare, bound the age."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def check_webhook_url(url: str, allowed_hosts: frozenset[str]) -> str:
    """Refuse (400) a URL the operator did not allow; returns it unchanged otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("webhook_url must be an http:// or https:// URL.", param="webhook_url")
    if "*" not in allowed_hosts and parts.hostname.lower() not in allowed_hosts:
        raise InvalidRequest(
            f"webhook_url host '{parts.hostname}' is not allowed on this server "
            "(WEBHOOK_ALLOWED_HOSTS).",
            param="webhook_url",
        )
    return url


@dataclass(frozen=True)
class Delivery:
    status: str  # delivered | failed
    attempts: int
    error: str | None = None


class WebhookSender:
    def __init__(
        self,
        secret: str | None,
        *,
        attempts: int = ATTEMPTS,
        first_backoff_s: float = FIRST_BACKOFF_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._secret = secret
        self._attempts = attempts
        self._first_backoff_s = first_backoff_s
        self._sleep = sleep

    def headers(self, job_id: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", ID_HEADER: job_id}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, int(time.time()), body)
        return headers

    async def deliver(
        self, url: str, job_id: str, body: bytes, on_attempt: Callable[[int, str], Awaitable[None]]
    ) -> Delivery:
        """POST until a 2xx, a 4xx, or the attempts run out. `on_attempt(n, error)` records
        each failed attempt (so a restart knows the delivery is still owed)."""
        error = ""
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
            for attempt in range(1, self._attempts + 1):
                try:
                    response = await client.post(
                        url, content=body, headers=self.headers(job_id, body)
                    )
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        return Delivery(DELIVERED, attempt)
                    error = f"HTTP {response.status_code}"
                    if 400 <= response.status_code < 500:
                        log.warning("webhook for job %s refused: %s (not retried)", job_id, error)
                        return Delivery(FAILED, attempt, error)
                log.info("webhook for job %s failed (attempt %d): %s", job_id, attempt, error)
                await on_attempt(attempt, error)
                if attempt < self._attempts:
                    await self._sleep(self._first_backoff_s * 2 ** (attempt - 1))
        return Delivery(FAILED, self._attempts, error)
