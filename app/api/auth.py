"""API keys: who may use the service. Off unless API_KEYS or API_KEYS_FILE is set.

A key is accepted from `Authorization: Bearer <key>` (what the OpenAI SDK sends),
`X-API-Key: <key>`, or HTTP basic auth with the key as the password (Speakr's
`ASR_BASE_URL=http://user:KEY@host:9001`; `curl -u :KEY`) or, with no password, as the user
name (`curl -u KEY:`). Every key is compared in constant time, all of them each time. The
check runs before routing and before the body is read, so an unauthenticated upload costs
nothing; it answers 401 in the API family's error shape with `WWW-Authenticate`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.error_handlers import error_response
from app.config import Settings
from app.domain import NO_KEYS, Tenant

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/"})
"""Paths served without a key: the liveness probe (load balancers send no credentials) and
the web page, which holds no data and asks for a key itself."""
STATIC_ROOT = "/web"
"""The page's static files (served without a key: they hold no data)."""
CHALLENGE = 'Bearer realm="whisperx-service", Basic realm="whisperx-service"'


def key_id(key: str) -> str:
    """What metrics and logs name a key by: a short digest, never the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


ADMIN = "admin"
"""The word after a key in API_KEYS_FILE that makes it an admin key (sees every key's jobs)."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[bytes, Tenant], ...] = ()
    """(key, who it is) pairs."""

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        found: dict[str, bool] = {}  # key -> admin
        if settings.api_keys is not None:
            for key in settings.api_keys.get_secret_value().split(","):
                if key.strip():
                    found.setdefault(key.strip(), False)
        if settings.api_keys_file is not None:
            try:
                lines = settings.api_keys_file.read_text().splitlines()
            except OSError as exc:  # a server meant to be locked must not start open
                raise ValueError(f"API_KEYS_FILE cannot be read: {exc}") from exc
            for line in lines:
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                if words[1:] not in ([], [ADMIN]):
                    # A typo must not lock an admin out or open a key wider than meant.
                    raise ValueError(
                        "API_KEYS_FILE: a line is a key, optionally followed by the word "
                        f"'{ADMIN}'; a line with {len(words)} words is neither"
                    )
                found[words[0]] = found.get(words[0], False) or words[1:] == [ADMIN]
        return cls(tuple((k.encode(), Tenant(key_id(k), admin)) for k, admin in found.items()))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str) -> Tenant | None:
        """Who the key `presented` is, or None; compares against every key."""
        candidate, found = presented.encode(), None
        for key, tenant in self.keys:
            if hmac.compare_digest(key, candidate):
                found = tenant
        return found


def tenant_of(scope: Scope) -> Tenant:
    """The caller of a request that passed ApiKeyMiddleware (NO_KEYS without keys)."""
    found = scope.get("state", {}).get("tenant")
    return found if isinstance(found, Tenant) else NO_KEYS


def presented_keys(headers: Headers) -> list[str]:
    """Every key the request offers, from each place one may be sent."""
    offered: list[str] = []
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        offered.append(value.strip())
    elif scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        offered += [k for k in (password, "" if password else user) if k]
    if headers.get("x-api-key", "").strip():
        offered.append(headers["x-api-key"].strip())
    return offered


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.keys.enabled
            or path in OPEN_PATHS
            or path == STATIC_ROOT
            or path.startswith(STATIC_ROOT + "/")
        ):
            await self.app(scope, receive, send)
            return
        offered = presented_keys(Headers(scope=scope))
        tenant = next((i for i in map(self.keys.identify, offered) if i is not None), None)
        if tenant is None:
            message = (
                "Invalid API key."
                if offered
                else "An API key is required: send `Authorization: Bearer <key>`, "
                "`X-API-Key: <key>`, or HTTP basic auth with the key as the password."
            )
            response = error_response(
                path,
                401,
                message,
                code="invalid_api_key",
                error_type="invalid_request_error",
                headers={"WWW-Authenticate": CHALLENGE},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant  # request.state.tenant
        metrics = getattr(scope["app"].state, "metrics", None)
        if metrics is not None:
            metrics.api_key_requests.labels(key_id=tenant.key_id).inc()
        await self.app(scope, receive, send)
