"""The job store: SQLAlchemy 2 Core, migrated by Alembic at start-up.

SQLite under DATA_DIR by default (WAL journal: a write survives the process being killed);
PostgreSQL when workers on several machines share it. A running job holds a lease (its
worker's id and a heartbeat): only that worker may record its progress and its end, and a
job whose lease ran out goes back to the queue. The workers table holds each worker's
heartbeat and load (app/jobs/workers.py). Every method is a short transaction and blocks:
call them from threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from app.domain import NO_KEYS, Tenant
from app.jobs.usage import UsageBook
from app.jobs.workers import WorkerBoard

MIGRATIONS = Path(__file__).parent / "migrations"

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
FINISHED = (COMPLETED, FAILED, CANCELLED)

_metadata = sa.MetaData()
jobs = sa.Table(
    "jobs",
    _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("upload_path", sa.Text, nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook_status", sa.String(16)),
    sa.Column("webhook_attempts", sa.Integer, nullable=False),
    sa.Column("webhook_error", sa.Text),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("owner", sa.String(32)),
    sa.Column("webhook_claimed_at", sa.Float),
)


@dataclass(frozen=True)
class Job:
    """One row. Times are Unix seconds; `request` and `result` are JSON text."""

    id: str
    status: str
    created_at: float
    filename: str
    upload_path: str
    request: str
    stage: str = QUEUED
    progress: float = 0.0
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: int | None = None
    error: str | None = None
    result: str | None = None
    webhook_url: str | None = None
    webhook_status: str | None = None
    webhook_attempts: int = 0
    webhook_error: str | None = None
    worker_id: str | None = None
    """The worker holding the lease while it runs (None when queued or finished)."""
    heartbeat_at: float | None = None
    owner: str | None = None
    """The id of the API key that made it; None on a server without keys."""
    webhook_claimed_at: float | None = None
    """When a worker last claimed (or, sending, renewed) the webhook; an old claim expires."""


_COLUMNS = [f.name for f in fields(Job)]
_REQUEUED: dict[str, Any] = {"status": QUEUED, "stage": QUEUED, "progress": 0.0, "worker_id": None}
"""A running job back in the queue, to be run again from the start by any worker."""


def _stale(stale_before: float) -> Any:
    """Running jobs whose lease was last renewed before `stale_before`."""
    return sa.and_(
        jobs.c.status == RUNNING,
        sa.or_(jobs.c.heartbeat_at.is_(None), jobs.c.heartbeat_at < stale_before),
    )


def _visible(tenant: Tenant) -> Any:
    """The jobs `tenant` may see: its own, or all for an admin key or without keys."""
    return sa.true() if tenant.sees_all else jobs.c.owner == tenant.key_id


_OWED = sa.case((jobs.c.webhook_url.is_not(None), "pending"), else_=jobs.c.webhook_status)
"""Written in the same statement that ends a job: its webhook is owed from that moment, so
a worker killed before sending leaves it `pending` for any worker, never unrecorded."""


def _owed_webhook(claim_expired_before: float) -> Any:
    """Finished jobs whose webhook is owed: pending, or claimed by a sender that stopped
    renewing its claim (killed, or lost with its machine)."""
    return sa.and_(
        jobs.c.status.in_(FINISHED),
        sa.or_(
            jobs.c.webhook_status == "pending",
            sa.and_(
                jobs.c.webhook_status == "sending",
                sa.or_(
                    jobs.c.webhook_claimed_at.is_(None),
                    jobs.c.webhook_claimed_at < claim_expired_before,
                ),
            ),
        ),
    )


def _job(row: Any) -> Job:
    return Job(**{name: row._mapping[name] for name in _COLUMNS})


def _enable_wal(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class JobStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(url, connect_args={"check_same_thread": False})
            sa.event.listen(self._engine, "connect", _enable_wal)
        else:
            self._engine = sa.create_engine(url, pool_pre_ping=True)
        self.workers = WorkerBoard(self._engine)
        self.usage = UsageBook(self._engine)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self._engine.dispose()

    # --- reads ---------------------------------------------------------------------------
    def get(self, job_id: str, tenant: Tenant = NO_KEYS) -> Job | None:
        """The job, if `tenant` may see it (another key's job is not found)."""
        query = sa.select(jobs).where(jobs.c.id == job_id, _visible(tenant))
        with self._engine.connect() as c:
            row = c.execute(query).first()
        return _job(row) if row else None

    def page(
        self, limit: int, after: str | None = None, tenant: Tenant = NO_KEYS
    ) -> tuple[list[Job], bool]:
        """Newest first, of the jobs `tenant` may see; `after` = the last id of the previous
        page. Returns (jobs, more)."""
        query = (
            sa.select(jobs)
            .where(_visible(tenant))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        )
        if after is not None:
            anchor = self.get(after, tenant)
            if anchor is None:
                return [], False
            query = query.where(
                sa.or_(
                    jobs.c.created_at < anchor.created_at,
                    sa.and_(jobs.c.created_at == anchor.created_at, jobs.c.id < anchor.id),
                )
            )
        with self._engine.connect() as c:
            rows = c.execute(query.limit(limit + 1)).all()
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    def known_ids(self, ids: list[str]) -> set[str]:
        """Which of `ids` are jobs in the store."""
        if not ids:
            return set()
        query = sa.select(jobs.c.id).where(jobs.c.id.in_(ids))
        with self._engine.connect() as c:
            return {r.id for r in c.execute(query)}

    def queued_of(self, owner: str) -> int:
        """How many jobs the key `owner` has waiting or running."""
        query = sa.select(sa.func.count()).where(
            jobs.c.owner == owner, jobs.c.status.in_((QUEUED, RUNNING))
        )
        with self._engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def counts(self) -> dict[str, int]:
        query = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        with self._engine.connect() as c:
            found = {status: int(n) for status, n in c.execute(query).all()}
        return {status: found.get(status, 0) for status in STATUSES}

    def owed_webhooks(self, claim_expired_before: float) -> list[Job]:
        """Webhooks to send: pending, or claimed before `claim_expired_before` and not since
        renewed."""
        query = sa.select(jobs).where(_owed_webhook(claim_expired_before))
        with self._engine.connect() as c:
            return [_job(r) for r in c.execute(query).all()]

    # --- writes --------------------------------------------------------------------------
    def add(self, job: Job) -> Job:
        with self._engine.begin() as c:
            c.execute(jobs.insert().values(**{n: getattr(job, n) for n in _COLUMNS}))
        return job

    def _update(self, job_id: str, *conditions: Any, **values: Any) -> bool:
        with self._engine.begin() as c:
            done = c.execute(jobs.update().where(jobs.c.id == job_id, *conditions).values(**values))
        return bool(done.rowcount)

    def claim_next(self, worker_id: str, lease_s: float, max_attempts: int) -> Job | None:
        """The oldest queued job, now running under `worker_id`'s lease (atomically: one
        worker gets it; on PostgreSQL other workers skip the locked row). Jobs whose lease
        ran out are first queued again, or failed after `max_attempts` starts."""
        now = time.time()
        with self._engine.begin() as c:
            self._release_expired(c, now - lease_s, max_attempts)
            row = c.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status == QUEUED)
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            claimed = c.execute(
                jobs.update()
                .where(jobs.c.id == row.id, jobs.c.status == QUEUED)
                .values(
                    status=RUNNING,
                    started_at=now,
                    attempts=jobs.c.attempts + 1,
                    stage="starting",
                    progress=0.0,
                    worker_id=worker_id,
                    heartbeat_at=now,
                )
            )
            if not claimed.rowcount:
                return None
        return self.get(row.id)

    @staticmethod
    def _release_expired(c: sa.Connection, stale_before: float, max_attempts: int) -> None:
        expired = _stale(stale_before)
        c.execute(
            jobs.update()
            .where(expired, jobs.c.attempts >= max_attempts)
            .values(
                status=FAILED,
                error=f"interrupted {max_attempts} times (its worker stopped or was lost)",
                finished_at=time.time(),
                worker_id=None,
                webhook_status=_OWED,  # its client hears of the failure like any other
            )
        )
        c.execute(jobs.update().where(expired).values(**_REQUEUED))

    def _leased(self, job_id: str, owner: str, **values: Any) -> bool:
        """Update a running job only while `owner` (a worker id) holds its lease."""
        return self._update(job_id, jobs.c.status == RUNNING, jobs.c.worker_id == owner, **values)

    def progress(self, job_id: str, worker_id: str, stage: str, fraction: float) -> bool:
        """Record progress (and renew the lease); False when the job is no longer this
        worker's to run (cancelled, deleted, or taken over after its lease ran out)."""
        return self._leased(
            job_id, worker_id, stage=stage, progress=round(fraction, 4), heartbeat_at=time.time()
        )

    def renew(self, worker_id: str) -> int:
        """Renew the lease of every job `worker_id` runs; returns how many it holds."""
        with self._engine.begin() as c:
            done = c.execute(
                jobs.update()
                .where(jobs.c.status == RUNNING, jobs.c.worker_id == worker_id)
                .values(heartbeat_at=time.time())
            )
        return int(done.rowcount)

    def complete(self, job_id: str, worker_id: str, result: str, duration_ms: int) -> bool:
        return self._leased(
            job_id,
            worker_id,
            status=COMPLETED,
            stage="done",
            progress=1.0,
            result=result,
            duration_ms=duration_ms,
            finished_at=time.time(),
            worker_id=None,
            webhook_status=_OWED,
        )

    def fail(self, job_id: str, worker_id: str, error: str) -> bool:
        return self._leased(
            job_id,
            worker_id,
            status=FAILED,
            error=error,
            finished_at=time.time(),
            worker_id=None,
            webhook_status=_OWED,
        )

    def cancel(self, job_id: str) -> bool:
        """Queued or running -> cancelled; False when it had already finished."""
        return self._update(
            job_id,
            jobs.c.status.in_((QUEUED, RUNNING)),
            status=CANCELLED,
            result=None,
            finished_at=time.time(),
            worker_id=None,
        )

    def delete(self, job_id: str) -> None:
        with self._engine.begin() as c:
            c.execute(jobs.delete().where(jobs.c.id == job_id))

    def release(self, worker_id: str) -> list[str]:
        """A worker stopping gracefully hands its running jobs back to the queue at once
        (not counted as an attempt), instead of holding them until the lease runs out."""
        mine = sa.and_(jobs.c.status == RUNNING, jobs.c.worker_id == worker_id)
        with self._engine.begin() as c:
            ids = [r.id for r in c.execute(sa.select(jobs.c.id).where(mine))]
            c.execute(jobs.update().where(mine).values(**_REQUEUED, attempts=jobs.c.attempts - 1))
        return ids

    def requeue_interrupted(self, stale_before: float, max_attempts: int) -> list[str]:
        """Running jobs whose lease was last renewed before `stale_before` go back to the
        queue (done again from the start: nothing of a half-done transcription is kept), or
        fail when they have been started `max_attempts` times (a recording that kills the
        process must not crash it at every start). A lone server passes its start time:
        every job left running is its own. Returns the ids queued again."""
        condition = sa.and_(_stale(stale_before), jobs.c.attempts < max_attempts)
        with self._engine.begin() as c:
            ids = [r.id for r in c.execute(sa.select(jobs.c.id).where(condition))]
            self._release_expired(c, stale_before, max_attempts)
        return ids

    def claim_webhook(self, job_id: str, claim_expired_before: float) -> bool:
        """Owed -> sending under a fresh claim, atomically: of the workers that find it
        owed, one sends it."""
        return self._update(
            job_id,
            _owed_webhook(claim_expired_before),
            webhook_status="sending",
            webhook_claimed_at=time.time(),
        )

    def release_webhook_claims(self) -> int:
        """sending -> pending: for a lone server at start-up, whose own sends were cut off."""
        with self._engine.begin() as c:
            done = c.execute(
                jobs.update()
                .where(jobs.c.webhook_status == "sending")
                .values(webhook_status="pending")
            )
        return int(done.rowcount)

    def webhook(self, job_id: str, status: str, attempts: int, error: str | None) -> None:
        """A delivery's state; while `sending`, each write renews the sender's claim."""
        self._update(
            job_id,
            webhook_status=status,
            webhook_attempts=attempts,
            webhook_error=error,
            webhook_claimed_at=time.time(),
        )

    def expired(self, finished_before: float) -> list[Job]:
        """Finished jobs older than the cut-off, removed from the store and returned."""
        condition = sa.and_(jobs.c.status.in_(FINISHED), jobs.c.finished_at < finished_before)
        with self._engine.begin() as c:
            rows = [_job(r) for r in c.execute(sa.select(jobs).where(condition)).all()]
            c.execute(jobs.delete().where(condition))
        return rows
