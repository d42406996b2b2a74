"""Retention of the hand-off's history (app/pipeline/retention.py `purge_handoff_history`): delivered and
dead-lettered events older than POSTCALL_HANDOFF_RETENTION_DAYS go with their deliveries and attempts, oldest
first, a chunk per transaction; an event with a pending delivery stays, and so does everything after it; the
feed answers a cursor from before what is kept with 410. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.handoff.feed import CursorError, CursorExpiredError, read_feed
from app.handoff.outbox import new_event_id
from app.models import DeliveryStatus, OutboxEvent, UserRole, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.retention import HandoffPurge, purge_handoff_history
from tests.handoff.conftest import TENANT, make_principal
from tests.web.world import client_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAYS = 30
QUOTE = "my card is 4111 1111 1111 1111"  # what an event's payload carries: the record, quotes included


@dataclass(frozen=True)
class Sent:
    """One delivery of an event: its status, how many attempts it logged, and whether a worker holds it."""

    status: DeliveryStatus
    attempts: int = 1
    leased: bool = False


class History:
    """Outbox rows written as the pipeline and the delivery workers leave them, with chosen ages."""

    def __init__(self, factory: sessionmaker[Session], *, tenant: str = TENANT, endpoints: int = 2,
                 now: datetime = NOW) -> None:
        self.factory = factory
        self.now = now
        with unit_of_work(factory) as session:
            self.tenant_id = get_or_create_tenant(session, tenant).id
            rows = [WebhookEndpoint(tenant_id=self.tenant_id, url=f"https://crm.example.test/{n}",
                                    secret_encrypted="sealed", active=True, created_at=NOW)
                    for n in range(endpoints)]
            session.add_all(rows)
            session.flush()
            self.endpoints = [row.id for row in rows]

    def event(self, age_days: float, *sent: Sent) -> int:
        """An event `age_days` old with one delivery per `sent` (to the endpoints in turn); its id."""
        created = self.now - timedelta(days=age_days)
        with unit_of_work(self.factory) as session:
            event_id = new_event_id()
            row = OutboxEvent(event_id=event_id, tenant_id=self.tenant_id, call_id=f"call-{event_id[-8:]}",
                              agent_id="A-7", team=None, type="call.processed", created_at=created,
                              payload={"type": "call.processed", "timestamp": created.isoformat(),
                                       "data": {"quote": QUOTE}})
            session.add(row)
            session.flush()
            for endpoint_id, delivery in zip(self.endpoints, sent, strict=False):
                finished = delivery.status is not DeliveryStatus.pending
                delivery_row = WebhookDelivery(
                    outbox_id=row.id, endpoint_id=endpoint_id, call_id=row.call_id, status=delivery.status,
                    attempts=delivery.attempts, next_attempt_at=created, retry_until=created + timedelta(days=1),
                    lease_until=self.now + timedelta(seconds=15) if delivery.leased else None, created_at=created,
                    finished_at=created if finished else None)
                session.add(delivery_row)
                session.flush()
                for number in range(delivery.attempts):
                    last = number == delivery.attempts - 1
                    outcome = ("in_flight" if delivery.leased else str(delivery.status.value).replace(
                        "pending", "retry")) if last else "retry"
                    session.add(WebhookAttempt(delivery_id=delivery_row.id, outcome=outcome, started_at=created,
                                               finished_at=None if outcome == "in_flight" else created))
            return row.id


def _events(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return list(session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))


def _rows(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    """Outbox events, deliveries, attempts."""
    with factory() as session:
        return tuple(session.scalar(select(func.count()).select_from(model)) or 0  # type: ignore[return-value]
                     for model in (OutboxEvent, WebhookDelivery, WebhookAttempt))


def _deliveries_of(factory: sessionmaker[Session], event_ids: list[int]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).where(WebhookDelivery.outbox_id.in_(event_ids))) or 0


def _purge(factory: sessionmaker[Session], **kwargs: object) -> HandoffPurge:
    report = purge_handoff_history(factory, days=DAYS, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert report is not None
    return report


def test_old_finished_events_go_with_their_deliveries_and_attempts(session_factory: sessionmaker[Session]) -> None:
    history = History(session_factory)
    delivered = history.event(40, Sent(DeliveryStatus.succeeded, attempts=2), Sent(DeliveryStatus.dead, attempts=3))
    dead_letter = history.event(35, Sent(DeliveryStatus.dead, attempts=3))
    unsubscribed = history.event(31)  # no endpoint took its type: no delivery at all
    recent = history.event(20, Sent(DeliveryStatus.succeeded))
    newest = history.event(1, Sent(DeliveryStatus.pending, attempts=0))
    assert _rows(session_factory) == (5, 5, 9)

    dry = _purge(session_factory, dry_run=True)
    assert (dry.events, dry.deliveries, dry.attempts) == (3, 3, 8)
    assert _rows(session_factory) == (5, 5, 9)  # a dry run deletes nothing

    report = _purge(session_factory)

    assert (report.events, report.deliveries, report.attempts) == (3, 3, 8)
    assert report.cutoff == NOW - timedelta(days=DAYS) and report.held_by_event is None
    assert _events(session_factory) == [recent, newest]
    assert _rows(session_factory) == (2, 2, 1)
    assert _deliveries_of(session_factory, [delivered, dead_letter, unsubscribed]) == 0
    again = _purge(session_factory)
    assert (again.events, again.deliveries, again.attempts) == (0, 0, 0)


def test_an_event_with_a_pending_delivery_stays_however_old_and_so_does_what_follows(
    session_factory: sessionmaker[Session],
) -> None:
    history = History(session_factory)
    oldest = history.event(500, Sent(DeliveryStatus.succeeded))
    # A replayed dead letter, a worker sending it right now (leased, its attempt in flight).
    in_flight = history.event(400, Sent(DeliveryStatus.succeeded), Sent(DeliveryStatus.pending, leased=True))
    after_it = history.event(300, Sent(DeliveryStatus.succeeded))
    newest = history.event(1, Sent(DeliveryStatus.succeeded))

    report = _purge(session_factory)

    assert (report.events, report.held_by_event) == (1, in_flight)
    assert _events(session_factory) == [in_flight, after_it, newest]
    assert oldest not in _events(session_factory)
    assert _deliveries_of(session_factory, [in_flight]) == 2  # both of its deliveries, the finished one too

    # The lease ends with a failed attempt: still pending (waiting for its retry), still kept.
    with unit_of_work(session_factory) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.outbox_id == in_flight)
                        .values(lease_until=None))
    assert _purge(session_factory).held_by_event == in_flight
    assert _events(session_factory) == [in_flight, after_it, newest]

    # Dead-lettered at the end of its retry period: now it goes, and the events after it.
    with unit_of_work(session_factory) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.outbox_id == in_flight)
                        .values(status=DeliveryStatus.dead))
    final = _purge(session_factory)
    assert (final.events, final.deliveries, final.held_by_event) == (2, 3, None)
    assert _events(session_factory) == [newest]


def test_the_newest_event_stays_and_ids_go_on_past_it(session_factory: sessionmaker[Session]) -> None:
    history = History(session_factory)
    old = [history.event(60 - n, Sent(DeliveryStatus.succeeded)) for n in range(3)]

    assert _purge(session_factory).events == 2

    assert _events(session_factory) == old[-1:]
    # SQLite gives a new row the largest id there is plus one: had the newest gone, the next event would take
    # an id the feed may already have handed out as a cursor.
    assert history.event(0) > old[-1]


def test_each_chunk_is_committed_oldest_first_and_a_limited_run_stops(session_factory: sessionmaker[Session]) -> None:
    history = History(session_factory)
    old = [history.event(90 - n, Sent(DeliveryStatus.succeeded)) for n in range(7)]
    newest = history.event(0)
    seen: list[tuple[int, list[int]]] = []

    first = _purge(session_factory, chunk_events=2, max_events=5,
                   on_purged=lambda count: seen.append((count, _events(session_factory))))

    # After each chunk another session already sees its events gone (committed), the oldest first.
    assert seen == [(2, [*old[2:], newest]), (2, [*old[4:], newest]), (1, [*old[5:], newest])]
    assert (first.events, first.deliveries, first.attempts) == (5, 5, 5)
    second = _purge(session_factory, chunk_events=2, max_events=5)
    assert second.events == 2
    assert _events(session_factory) == [newest]


def test_a_period_of_zero_keeps_the_history_and_the_setting_is_bounded(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = History(session_factory)
    history.event(4000, Sent(DeliveryStatus.succeeded))
    history.event(3000, Sent(DeliveryStatus.succeeded))

    assert purge_handoff_history(session_factory, days=0, now=NOW) is None
    assert _rows(session_factory) == (2, 2, 2)
    assert get_settings().handoff_retention_days == 30
    for bad in ("-1", "36501", "thirty"):
        monkeypatch.setenv("POSTCALL_HANDOFF_RETENTION_DAYS", bad)
        with pytest.raises(ValidationError, match="handoff_retention_days"):
            Settings()
    monkeypatch.setenv("POSTCALL_HANDOFF_RETENTION_DAYS", "0")
    assert Settings().handoff_retention_days == 0


def test_the_feed_answers_a_cursor_from_before_what_is_kept_with_410(
    db_url: str, session_factory: sessionmaker[Session],
) -> None:
    history = History(session_factory)
    admin, token = make_principal(session_factory, "ada", UserRole.admin)
    _, stranger = make_principal(session_factory, "gus", UserRole.admin, tenant="globex")
    old = [history.event(60 - n, Sent(DeliveryStatus.succeeded)) for n in range(3)]
    kept = [history.event(2, Sent(DeliveryStatus.succeeded)), history.event(1)]

    with client_for(db_url, lambda call_ids: 0) as api:
        def feed(user: str, after: int | str | None = None) -> tuple[int, dict[str, Any]]:
            answer = api.get("/api/events", params={} if after is None else {"after": str(after)},
                             headers={"Authorization": f"Bearer {user}"})
            return answer.status_code, answer.json()

        status, page = feed(token, old[0])
        assert status == 200 and [e["cursor"] for e in page["events"]] == [str(i) for i in [*old[1:], *kept]]
        assert _purge(session_factory).events == 3

        status, page = feed(token, old[0])  # it read old[0] only: old[1] and old[2] went unseen
        assert status == 410, page
        assert "older than the events the feed keeps" in str(page["detail"]) and "without `after`" in str(
            page["detail"])
        status, page = feed(token, old[-1])  # it read everything that went: it missed nothing
        assert status == 200 and [e["cursor"] for e in page["events"]] == [str(i) for i in kept]
        status, page = feed(token)  # starting again: from the oldest event kept
        assert status == 200 and [e["cursor"] for e in page["events"]] == [str(i) for i in kept]
        # Another tenant's reader lost nothing of its own: no 410 for any cursor, and its cursor is never
        # moved to (nor told) this tenant's ids; one of this tenant's ids is past every event of its own.
        status, page = feed(stranger)
        assert status == 200 and page == {"events": [], "next_cursor": "0"}
        status, page = feed(stranger, old[0])
        assert status == 422 and "past the newest event" in str(page["detail"])
    with unit_of_work(session_factory) as session, pytest.raises(CursorExpiredError):
        read_feed(session, admin, str(old[1]))


def test_a_reader_caught_up_before_a_gap_in_the_ids_is_not_told_it_missed_events(
    db_url: str, session_factory: sessionmaker[Session],
) -> None:
    # PostgreSQL never reuses an id a rolled-back transaction took: a reader caught up at the newest event,
    # that event purged behind such a gap, was answered 410 (its cursor older than the oldest kept minus one).
    history = History(session_factory)
    admin, _ = make_principal(session_factory, "ada", UserRole.admin)
    caught_up = history.event(40, Sent(DeliveryStatus.succeeded))
    with unit_of_work(session_factory) as session:
        assert [item.cursor for item in read_feed(session, admin, None).items] == [str(caught_up)]
    with session_factory() as session:  # an event written and rolled back: its id is gone on PostgreSQL
        session.add(OutboxEvent(event_id=new_event_id(), tenant_id=history.tenant_id, call_id="rolled-back",
                                type="call.processed", payload={}, created_at=NOW))
        session.flush()
        session.rollback()
    newer = history.event(1)
    assert _purge(session_factory).events == 1 and _events(session_factory) == [newer]
    if session_factory.kw["bind"].dialect.name == "postgresql":
        assert newer > caught_up + 1  # the gap
    with unit_of_work(session_factory) as session:
        page = read_feed(session, admin, str(caught_up))
    assert [item.cursor for item in page.items] == [str(newer)]


def test_a_reader_whose_every_event_was_purged_keeps_its_cursor_and_no_later_one(
    session_factory: sessionmaker[Session],
) -> None:
    # Cursors past the reader's tenant's newest event are refused (422), other tenants' events aside. Once the
    # purge took every one of its tenant's events, its last cursor stands at the tenant's mark: still served,
    # and the mark, not another tenant's newer events, is where the cursors it may send end.
    mine = History(session_factory)
    theirs = History(session_factory, tenant="globex")
    admin, _ = make_principal(session_factory, "ada", UserRole.admin)
    old = [mine.event(60 - n, Sent(DeliveryStatus.succeeded)) for n in range(2)]
    with unit_of_work(session_factory) as session:
        caught_up = read_feed(session, admin, None).next_cursor
    assert caught_up == str(old[-1])
    kept = [theirs.event(50, Sent(DeliveryStatus.succeeded)), theirs.event(1)]
    assert _purge(session_factory).events == 3 and _events(session_factory) == kept[-1:]

    with unit_of_work(session_factory) as session:
        page = read_feed(session, admin, caught_up)
    assert (page.items, page.next_cursor) == ([], caught_up)
    for past in (old[-1] + 1, kept[-1]):
        with unit_of_work(session_factory) as session, pytest.raises(CursorError, match="past the newest event"):
            read_feed(session, admin, str(past))


def test_postcall_purge_reports_what_the_hand_off_purge_removed(
    db_url: str, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.cli import app
    from app.context import reset_context

    monkeypatch.setenv("POSTCALL_DATABASE_URL", db_url)
    get_settings.cache_clear()
    reset_context()
    history = History(session_factory, now=datetime.now(UTC))  # the command purges as of now
    for age in (90, 80):
        history.event(age, Sent(DeliveryStatus.succeeded, attempts=2), Sent(DeliveryStatus.dead, attempts=3))
    held = history.event(70, Sent(DeliveryStatus.pending))
    history.event(1)
    runner = CliRunner()
    try:
        dry = runner.invoke(app, ["purge", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "hand-off history that would be purged (dry run)" in dry.output
        assert _rows(session_factory)[0] == 4

        done = runner.invoke(app, ["purge"])
        assert done.exit_code == 0, done.output
        assert "hand-off history purged" in done.output
        # events, deliveries, attempts
        assert " 2 " in done.output and " 4 " in done.output and " 10 " in done.output, done.output
        assert f"stopped at event {held}" in done.output
        assert _rows(session_factory) == (2, 1, 1)

        only_one = runner.invoke(app, ["purge", "--tenant", TENANT])
        assert only_one.exit_code == 0 and "run without --tenant" in only_one.output
    finally:
        reset_context()


@pytest.mark.postgres
def test_the_purge_selects_through_indexes(pg_factory: sessionmaker[Session]) -> None:
    """Every statement of a chunk reads a range of an index, not a whole table: the outbox by its key,
    deliveries by (outbox_id, endpoint_id) and their key, attempts by delivery_id, with statistics of 20,000
    events with 2 deliveries each (below about 10,000 the planner rightly reads the small tables whole)."""
    history = History(pg_factory)
    with unit_of_work(pg_factory) as session:
        session.execute(text(
            "INSERT INTO outbox (event_id, tenant_id, call_id, type, payload, created_at) "
            "SELECT 'msg_' || n, :tenant, 'call-' || n, 'call.processed', '{}', :created "
            "FROM generate_series(1, 20000) AS n"), {"tenant": history.tenant_id, "created": NOW - timedelta(days=90)})
        for endpoint_id in history.endpoints:
            session.execute(text(
                "INSERT INTO webhook_deliveries (outbox_id, endpoint_id, call_id, status, attempts, "
                "next_attempt_at, retry_until, created_at) SELECT id, :endpoint, call_id, 'succeeded', 1, "
                "created_at, created_at, created_at FROM outbox"), {"endpoint": endpoint_id})
        session.execute(text(
            "INSERT INTO webhook_attempts (delivery_id, outcome, started_at) "
            "SELECT id, 'succeeded', created_at FROM webhook_deliveries"))
    with pg_factory() as session:
        session.execute(text("ANALYZE outbox, webhook_deliveries, webhook_attempts"))
        session.commit()
    executed: list[tuple[str, object]] = []

    def capture(connection: object, cursor: object, statement: str, parameters: object, context: object,
                executemany: bool) -> None:
        if "outbox" in statement or "webhook_" in statement:
            executed.append((statement, parameters))

    engine = pg_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", capture)
    try:
        report = _purge(pg_factory, chunk_events=500, max_events=500)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert report.events == 500
    assert len(executed) >= 6  # the newest id; the first event, locked; the chunk; its deliveries; 3 deletes
    plans = []
    with engine.connect() as connection:
        for statement, parameters in executed:
            # As run, with the parameters it ran with (the chunk's rows are gone now; the plan is the same).
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "Seq Scan" not in plan, (statement, plan)
            plans.append(plan)
    used = "\n".join(plans)
    for index in ("pk_outbox", "uq_webhook_deliveries_outbox_id_endpoint_id", "pk_webhook_deliveries",
                  "ix_webhook_attempts_delivery_id"):
        assert index in used, used


@pytest.mark.postgres
def test_a_replay_racing_the_purge_keeps_its_event(pg_factory: sessionmaker[Session]) -> None:
    """A replay makes an old dead letter pending again while the purge reads it: the purge waits for the
    replay's commit and then keeps the event, rather than delete a delivery that is about to be sent."""
    import threading

    history = History(pg_factory)
    replayed = history.event(90, Sent(DeliveryStatus.dead, attempts=3))
    history.event(1)
    reports: list[HandoffPurge] = []
    with pg_factory() as replay:  # `webhooks replay`, not committed yet
        replay.execute(update(WebhookDelivery).where(WebhookDelivery.outbox_id == replayed)
                       .values(status=DeliveryStatus.pending))
        purge = threading.Thread(target=lambda: reports.append(_purge(pg_factory)))
        purge.start()
        purge.join(timeout=1.0)
        assert purge.is_alive()  # waiting for the replay's row lock
        replay.commit()
    purge.join(timeout=30)
    assert [(report.events, report.held_by_event) for report in reports] == [(0, replayed)]
    assert _deliveries_of(pg_factory, [replayed]) == 1


def test_a_replay_waiting_for_the_purge_finds_the_deliveries_gone(
    session_factory: sessionmaker[Session],
) -> None:
    """The other order: the purge has the dead letter locked and deleted, not yet committed; `webhooks
    replay` of it waits, then says it is not found, where it updated rows deleted under it (a 500)."""
    import threading

    from app.errors import NotFoundError
    from app.handoff.endpoints import replay_deliveries

    history = History(session_factory)
    purged = history.event(90, Sent(DeliveryStatus.dead, attempts=2))
    history.event(1)
    with session_factory() as session:
        (delivery_id,) = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.outbox_id == purged))
    outcome: list[object] = []

    def replay() -> None:
        try:
            with unit_of_work(session_factory) as session:
                outcome.append(replay_deliveries(session, get_settings(), history.tenant_id,
                                                 delivery_ids=[delivery_id]))
        except Exception as error:  # the test asserts which
            outcome.append(error)

    with session_factory() as purge:  # as a purge chunk does: lock, delete, commit later
        if purge.get_bind().dialect.name == "sqlite":
            purge.execute(text("UPDATE tenants SET id = id WHERE 0"))
        purge.execute(select(WebhookDelivery.id).where(WebhookDelivery.id == delivery_id).with_for_update())
        purge.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))
        purge.execute(delete(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        purge.execute(delete(OutboxEvent).where(OutboxEvent.id == purged))
        replaying = threading.Thread(target=replay)
        replaying.start()
        replaying.join(timeout=1.0)
        assert replaying.is_alive()  # waiting for the purge's lock
        purge.commit()
    replaying.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], NotFoundError), outcome


def test_a_replay_locks_its_deliveries_only(pg_factory: sessionmaker[Session]) -> None:
    """Its lock is on the deliveries: the endpoint and the event it joins stay free, so the pipeline's new
    deliveries to that endpoint (their key checks) go on while an admin's replay is open."""
    import threading

    from app.handoff.endpoints import replay_deliveries

    history = History(pg_factory)
    dead = history.event(2, Sent(DeliveryStatus.dead))
    fresh = history.event(1)
    with pg_factory() as replay:
        replayed = replay_deliveries(replay, get_settings(), history.tenant_id, all_dead=True)
        assert len(replayed) == 1
        written: list[int] = []

        def new_delivery() -> None:
            with unit_of_work(pg_factory) as session:
                row = WebhookDelivery(outbox_id=fresh, endpoint_id=history.endpoints[0], call_id="c-new",
                                      status=DeliveryStatus.pending, attempts=0, next_attempt_at=NOW,
                                      retry_until=NOW, created_at=NOW)
                session.add(row)
                session.flush()
                written.append(row.id)

        writer = threading.Thread(target=new_delivery)
        writer.start()
        writer.join(timeout=5)
        assert written, "a new delivery to the endpoint waited for the open replay"
        replay.rollback()
    assert _deliveries_of(pg_factory, [dead]) == 1
