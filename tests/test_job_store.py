"""The job store on a real SQLite file and a real PostgreSQL server, the same tests for both:
migrations, exclusive claims under concurrency, leases (a lost worker's job is run again and
finished once), the attempts limit, cancellation reaching the worker, the workers table."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from postgres_server import PostgresServer

from app.domain import Tenant
from app.jobs.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    MIGRATIONS,
    QUEUED,
    RUNNING,
    Job,
    JobStore,
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t{uuid.uuid4().hex[:12]}")
    jobs = JobStore(url)
    jobs.migrate()
    jobs.migrate()  # idempotent
    yield jobs
    jobs.close()


def add(store: JobStore, n: int) -> list[str]:
    ids = []
    for i in range(n):
        job_id = uuid.uuid4().hex
        store.add(Job(job_id, QUEUED, time.time() + i * 1e-3, "a.wav", "/x", "{}"))
        ids.append(job_id)
    return ids


def test_concurrent_workers_claim_each_job_once(store: JobStore) -> None:
    ids = add(store, 30)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.claim_next(name, lease_s=60, max_attempts=3)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert store.counts()[RUNNING] == 30


def test_a_lost_workers_job_runs_again_and_is_finished_once(store: JobStore) -> None:
    (job_id,) = add(store, 1)
    first = store.claim_next("lost", lease_s=60, max_attempts=3)
    assert first is not None and first.worker_id == "lost" and first.attempts == 1
    assert store.claim_next("other", lease_s=60, max_attempts=3) is None  # lease still held
    assert store.progress(job_id, "lost", "transcribe", 0.5)
    time.sleep(0.3)
    again = store.claim_next("other", lease_s=0.2, max_attempts=3)  # the lease ran out
    assert again is not None and again.id == job_id and again.attempts == 2
    assert again.worker_id == "other" and again.progress == 0.0
    assert not store.progress(job_id, "lost", "transcribe", 0.9)  # no longer its job
    assert not store.complete(job_id, "lost", '{"late": true}', 1000)
    assert store.renew("other") == 1
    assert store.complete(job_id, "other", '{"ok": true}', 1000)
    assert not store.complete(job_id, "other", '{"twice": true}', 1000)
    done = store.get(job_id)
    assert done is not None and done.status == COMPLETED and done.result == '{"ok": true}'
    assert done.worker_id is None


def test_a_job_that_keeps_losing_its_worker_fails_after_max_attempts(store: JobStore) -> None:
    (job_id,) = add(store, 1)
    for attempt in (1, 2):
        job = store.claim_next(f"w{attempt}", lease_s=0.05, max_attempts=2)
        assert job is not None and job.attempts == attempt
        time.sleep(0.1)
    assert store.claim_next("w3", lease_s=0.05, max_attempts=2) is None
    failed = store.get(job_id)
    assert (
        failed is not None
        and failed.status == FAILED
        and "interrupted 2 times" in (failed.error or "")
    )


def test_cancel_reaches_the_worker_through_its_progress(store: JobStore) -> None:
    (job_id,) = add(store, 1)
    assert store.claim_next("w", lease_s=60, max_attempts=3) is not None
    assert store.cancel(job_id)
    assert not store.progress(job_id, "w", "transcribe", 0.5)  # the worker stops here
    assert not store.complete(job_id, "w", "{}", 0)
    job = store.get(job_id)
    assert job is not None and job.status == CANCELLED


def test_a_lone_server_requeues_what_it_left_running(store: JobStore) -> None:
    (job_id,) = add(store, 1)
    assert store.claim_next("old", lease_s=60, max_attempts=3) is not None
    assert store.requeue_interrupted(time.time() - 60, max_attempts=3) == []  # renewed now
    assert store.requeue_interrupted(time.time() + 1, max_attempts=3) == [job_id]
    job = store.get(job_id)
    assert job is not None and job.status == QUEUED and job.worker_id is None


def test_a_job_that_kills_its_server_at_every_start_fails_after_max_attempts(
    store: JobStore,
) -> None:
    """The crash loop of a lone server: a recording that kills the process is started at
    each start; after JOB_MAX_ATTEMPTS starts the next start fails it instead."""
    (job_id,) = add(store, 1)
    for start in range(3):
        assert store.claim_next(f"life-{start}", lease_s=60, max_attempts=3) is not None
        requeued = store.requeue_interrupted(time.time() + 1, max_attempts=3)  # restarted
        assert requeued == ([job_id] if start < 2 else []), start
    job = store.get(job_id)
    assert job is not None and job.status == FAILED and job.attempts == 3
    assert job.error is not None and "interrupted 3 times" in job.error


def test_workers_report_their_load(store: JobStore) -> None:
    started = time.time()
    store.workers.report("a", started, {"running": 1})
    store.workers.report("b", started + 1, {"running": 0})
    store.workers.report("a", started, {"running": 2})
    seen = store.workers.seen_since(started - 1)
    assert [(w.id, w.stats["running"]) for w in seen] == [("a", 2), ("b", 0)]
    store.workers.remove("a")
    assert [w.id for w in store.workers.seen_since(started - 1)] == ["b"]
    assert store.workers.seen_since(time.time() + 10) == []


def test_a_webhook_is_owed_from_the_statement_that_ends_its_job(store: JobStore) -> None:
    """The outbox: completing or failing a job with a webhook writes `pending` in the same
    statement (a kill right after leaves it owed, not unrecorded); one worker claims it; a
    claim whose sender stopped renewing it expires and another worker takes it."""
    hooked, failing, plain = (uuid.uuid4().hex for _ in range(3))
    for job_id, url in ((hooked, "http://h/1"), (failing, "http://h/2"), (plain, None)):
        store.add(Job(job_id, QUEUED, time.time(), "a.wav", "/x", "{}", webhook_url=url))
        assert store.claim_next("w", lease_s=60, max_attempts=3) is not None
    assert store.complete(hooked, "w", "{}", 0) and store.complete(plain, "w", "{}", 0)
    assert store.fail(failing, "w", "boom")
    states = {j.id: j.webhook_status for j in store.page(10)[0]}
    assert states == {hooked: "pending", failing: "pending", plain: None}
    now = time.time()
    assert {j.id for j in store.owed_webhooks(now - 300)} == {hooked, failing}
    assert store.claim_webhook(hooked, now - 300)
    assert not store.claim_webhook(hooked, now - 300)  # the second worker finds it taken
    assert {j.id for j in store.owed_webhooks(now - 300)} == {failing}
    store.webhook(hooked, "sending", 1, "timeout")  # an attempt renews the claim
    assert not store.claim_webhook(hooked, now - 300)
    # Its sender was killed: once the claim is older than the cut-off, another takes it.
    assert {j.id for j in store.owed_webhooks(time.time() + 1)} == {failing, hooked}
    assert store.claim_webhook(hooked, time.time() + 1)
    store.webhook(hooked, "delivered", 2, None)
    assert hooked not in {j.id for j in store.owed_webhooks(time.time() + 1)}
    assert store.release_webhook_claims() == 0  # nothing left sending


def test_a_worker_stopping_hands_its_jobs_back(store: JobStore) -> None:
    first, second = add(store, 2)
    assert store.claim_next("stopping", lease_s=60, max_attempts=3) is not None
    assert store.claim_next("other", lease_s=60, max_attempts=3) is not None
    assert store.release("stopping") == [first]
    job = store.get(first)
    assert job is not None and job.status == QUEUED and job.attempts == 0
    still = store.get(second)
    assert still is not None and still.status == RUNNING and still.worker_id == "other"


def test_jobs_are_seen_by_their_own_key_and_admins_only(store: JobStore) -> None:
    mine, theirs = Tenant("key-aaaa"), Tenant("key-bbbb")
    admin = Tenant("key-root", admin=True)
    store.add(Job(uuid.uuid4().hex, QUEUED, time.time(), "a.wav", "/x", "{}", owner=mine.key_id))
    job = store.page(10, tenant=mine)[0][0]
    assert store.get(job.id, mine) is not None and store.get(job.id, admin) is not None
    assert store.get(job.id, theirs) is None
    assert store.page(10, tenant=theirs) == ([], False)
    assert store.page(10, after=job.id, tenant=theirs) == ([], False)
    assert [j.id for j in store.page(10, tenant=admin)[0]] == [job.id]
    assert store.queued_of(mine.key_id or "") == 1 and store.queued_of("key-bbbb") == 0


def test_rows_from_before_owners_migrate_and_only_admins_see_them(tmp_path: Path) -> None:
    """A database of the previous release (revision 0002) with a job in it: after the
    migration the job has no owner; with keys on, an admin key sees it, another key not."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = JobStore(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old._engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(
            sa.text(
                "INSERT INTO jobs (id, status, created_at, filename, upload_path, request, "
                "stage, progress, attempts, webhook_attempts) VALUES "
                "('old1', 'completed', 1.0, 'a.wav', '/x', '{}', 'done', 1.0, 1, 0)"
            )
        )
    old.close()
    store = JobStore(url)
    store.migrate()
    job = store.get("old1")
    assert job is not None and job.owner is None
    assert store.get("old1", Tenant("key-aaaa")) is None
    assert store.get("old1", Tenant("key-root", admin=True)) == job
    store.close()


def test_daily_audio_allowance_is_never_overrun_by_racing_requests(store: JobStore) -> None:
    """MAX_AUDIO_HOURS_PER_KEY_PER_DAY's book: 8 threads each adding 1 s against a 5 s
    limit, at once: exactly 5 are accepted and the day holds 5 s; keys and days are apart."""
    barrier = threading.Barrier(8)
    accepted: list[bool] = []

    def add_one() -> None:
        barrier.wait()
        accepted.append(store.usage.add_within("key-a", "2026-12-04", 1000, 5000))

    threads = [threading.Thread(target=add_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == [False] * 3 + [True] * 5
    assert store.usage.used_ms("key-a", "2026-12-04") == 5000
    assert not store.usage.add_within("key-a", "2026-12-04", 1, 5000)
    assert store.usage.add_within("key-b", "2026-12-04", 5000, 5000)  # another key
    assert store.usage.add_within("key-a", "2026-12-05", 4000, 5000)  # the next day
    assert store.usage.used_ms("key-a", "2026-12-05") == 4000
