"""The workers table: each job worker's heartbeat and load, so that any process (ray mode's
ingress) can describe the whole deployment. Rows of workers that stopped reporting are
ignored, and removed an hour later."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

workers = sa.Table(
    "workers",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("stats", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Worker:
    """A worker's last report: `stats` is its load (requests, queued windows, jobs)."""

    id: str
    started_at: float
    heartbeat_at: float
    stats: dict[str, Any]


class WorkerBoard:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def report(self, worker_id: str, started_at: float, stats: dict[str, Any]) -> None:
        """Insert or refresh a worker's heartbeat and load."""
        values = {"heartbeat_at": time.time(), "stats": json.dumps(stats)}
        with self._engine.begin() as c:
            updated = c.execute(workers.update().where(workers.c.id == worker_id).values(values))
            if not updated.rowcount:
                c.execute(workers.insert().values(id=worker_id, started_at=started_at, **values))

    def remove(self, worker_id: str) -> None:
        with self._engine.begin() as c:
            c.execute(workers.delete().where(workers.c.id == worker_id))

    def seen_since(self, seen_after: float) -> list[Worker]:
        """Workers that reported after `seen_after` (the others are gone), oldest first;
        rows an hour older than that are removed."""
        with self._engine.begin() as c:
            c.execute(workers.delete().where(workers.c.heartbeat_at < seen_after - 3600))
            rows = c.execute(
                sa.select(workers)
                .where(workers.c.heartbeat_at >= seen_after)
                .order_by(workers.c.started_at, workers.c.id)
            ).all()
        return [Worker(r.id, r.started_at, r.heartbeat_at, json.loads(r.stats)) for r in rows]
