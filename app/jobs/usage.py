"""MAX_AUDIO_HOURS_PER_KEY_PER_DAY: how much audio one API key may send per UTC day.

A request is counted when it is accepted, by the duration its file declares (the header
check that runs before any queue, decode or model download), so a refused request costs
nothing and a day's allowance cannot be overrun by requests racing each other: the check
and the addition are one conditional UPDATE. The counts live in the job database, so they
survive restarts and are shared by every process that shares it (ray mode's ingresses,
workers on several machines).
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from app.domain import Tenant
from app.errors import InvalidRequest, LimitReached
from app.pipeline.decode import check_upload

key_usage = sa.Table(
    "key_usage",
    sa.MetaData(),
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # UTC, YYYY-MM-DD
    sa.Column("audio_ms", sa.BigInteger, nullable=False),
)


class UsageBook:
    """Per key and UTC day, the audio ms accepted. Blocking: call from threads."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def add_within(self, key_id: str, day: str, audio_ms: int, limit_ms: int) -> bool:
        """Add `audio_ms` to the key's day unless the total would pass `limit_ms`."""
        fits = key_usage.c.audio_ms + audio_ms <= limit_ms
        where = (key_usage.c.key_id == key_id) & (key_usage.c.day == day)
        with self._engine.begin() as c:
            if c.execute(sa.select(key_usage.c.audio_ms).where(where)).first() is None:
                try:
                    with c.begin_nested():
                        c.execute(sa.insert(key_usage).values(key_id=key_id, day=day, audio_ms=0))
                except sa.exc.IntegrityError:
                    pass  # another request made the row first
            update = sa.update(key_usage).where(where & fits)
            return c.execute(update.values(audio_ms=key_usage.c.audio_ms + audio_ms)).rowcount == 1

    def used_ms(self, key_id: str, day: str) -> int:
        where = (key_usage.c.key_id == key_id) & (key_usage.c.day == day)
        with self._engine.connect() as c:
            return int(c.execute(sa.select(key_usage.c.audio_ms).where(where)).scalar() or 0)


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def seconds_to_next_day(now: float) -> int:
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((today + timedelta(days=1)).timestamp() - now))


class AudioAllowance:
    def __init__(self, hours_per_day: float, book: UsageBook, max_duration_s: float) -> None:
        """`hours_per_day` 0 = no limit; `max_duration_s` is MAX_AUDIO_DURATION_S (0 = none)."""
        self.limit_ms = round(hours_per_day * 3_600_000)
        self._book = book
        self._max_duration_s = max_duration_s or math.inf

    async def accept(
        self, tenant: Tenant, upload: Path, *, encoded: bool = True, charge: bool = True
    ) -> None:
        """The cheap header checks (empty, unreadable, longer than MAX_AUDIO_DURATION_S:
        each a 400 or 413), then the key's allowance: over it is a 429 whose Retry-After
        is the next UTC midnight; a recording longer than a whole day's allowance is a 400."""
        declared_s = await asyncio.to_thread(
            check_upload, upload, encoded=encoded, max_duration_s=self._max_duration_s
        )
        if not charge or not self.limit_ms or tenant.key_id is None:
            return
        audio_ms = math.ceil(declared_s * 1000)
        hours = self.limit_ms / 3_600_000
        if audio_ms > self.limit_ms:
            raise InvalidRequest(
                f"The recording is {declared_s / 3600:.2f} h long, more than this API key may "
                f"send in a day ({hours:g} h, MAX_AUDIO_HOURS_PER_KEY_PER_DAY).",
                param="file",
            )
        now = time.time()
        day = utc_day(now)
        if not await asyncio.to_thread(
            self._book.add_within, tenant.key_id, day, audio_ms, self.limit_ms
        ):
            used_h = await asyncio.to_thread(self._book.used_ms, tenant.key_id, day) / 3_600_000
            raise LimitReached(
                f"This API key has sent {used_h:.2f} h of audio today (UTC) and may send "
                f"{hours:g} h a day (MAX_AUDIO_HOURS_PER_KEY_PER_DAY); this recording is "
                f"{declared_s / 3600:.2f} h. The allowance renews at 00:00 UTC.",
                retry_after_s=seconds_to_next_day(now),
            )
