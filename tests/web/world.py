"""Test data for the web tests: a small hand-written call, its extraction verified by the real grounding
verifier, users of every role in two tenants, and an app + client pointed at a given database."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.session import unit_of_work
from app.grounding import verify_extraction
from app.models import CallState, Claim, RunStatus, UserRole
from app.pipeline.calls import get_call, set_state
from app.pipeline.persist import RunFacts, add_claims, add_run, idempotency_key
from app.pipeline.store import store_transcript
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.grounding import VerificationReport
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.schemas.usage import Usage
from app.users import create_user
from app.web import create_app
from app.worker.enqueue import enqueue_calls
from app.worker.names import QUEUE_NAME
from tests.support.services import redis_url

TEST_SECRET_KEY = "test-secret-key-that-is-long-and-not-the-default"

UTTERANCES: list[tuple[Role, str]] = [
    (Role.agent, "Thank you for calling Acme Bank, this is Dana. How can I help you today?"),
    (Role.customer, "Hi, I was charged a $30 late fee on my card even though I paid on time."),
    (Role.agent, "I see the payment posted on March 3rd. I will refund the $30 late fee to your card."),
    (Role.customer, "Great, how long will that take?"),
    (Role.agent, "You will see the refund within 5 business days. I will also send you a confirmation email today."),
    (Role.customer, "Perfect, thanks for your help."),
]

# The rest of a longer call, repeated as needed (the benchmark's one-hour call has 500 utterances).
FOLLOW_UP: list[tuple[Role, str]] = [
    (Role.agent, "Is there anything else I can help you with today?"),
    (Role.customer, "Actually yes, I moved last month. Can you update my mailing address?"),
    (Role.agent, "Of course. Could you read me the new street address and the postcode?"),
    (Role.customer, "It is 42 Alder Lane, and the postcode is 90210."),
    (Role.agent, "Thank you, I have updated it. Statements will go to the new address from next month."),
    (Role.customer, "And the card itself, do I need a new one?"),
    (Role.agent, "No, your current card keeps working; only the billing address changes."),
    (Role.customer, "Good to know. That is everything, thank you."),
]


def transcript(external_id: str, *, agent_id: str | None, team: str | None, utterances: int = 0) -> Transcript:
    """The hand-written call; `utterances` > 6 pads it with filler turns (long-call benchmarks)."""
    lines = list(UTTERANCES)
    for n in range(len(lines), utterances):
        lines.append(FOLLOW_UP[(n - len(UTTERANCES)) % len(FOLLOW_UP)])
    return Transcript(
        metadata=CallMetadata(
            external_id=external_id, agent_id=agent_id, team=team, started_at=datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
        ),
        utterances=[
            Utterance(index=i, speaker="Dana" if role is Role.agent else "Caller", role=role,
                      start=i * 4.0, end=i * 4.0 + 3.5, text=text)
            for i, (role, text) in enumerate(lines)
        ],
        source_format="native",
    )


def extraction() -> Extraction:
    """Reason, outcome, two summary points (one fabricated: "$50 credit") and one action item."""
    return Extraction(
        reason=Statement(
            text="Customer was charged a $30 late fee despite paying on time",
            evidence=[
                EvidenceRef(utterance=1, quote="I was charged a $30 late fee on my card even though I paid on time")
            ],
        ),
        outcome=Statement(
            text="Agent will refund the $30 late fee",
            evidence=[EvidenceRef(utterance=2, quote="I will refund the $30 late fee to your card")],
        ),
        summary=[
            Statement(text="The payment posted on March 3rd",
                      evidence=[EvidenceRef(utterance=2, quote="the payment posted on March 3rd")]),
            Statement(text="Customer was offered a $50 credit",
                      evidence=[EvidenceRef(utterance=3, quote="I can offer you a $50 credit")]),
        ],
        action_items=[
            ActionItem(text="Send the customer a confirmation email", owner=Owner.agent, due="today",
                       evidence=[EvidenceRef(utterance=4, quote="I will also send you a confirmation email today")]),
        ],
    )


@lru_cache(maxsize=8)
def default_report(utterances: int) -> VerificationReport:
    """The verified default extraction; verification does not depend on ids, so it is computed once."""
    return verify_extraction(transcript("any", agent_id=None, team=None, utterances=utterances), extraction())


@dataclass(frozen=True)
class SeededCall:
    call_id: str
    claims: dict[str, int]  # "reason", "outcome", "summary0", "summary1", "action0", ... -> claim id
    grounded: dict[str, bool]

    def claim(self, key: str) -> int:
        return self.claims[key]


def seed_call(
    factory: sessionmaker[Session],
    *,
    tenant: str,
    external_id: str,
    agent_id: str | None,
    team: str | None,
    document: Extraction | None = None,
    utterances: int = 0,
) -> SeededCall:
    """Store a call and persist a verified extraction for it, as the worker would."""
    with unit_of_work(factory) as session:
        stored = store_transcript(
            session, transcript(external_id, agent_id=agent_id, team=team, utterances=utterances),
            tenant=tenant, external_id=external_id,
        )
        call = get_call(session, stored.call_id)
        report = (
            verify_extraction(transcript(external_id, agent_id=agent_id, team=team, utterances=utterances), document)
            if document is not None
            else default_report(utterances)
        )
        facts = RunFacts(
            key=idempotency_key(call.id, call.transcript_hash, "extract-v1", "test", "hand-written"),
            provider="test", model="hand-written", prompt_version="extract-v1",
            transcript_hash=call.transcript_hash, usage=Usage(), queue_wait_ms=None, verify_ms=None,
        )
        run = add_run(session, call, facts, status=RunStatus.succeeded)
        add_claims(session, run, report)
        set_state(call, CallState.ready_for_review if report.all_grounded else CallState.needs_attention)
        session.flush()
        rows = session.query(Claim).filter(Claim.run_id == run.id).order_by(Claim.position).all()
    keys: list[str] = []
    counters: dict[str, int] = {}
    for row in rows:
        prefix = {"summary": "summary", "action_item": "action"}.get(row.kind)
        if prefix is None:
            keys.append(row.kind)
        else:
            keys.append(f"{prefix}{counters.get(prefix, 0)}")
            counters[prefix] = counters.get(prefix, 0) + 1
    return SeededCall(
        call_id=stored.call_id,
        claims={key: row.id for key, row in zip(keys, rows, strict=True)},
        grounded={key: row.grounding_status == "grounded" for key, row in zip(keys, rows, strict=True)},
    )


def seed_user(
    factory: sessionmaker[Session],
    *,
    tenant: str,
    name: str,
    role: UserRole,
    team: str | None = None,
    agent_id: str | None = None,
) -> str:
    with unit_of_work(factory) as session:
        return create_user(session, tenant=tenant, name=name, role=role, team=team, agent_id=agent_id).token


# The web tests' own Redis database: every message the app publishes lands in the real queue there.
WEB_BROKER_DB = 14
# Nothing listens on port 1: publishing there fails the way a broker that is down does.
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"


@dataclass
class BrokerQueue:
    """Publishes through the real `enqueue_calls` to a real Redis, and reads back what was queued."""

    broker_url: str

    @classmethod
    def fresh(cls) -> BrokerQueue:
        queue = cls(redis_url(WEB_BROKER_DB))
        redis.Redis.from_url(queue.broker_url).delete(QUEUE_NAME)
        return queue

    def __call__(self, call_ids: Sequence[str]) -> int:
        return enqueue_calls(call_ids, broker_url=self.broker_url)

    @property
    def calls(self) -> list[str]:
        """The call ids waiting in the queue, oldest first (as a worker would take them)."""
        messages = redis.Redis.from_url(self.broker_url).lrange(QUEUE_NAME, 0, -1)
        # kombu pushes on the left and workers pop on the right; the body is [args, kwargs, options].
        return [json.loads(base64.b64decode(json.loads(message)["body"]))[0][0] for message in reversed(messages)]


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET_KEY, **overrides)


def client_for(url: str, enqueue: Callable[[Sequence[str]], int] | None = None, **overrides: Any) -> TestClient:
    app = create_app(settings_for(url, **overrides), enqueue=enqueue or BrokerQueue.fresh())
    return TestClient(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def plain_text_call(*, amount: str = "$30") -> bytes:
    """A transcript in the plain-text format, as a contact-center system would upload it."""
    return (
        "[00:01] Agent: Thank you for calling Acme Bank, this is Dana.\n"
        f"[00:05] Customer: I was charged a {amount} late fee although I paid on time.\n"
        f"[00:11] Agent: I will refund the {amount} fee today.\n"
    ).encode()


def native_call(external_id: str, *, agent_id: str = "a1", team: str | None = None) -> bytes:
    document: dict[str, Any] = {
        "external_id": external_id,
        "agent_id": agent_id,
        "utterances": [
            {"speaker": "Agent", "role": "agent", "start": 0.5, "end": 3.0, "text": "Acme Bank, Dana speaking."},
            {"speaker": "Customer", "role": "customer", "start": 3.5, "end": 8.0, "text": "My card was declined."},
        ],
    }
    if team is not None:
        document["team"] = team
    return json.dumps(document).encode()
