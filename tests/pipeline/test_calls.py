"""Several calls' transcripts read at once (group commit, PostgreSQL): each call's utterances in order, looked
up by the call's key whatever the planner knows of the table."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.driver import run_on_driver
from app.db.session import unit_of_work
from app.pipeline.calls import _TRANSCRIPTS_ROWS, get_or_create_tenant, transcript_rows_of
from app.pipeline.store import store_transcript
from tests.support.call_rows import insert_call_rows
from tests.support.transcripts import make_transcript

FILLER_CALLS, UTTERANCES_EACH = 3000, 30


def _store(factory: sessionmaker[Session], count: int) -> list[str]:
    with unit_of_work(factory) as session:
        return [store_transcript(session, make_transcript(external_id=f"t-{n}"), tenant="acme",
                                 external_id=f"t-{n}").call_id for n in range(count)]


def test_several_calls_transcripts_come_back_each_in_order(pg_factory: sessionmaker[Session]) -> None:
    call_ids = _store(pg_factory, 3)
    with unit_of_work(pg_factory) as session:
        expected = {call_id: [tuple(row) for row in session.execute(text(
            "SELECT index, text FROM utterances WHERE call_id = :id ORDER BY index"), {"id": call_id})]
            for call_id in call_ids}
        rows = transcript_rows_of(session, [*reversed(call_ids), "no-such-call"])
    assert set(rows) == {*call_ids, "no-such-call"} and rows["no-such-call"] == []
    for call_id in call_ids:
        assert expected[call_id] and [(row.index, row.text) for row in rows[call_id]] == expected[call_id]


def test_a_groups_utterances_are_looked_up_by_call_without_statistics(pg_factory: sessionmaker[Session]) -> None:
    """This machine's PostgreSQL runs without autovacuum, so utterances has no statistics: `call_id = ANY(ids)`
    of a group of 32 calls was planned as a scan of every utterance. Each call is now looked up by its key."""
    with unit_of_work(pg_factory) as session:
        tenant_id = get_or_create_tenant(session, "acme").id
    insert_call_rows(pg_factory.kw["bind"], tenant_id, "filler-", FILLER_CALLS)
    with unit_of_work(pg_factory) as session:
        session.execute(text(
            "INSERT INTO utterances (call_id, index, speaker, role, text) "
            "SELECT 'filler-' || g, i, 'agent', 'agent', repeat('words ', 12) "
            "FROM generate_series(1, :calls) g CROSS JOIN generate_series(0, :each - 1) i"),
            {"calls": FILLER_CALLS, "each": UTTERANCES_EACH})
    group = [f"filler-{n}" for n in range(1, 33)]
    with unit_of_work(pg_factory) as session:
        connection = session.connection()
        compiled = _TRANSCRIPTS_ROWS.statement.compile(dialect=connection.dialect)
        plan = "\n".join(row[0] for row in run_on_driver(
            connection, f"EXPLAIN {compiled}", {**compiled.params, "call_ids": group}, fetch=True))
        rows = transcript_rows_of(session, group)
    assert "on utterances" in plan and "Seq Scan on utterances" not in plan, plan
    assert all([row.index for row in rows[call_id]] == list(range(UTTERANCES_EACH)) for call_id in group)
