"""Retention: expired calls are hard-deleted with everything they carry; their audit trail stays,
content-free. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, null, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import InvalidInputError
from app.grounding import verify_extraction
from app.models import Call, Claim, Evidence, ExtractionRun, ReviewEvent, RunStatus, Tenant
from app.models import Utterance as UtteranceRow
from app.pipeline.calls import get_call
from app.pipeline.counts import state_counts
from app.pipeline.persist import RunFacts, add_claims, add_run, idempotency_key
from app.pipeline.retention import (
    MAX_RETENTION_DAYS,
    PURGE_EVENT,
    PURGE_LOCK_KEY,
    PurgeRunningError,
    purge_expired,
    purge_turn,
    run_purge,
    scrub_review_events,
    set_retention,
)
from app.pipeline.store import store_transcript
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.schemas.usage import Usage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "my card is 4111 1111 1111 1111"


def _store(factory: sessionmaker[Session], tenant: str, external_id: str, started: datetime) -> str:
    transcript = Transcript(
        metadata=CallMetadata(started_at=started),
        utterances=[
            Utterance(index=0, speaker="A", role=Role.agent, text="How can I help?"),
            Utterance(index=1, speaker="C", role=Role.customer, text=f"{SECRET}, refund the $30 please"),
        ],
        source_format="native",
    )
    extraction = Extraction(
        summary=[Statement(text="Refund of $30 asked", evidence=[EvidenceRef(utterance=1, quote="refund the $30")])]
    )
    with unit_of_work(factory) as session:
        stored = store_transcript(session, transcript, tenant=tenant, external_id=external_id)
        call = get_call(session, stored.call_id)
        facts = RunFacts(
            key=idempotency_key(call.id, call.transcript_hash, "v", "test", "m"),
            provider="test",
            model="m",
            prompt_version="v",
            transcript_hash=call.transcript_hash,
            usage=Usage(),
            queue_wait_ms=None,
            verify_ms=None,
        )
        run = add_run(session, call, facts, status=RunStatus.succeeded, raw_response=SECRET)
        add_claims(session, run, verify_extraction(transcript, extraction))
        session.add(
            ReviewEvent(
                tenant_id=call.tenant_id,
                call_id=call.id,
                actor_name="sue",
                action="claim_edited",
                before={"text": SECRET},
                after={"text": "Refund"},
                created_at=NOW,
            )
        )
        return stored.call_id


def _count(session: Session, model: type, call_ids: list[str]) -> int:
    if model is Evidence:
        return (
            session.scalar(select(func.count()).select_from(Evidence).join(Claim).where(Claim.call_id.in_(call_ids)))
            or 0
        )
    return session.scalar(select(func.count()).select_from(model).where(model.call_id.in_(call_ids))) or 0


def test_purge_deletes_expired_calls_and_keeps_a_content_free_trail(session_factory: sessionmaker[Session]) -> None:
    old = _store(session_factory, "acme", "old", NOW - timedelta(days=40))
    recent = _store(session_factory, "acme", "recent", NOW - timedelta(days=5))
    forever = _store(session_factory, "globex", "old-globex", NOW - timedelta(days=400))
    with unit_of_work(session_factory) as session:
        set_retention(session, "acme", 30)
        set_retention(session, "globex", 0)  # globex keeps calls forever

    dry = purge_expired(session_factory, default_days=0, dry_run=True, now=NOW)
    assert [(r.tenant, r.calls, r.utterances, r.claims, r.evidence) for r in dry] == [("acme", 1, 2, 1, 1)]
    with session_factory() as session:
        assert session.get(Call, old) is not None  # a dry run deletes nothing

    done = purge_expired(session_factory, default_days=0, now=NOW)
    assert [(r.tenant, r.calls) for r in done] == [("acme", 1)]

    with session_factory() as session:
        assert session.get(Call, old) is None
        for model in (UtteranceRow, Claim, Evidence, ExtractionRun):
            assert _count(session, model, [old]) == 0, model
            assert _count(session, model, [recent]) > 0, model
        assert session.get(Call, forever) is not None
        trail = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == old).order_by(ReviewEvent.id)).all()
        assert [e.action for e in trail] == ["claim_edited", PURGE_EVENT]
        assert all(e.before is None for e in trail)
        assert trail[0].after is None and trail[1].after == {"retention_days": 30}
        assert trail[0].actor_name == "sue"  # who did what, and when, remains
        # Nothing of the call's text is left anywhere in its trail.
        assert SECRET not in str([(e.before, e.after) for e in trail])
        kept = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == recent)).one()
        assert kept.before == {"text": SECRET}  # calls within the period keep their trail as it was


def test_the_default_period_applies_to_tenants_without_their_own(session_factory: sessionmaker[Session]) -> None:
    old = _store(session_factory, "acme", "old", NOW - timedelta(days=10))

    assert purge_expired(session_factory, default_days=0, now=NOW) == []  # 0: nothing expires
    (report,) = purge_expired(session_factory, default_days=7, now=NOW)

    assert report.calls == 1
    with session_factory() as session:
        assert session.get(Call, old) is None


def test_audit_events_stay_append_only_apart_from_clearing_content(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory, "acme", "c", NOW)
    with session_factory() as session:
        tenant_id = session.scalars(select(Tenant.id)).one()
    table = ReviewEvent.__table__
    forbidden = [
        update(table).where(table.c.call_id == call_id).values(actor_name="someone else"),
        update(table).where(table.c.call_id == call_id).values(after={"text": "rewritten"}),
        update(table).where(table.c.call_id == call_id).values(before=null(), after=null(), action="call_approved"),
        table.delete().where(table.c.call_id == call_id),
    ]
    for statement in forbidden:
        with pytest.raises(DBAPIError, match="append-only"), session_factory() as session:
            session.connection().execute(statement)
    with session_factory() as session:
        assert session.connection().execute(text("SELECT COUNT(*) FROM review_events")).scalar_one() == 1
        assert session.scalars(select(ReviewEvent.tenant_id)).one() == tenant_id


def _remaining(factory: sessionmaker[Session], call_ids: list[str]) -> list[str]:
    """The calls of `call_ids` still stored, as a new transaction sees them: what earlier ones committed."""
    with factory() as session:
        kept = set(session.scalars(select(Call.id).where(Call.id.in_(call_ids))))
    return [call_id for call_id in call_ids if call_id in kept]


def _expired_calls(factory: sessionmaker[Session], count: int) -> list[str]:
    """`count` calls of acme past its 30-day period, oldest first."""
    ids = [_store(factory, "acme", f"old-{n}", NOW - timedelta(days=60 - n)) for n in range(count)]
    with unit_of_work(factory) as session:
        set_retention(session, "acme", 30)
    return ids


def test_the_purge_commits_each_chunk_oldest_first(session_factory: sessionmaker[Session]) -> None:
    expired = _expired_calls(session_factory, 5)
    recent = _store(session_factory, "acme", "recent", NOW - timedelta(days=5))
    seen: list[tuple[int, list[str]]] = []
    told: list[int] = []

    report = purge_expired(
        session_factory, default_days=0, now=NOW, chunk_calls=2, on_expired=told.append,
        on_purged=lambda calls: seen.append((calls, _remaining(session_factory, expired))),
    )

    assert told == [5]
    # After each chunk, another session already sees its calls gone (committed), the oldest first.
    assert seen == [(2, expired[2:]), (2, expired[4:]), (1, [])]
    assert [(r.tenant, r.calls, r.utterances, r.claims, r.evidence) for r in report] == [("acme", 5, 10, 5, 5)]
    with session_factory() as session:
        assert _remaining(session_factory, [recent]) == [recent]
        events = session.scalars(select(ReviewEvent.call_id).where(ReviewEvent.action == PURGE_EVENT)).all()
        assert sorted(events) == sorted(expired)  # one audit event per purged call, none twice
        tenant_id = session.scalars(select(Tenant.id).where(Tenant.slug == "acme")).one()
        stored = session.scalar(select(func.count()).select_from(Call).where(Call.tenant_id == tenant_id))
        assert sum(state_counts(session, tenant_id).values()) == stored == 1  # the counters followed


def test_a_limited_purge_stops_and_the_next_one_goes_on(session_factory: sessionmaker[Session]) -> None:
    expired = _expired_calls(session_factory, 5)

    (first,) = purge_expired(session_factory, default_days=0, now=NOW, chunk_calls=2, max_calls=3)

    assert first.calls == 3
    assert _remaining(session_factory, expired) == expired[3:]  # the three oldest went
    (second,) = purge_expired(session_factory, default_days=0, now=NOW, chunk_calls=2, max_calls=3)
    assert second.calls == 2
    assert _remaining(session_factory, expired) == []
    (third,) = purge_expired(session_factory, default_days=0, now=NOW, max_calls=3)
    assert third.calls == 0


def test_a_call_another_transaction_holds_is_skipped_not_waited_for(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)

    @event.listens_for(engine, "connect")
    def _give_up_waiting(dbapi_connection: Any, _record: Any) -> None:
        # Had the purge waited for the lock, it would fail here rather than hang the suite.
        dbapi_connection.execute("SET lock_timeout = '5s'")

    factory = make_session_factory(engine)
    try:
        expired = _expired_calls(factory, 3)
        with engine.connect() as worker:  # a worker storing its result holds the call's row
            worker.execute(select(Call.id).where(Call.id == expired[0]).with_for_update())
            (report,) = purge_expired(factory, default_days=0, now=NOW, chunk_calls=2)
            assert report.calls == 2
            assert _remaining(factory, expired) == expired[:1]
        (report,) = purge_expired(factory, default_days=0, now=NOW)  # the next run takes it
        assert report.calls == 1
        assert _remaining(factory, expired) == []
    finally:
        engine.dispose()


def test_a_chunks_events_are_found_by_call_not_among_every_event_of_the_tenant(postgres_url: str) -> None:
    # Many purged chunks later (each adds 500 `call_purged` events, committed), statistics that predate them
    # made a tenant condition in the scrub read every event of the tenant through its index for each chunk:
    # 287 of 346 s when purging 128,000 calls. Events outlive their calls (no foreign key on call_id): rows
    # alone will do.
    engine = create_db_engine(postgres_url)
    try:
        with engine.begin() as connection:
            tenant_id = connection.execute(
                text("INSERT INTO tenants (slug, created_at) VALUES ('acme', now()) RETURNING id")
            ).scalar_one()
        for first in range(0, 60_000, 500):
            with engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO review_events (tenant_id, call_id, actor_name, action, after, created_at) "
                    "SELECT :tenant, 'purged-' || n, 'retention', 'call_purged', '{}', now() "
                    "FROM generate_series(CAST(:first AS integer), CAST(:first AS integer) + 499) AS n"
                ), {"tenant": tenant_id, "first": first})
        chunk = [f"expiring-{n}" for n in range(500)]
        statement = scrub_review_events(chunk).compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as connection:
            plan = "\n".join(connection.scalars(text(f"EXPLAIN {statement}")))
        # Without statistics the server may read the events whole (a few ms per chunk at this size); what
        # it must not do is walk them through the tenant's index and recheck each, as it did.
        assert "ix_review_events_tenant_id" not in plan, plan
    finally:
        engine.dispose()


def test_a_period_beyond_year_one_neither_stops_the_purge_nor_is_set(session_factory: sessionmaker[Session]) -> None:
    # Tenants are purged in slug order: one period reaching before year 1 raised OverflowError and every
    # tenant after it kept its expired calls (the beat's purge failed on each run).
    _store(session_factory, "aaa", "forever", NOW - timedelta(days=10))
    expired = _store(session_factory, "zzz", "old", NOW - timedelta(days=10))
    with unit_of_work(session_factory) as session:
        set_retention(session, "zzz", 1)
        session.execute(update(Tenant).where(Tenant.slug == "aaa").values(retention_days=3_000_000))
    reports = purge_expired(session_factory, default_days=0, now=NOW)
    assert [(report.tenant, report.calls) for report in reports] == [("zzz", 1)]
    with session_factory() as session:
        assert session.get(Call, expired) is None
    with pytest.raises(InvalidInputError, match="36,500"), unit_of_work(session_factory) as session:
        set_retention(session, "aaa", MAX_RETENTION_DAYS + 1)


def test_a_purged_call_leaves_no_content_in_the_hand_off_and_receivers_are_told(
    session_factory: sessionmaker[Session],
) -> None:
    """The outbox held each processed call's whole record (summary, reason, quotes): after a purge the
    feed (`GET /api/events`, any role) and pending deliveries still carried it. Now its events keep the
    identity only, and a `call.deleted` follows, as for an administrator's deletion."""
    from tests.handoff.conftest import TENANT, events_of, processed_call

    call_id = processed_call(session_factory, "purged-1")
    kept_id = processed_call(session_factory, "kept-1")
    before = events_of(session_factory, call_id)
    assert before and "evidence" in str(before[0].payload)  # the record with its quotes
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).where(Call.id == call_id).values(started_at=NOW - timedelta(days=40)))
        session.execute(update(Call).where(Call.id == kept_id).values(started_at=NOW - timedelta(days=1)))
        set_retention(session, TENANT, 30)
    assert [(r.tenant, r.calls) for r in purge_expired(session_factory, default_days=0, now=NOW)] == [(TENANT, 1)]

    after = events_of(session_factory, call_id)
    assert [e.type for e in after] == [*(e.type for e in before), "call.deleted"]
    for event_row in after:
        data = event_row.payload["data"]
        assert data["deleted"] is True and data["call_id"] == call_id
        assert data["summary"] == {"note": "", "statements": []} and "quote" not in str(data)
    assert after[-1].payload["data"]["review"]["decided_by"] == "retention"
    assert "quote" in str(events_of(session_factory, kept_id)[0].payload)  # a call within the period keeps its own


def _purge_events(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(ReviewEvent.call_id).where(ReviewEvent.action == PURGE_EVENT)))


@pytest.mark.postgres
def test_a_purge_while_another_holds_the_turn_deletes_nothing_then_runs(postgres_url: str) -> None:
    # The beat's purge and a `postcall purge` at once met on the same oldest rows (outbox events, calls) and
    # one of them deadlocked or found rows gone under it (StaleDataError). Now the second does not run.
    holder, purger = create_db_engine(postgres_url), create_db_engine(postgres_url)  # two connections' engines
    factory = make_session_factory(purger)
    try:
        expired = _expired_calls(factory, 3)
        with purge_turn(make_session_factory(holder)), holder.connect() as probe:
            # The turn is the advisory lock, held by the holder's connection.
            held = probe.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND ((classid::bigint << 32) | objid::bigint) = :key "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ), {"key": PURGE_LOCK_KEY})
            assert held.scalar_one() == 1
            with pytest.raises(PurgeRunningError, match="another purge is running"):
                run_purge(factory, default_days=0, handoff_days=30, now=NOW)
            assert _remaining(factory, expired) == expired and _purge_events(factory) == []
            # A dry run deletes nothing and is not held up.
            dry = run_purge(factory, default_days=0, handoff_days=30, now=NOW, dry_run=True)
            assert [(r.tenant, r.calls) for r in dry.calls] == [("acme", 3)]
        # Released at the end of the holder's turn: the next purge runs.
        report = run_purge(factory, default_days=0, handoff_days=30, now=NOW)
        assert [(r.tenant, r.calls) for r in report.calls] == [("acme", 3)] and report.handoff is not None
        assert _remaining(factory, expired) == [] and _purge_events(factory) == sorted(expired)
    finally:
        holder.dispose()
        purger.dispose()


@pytest.mark.postgres
def test_a_purge_holds_its_turn_from_start_to_end_and_gives_it_back_when_it_fails(postgres_url: str) -> None:
    engine, other = create_db_engine(postgres_url), create_db_engine(postgres_url)
    pg_factory = make_session_factory(engine)
    expired = _expired_calls(pg_factory, 3)
    second: list[object] = []

    def meanwhile(_calls: int) -> None:  # after the first purge's first committed chunk
        try:
            second.append(run_purge(make_session_factory(other), default_days=0, handoff_days=30, now=NOW))
        except PurgeRunningError as exc:
            second.append(exc)

    try:
        report = run_purge(pg_factory, default_days=0, handoff_days=30, now=NOW, on_purged=meanwhile)
        assert [type(outcome) for outcome in second] == [PurgeRunningError]
        assert report.calls[0].calls == 3 and _purge_events(pg_factory) == sorted(expired)  # each purged once

        def fail(_calls: int) -> None:
            raise RuntimeError("the purge failed half-way")

        more = _store(pg_factory, "acme", "older", NOW - timedelta(days=90))
        with pytest.raises(RuntimeError):
            run_purge(pg_factory, default_days=0, handoff_days=30, now=NOW, on_purged=fail)
        with purge_turn(make_session_factory(other)):  # the failed purge gave its turn back
            pass
        assert _remaining(pg_factory, [more]) == []  # its chunk was committed before it failed
    finally:
        engine.dispose()
        other.dispose()


def test_on_sqlite_a_purge_reads_its_chunk_under_the_write_lock(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No purge lock on SQLite: its write lock has purges take turns, provided each chunk takes it before
    # reading what to delete. Read before it (the driver begins a transaction only at the first write), a
    # chunk could list calls another purge deleted in between, and counted them and gave them a second
    # `call_purged` event.
    engine = create_db_engine(sqlite_url)
    factory = make_session_factory(engine)
    expired = _expired_calls(factory, 3)
    from app.pipeline import retention

    record_deletions = retention.record_deletions
    others: list[Any] = []
    threads: list[threading.Thread] = []

    def between_read_and_write(*args: Any, **kwargs: Any) -> None:
        if not threads:  # the first purge's chunk has been read: the second purge runs now
            thread = threading.Thread(target=lambda: others.extend(
                purge_expired(factory, default_days=0, now=NOW)))
            threads.append(thread)
            thread.start()
            thread.join(timeout=1.0)  # it finishes here, unless it waits for this purge's write lock
        record_deletions(*args, **kwargs)

    monkeypatch.setattr(retention, "record_deletions", between_read_and_write)
    try:
        mine = purge_expired(factory, default_days=0, now=NOW)
        threads[0].join(timeout=60)
        assert not threads[0].is_alive()
        assert sorted(r.calls for r in [*mine, *others]) == [0, 3]  # every call counted once
        assert _remaining(factory, expired) == [] and _purge_events(factory) == sorted(expired)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_purge_turn_holds_back_no_vacuum_and_needs_no_connection_of_the_pool(postgres_url: str) -> None:
    # A pool of one (a worker of concurrency 1): the turn's connection is not the pool's, or the purge's chunks
    # waited for it and the purge timed out on every run.
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=3)
    watcher = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    expired = _expired_calls(factory, 2)
    xmins: list[object] = []

    def look(_calls: int) -> None:  # during the purge: the lock's backend holds no snapshot (backend_xmin)
        with watcher.connect() as probe:
            xmins.extend(probe.execute(text(
                "SELECT a.backend_xmin FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
            ), {"key": PURGE_LOCK_KEY}).scalars())

    try:
        report = run_purge(factory, default_days=0, handoff_days=30, now=NOW, on_purged=look)
        assert report.calls[0].calls == 2 and _remaining(factory, expired) == []
        assert xmins == [None]  # one lock holder, with no snapshot kept open
    finally:
        engine.dispose()
        watcher.dispose()
