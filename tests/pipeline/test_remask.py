"""`postcall remask` (app/pipeline/remask.py): stored masked copies written by an older detector are masked
again (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import app
from app.db.session import unit_of_work
from app.models import Call, Claim, Evidence, OutboxEvent
from app.pipeline.remask import remask_calls
from tests.handoff.conftest import events_of, processed_call

ITIN = "912-70-3456"  # after "tax id": an SSN-like number the detector once left alone (every ITIN is 9xx)
SAID = f"my tax id is {ITIN}"


def _as_an_older_detector_left_it(factory: sessionmaker[Session], call_id: str) -> None:
    """A claim, one of its quotes, the case note and the hand-off record holding the ITIN unmasked, as copies
    stored before the detector masked it."""
    with unit_of_work(factory) as session:
        claim = session.scalars(select(Claim).where(Claim.call_id == call_id).order_by(Claim.id)).first()
        assert claim is not None
        session.execute(update(Claim).where(Claim.id == claim.id).values(
            text=f"The customer gave {SAID}", text_masked=f"The customer gave {SAID}", due=f"after {SAID}"))
        evidence_id = session.scalars(select(Evidence.id).where(Evidence.claim_id == claim.id)).first()
        session.execute(update(Evidence).where(Evidence.id == evidence_id).values(quote=SAID, quote_masked=SAID))
        session.execute(update(Call).where(Call.id == call_id).values(case_note=f"Caller: {SAID}"))
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.call_id == call_id)).first()
        assert event is not None
        data = dict(event.payload["data"])
        data["summary"] = {**data["summary"], "note": f"Caller: {SAID}"}
        event.payload = {**event.payload, "data": data}


def test_remask_masks_what_an_older_detector_left_and_is_idempotent(
    session_factory: sessionmaker[Session],
) -> None:
    call_id = processed_call(session_factory, "remask-1")
    untouched = processed_call(session_factory, "remask-2")
    _as_an_older_detector_left_it(session_factory, call_id)

    report = remask_calls(session_factory)
    assert (report.calls, report.claims, report.evidence, report.notes, report.events) == (2, 1, 1, 1, 1)
    with unit_of_work(session_factory) as session:
        claim = session.scalars(select(Claim).where(Claim.call_id == call_id).order_by(Claim.id)).first()
        assert claim is not None and ITIN not in (claim.text_masked or "") and claim.text_masked.endswith("3456")
        assert claim.text == f"The customer gave {SAID}"  # the original, for view_pii, untouched
        assert claim.due is not None and ITIN not in claim.due
        quotes = session.scalars(select(Evidence.quote_masked).join(Claim).where(Claim.call_id == call_id)).all()
        assert not any(ITIN in (quote or "") for quote in quotes)
        assert ITIN not in (session.get(Call, call_id).case_note or "")  # type: ignore[union-attr]
    assert ITIN not in str(events_of(session_factory, call_id)[0].payload)
    assert events_of(session_factory, untouched)  # the other call's rows read, nothing to change

    again = remask_calls(session_factory)
    assert (again.calls, again.claims, again.evidence, again.notes, again.events) == (2, 0, 0, 0, 0)


def test_the_command_takes_a_tenant(session_factory: sessionmaker[Session], monkeypatch, db_url: str) -> None:  # type: ignore[no-untyped-def]
    from app.config import get_settings

    call_id = processed_call(session_factory, "remask-cli")
    _as_an_older_detector_left_it(session_factory, call_id)
    monkeypatch.setenv("POSTCALL_DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()
    refused = runner.invoke(app, ["remask", "--tenant", "nope"])
    assert refused.exit_code == 2 and "not found" in refused.output
    done = runner.invoke(app, ["remask", "--tenant", "acme"])
    assert done.exit_code == 0, done.output
    assert "masked again: 1 claims, 1 evidence quotes, 1 case notes, 1" in " ".join(done.output.split())
