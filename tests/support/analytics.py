"""A small two-tenant database for analyst tests: processed calls on several days, reviews, users.

acme: four calls (three processed on 2026-03-09..11, one still queued), one claim approved and one
rejected by a supervisor, the first call approved; globex: two processed calls. Every call is extracted
by the offline heuristic provider, so the claims are real pipeline output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Claim, Tenant, UserRole
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.review import CallDecision, ClaimAction, decide_call, review_claim
from app.schemas.transcript import Role
from app.users import Principal, generate_token, hash_token
from tests.support.transcripts import CARD_CALL_LINES, make_transcript

RETURNS_LINES: list[tuple[Role, str]] = [
    (Role.agent, "Thanks for calling Contoso, this is Maria. How can I help?"),
    (Role.customer, "The blender I ordered arrived broken and I want to send it back."),
    (Role.agent, "I'm sorry about that. I will have the returns team email you a prepaid label by Friday."),
    (Role.customer, "Okay. I will pack it up tonight."),
    (Role.agent, "You will get a refund within 10 business days of us receiving it."),
    (Role.customer, "Thank you, that works."),
]


@dataclass
class World:
    calls: dict[str, list[str]] = field(default_factory=dict)  # tenant -> call ids
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> API token


def _prompt() -> PromptTemplate:
    settings = get_settings()
    return PromptTemplate.load(settings.prompts_dir, settings.prompt_version)


def build_world(factory: sessionmaker[Session]) -> World:
    world = World()
    plan = [
        ("acme", "acme-1", CARD_CALL_LINES, datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "A-1", True),
        ("acme", "acme-2", RETURNS_LINES, datetime(2026, 3, 10, 9, 30, tzinfo=UTC), "A-2", True),
        ("acme", "acme-3", CARD_CALL_LINES, datetime(2026, 3, 11, 16, 45, tzinfo=UTC), "A-1", True),
        ("acme", "acme-4", RETURNS_LINES, datetime(2026, 3, 11, 17, 0, tzinfo=UTC), "A-2", False),
        ("globex", "globex-1", RETURNS_LINES, datetime(2026, 3, 10, 11, 0, tzinfo=UTC), "G-1", True),
        ("globex", "globex-2", CARD_CALL_LINES, datetime(2026, 3, 11, 12, 0, tzinfo=UTC), "G-2", True),
    ]
    for tenant, external_id, lines, started_at, agent_id, processed in plan:
        transcript = make_transcript(lines, external_id=external_id, agent_id=agent_id)
        transcript.metadata.started_at = started_at
        with unit_of_work(factory) as session:
            call_id = store_transcript(session, transcript, tenant=tenant, external_id=external_id).call_id
        world.calls.setdefault(tenant, []).append(call_id)
        if processed:
            process_call(factory, call_id, HeuristicProvider(), _prompt())
    with unit_of_work(factory) as session:
        principals = {}
        for tenant, name, role in [("acme", "sup-acme", UserRole.supervisor), ("acme", "ana-acme", UserRole.analyst),
                                   ("globex", "sup-globex", UserRole.supervisor)]:
            world.tokens[name], principals[name] = add_user(session, tenant, name, role)
    with unit_of_work(factory) as session:
        supervisor = principals["sup-acme"]
        first = world.calls["acme"][0]
        claims = list(session.scalars(select(Claim).where(Claim.call_id == first).order_by(Claim.position)))
        for claim in claims:
            action = ClaimAction.reject if claim.kind == "summary" else ClaimAction.approve
            review_claim(session, supervisor, claim.id, action)
        decide_call(session, supervisor, first, CallDecision.approve)
    return world


def add_user(session: Session, tenant: str, name: str, role: UserRole) -> tuple[str, Principal]:
    """A user as the database at hand holds one: the migration tests build this world at revisions older than
    the users table's newest columns (and than the user audit trail `create_user` writes), so the row goes in
    through the table as reflected, with only the columns it has."""
    users = Table("users", MetaData(), autoload_with=session.connection())
    tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == tenant))
    assert tenant_id is not None  # the tenant's calls were stored first
    token = generate_token()
    values = {"tenant_id": tenant_id, "name": name, "role": role.value, "token_hash": hash_token(token), "active": True,
              "created_at": datetime.now(UTC), "session_version": 0, "view_pii": False}
    user_id = session.execute(insert(users).values({key: value for key, value in values.items() if key in users.c})
                              .returning(users.c.id)).scalar_one()
    return token, Principal(user_id=user_id, name=name, tenant_id=tenant_id, tenant=tenant, role=role)
