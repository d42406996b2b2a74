"""Migration 0030: a call holding an item edited into words its evidence does not support counts it as
flagged (undecided), as the code now keeps it; other calls' counts are left alone. Data only, both databases;
the downgrade gives back the old count."""

from __future__ import annotations

from sqlalchemy import text, update

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, Claim, UserRole
from app.review import ClaimAction, ClaimChanges, review_claim
from app.users import authenticate
from tests.web.world import seed_call, seed_user

BEFORE = "0029"


def test_edited_unverified_items_are_counted_as_flagged(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)  # 0030 changes no table: today's code writes a 0029 database as it is
    engine = create_db_engine(empty_url)
    factory = make_session_factory(engine)
    try:
        token = seed_user(factory, tenant="acme", name="sue", role=UserRole.supervisor)
        edited = seed_call(factory, tenant="acme", external_id="edited", agent_id="a1", team=None)
        untouched = seed_call(factory, tenant="acme", external_id="untouched", agent_id="a1", team=None)
        with factory() as session:
            sue = authenticate(session, token)
        assert sue is not None
        with unit_of_work(factory) as session:
            review_claim(session, sue, edited.claim("summary0"), ClaimAction.edit,
                         ClaimChanges(text="The customer was promised a $900 credit"))
        with unit_of_work(factory) as session:  # as the code before 0030 counted: pending items only
            pending_only = session.execute(text(
                "SELECT COUNT(*) FROM claims WHERE call_id = :call AND grounding_status = 'ungrounded' "
                "AND review_status = 'pending'"), {"call": edited.call_id}).scalar_one()
            session.execute(update(Call).where(Call.id == edited.call_id).values(flagged_items=pending_only))
            session.execute(update(Call).where(Call.id == untouched.call_id).values(flagged_items=7))

        upgrade(empty_url)
        with factory() as session:
            counts = {call.external_id: call.flagged_items for call in session.query(Call)}
            edited_status = session.get(Claim, edited.claim("summary0"))
        assert edited_status is not None and edited_status.grounding_status == "ungrounded"
        assert counts == {"edited": pending_only + 1, "untouched": 7}

        downgrade(empty_url, BEFORE)
        with factory() as session:
            assert {call.external_id: call.flagged_items for call in session.query(Call)} == {
                "edited": pending_only, "untouched": 7}
    finally:
        engine.dispose()
