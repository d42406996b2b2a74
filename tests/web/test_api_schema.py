"""The API answers as its OpenAPI document says, for generated input: a bounded schemathesis run against
the app's own /openapi.json, in-process, on a real PostgreSQL database and a real Redis broker, with a
valid token of every role. Any 5xx, undocumented status, or body off its schema fails the run.

Every operation gets schema-valid (positive) and schema-violating (negative) cases; each case is sent
once per role. The run is bounded by EXAMPLES_PER_OPERATION (a minute or two on a 2-core machine)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import User, UserRole
from app.users import hash_token
from tests.support.services import migrated_pg_database, redis_url
from tests.web.world import BrokerQueue, seed_call, seed_user, settings_for

# This run's own Redis database (others: 9 default, 11-14 worker/ops/metrics/web tests).
SCHEMA_BROKER_DB = 10
EXAMPLES_PER_OPERATION = 30
# Every check runs but "schema-valid requests are accepted": this API answers 422 (documented on every
# operation) for rules a JSON schema does not state: a transcript upload is "any bytes" in the schema but
# must be a transcript; an edit must change something; an agent needs an agent id; an added item's quote
# must be in the transcript. Schema-invalid input must still be refused (negative_data_rejection).
EXCLUDED_CHECKS = [positive_data_acceptance]
ROLES: dict[str, tuple[UserRole, str | None]] = {
    "admin": (UserRole.admin, None),
    "supervisor": (UserRole.supervisor, None),
    "analyst": (UserRole.analyst, None),
    "agent": (UserRole.agent, "a1"),
}
pytestmark = pytest.mark.postgres
# Operations that may change the role users the run signs in as.
CHANGES_USERS = ("/api/users/{user_id}", "/api/me/rotate-token")


@dataclass
class Target:
    schema: Any
    tokens: dict[str, str]
    factory: sessionmaker[Session]

    def restore_users(self) -> None:
        """Give each role's user its token, role, agent id and team back, and switch it on, after a case that
        may have changed them (a rotation, PATCH, deactivate, reactivate): otherwise every later case would be
        sent with a revoked token, or as another role, and check nothing but the 401."""
        with unit_of_work(self.factory) as session:
            for name, token in self.tokens.items():
                role, agent_id = ROLES[name]
                session.execute(update(User).where(User.name == name).values(
                    token_hash=hash_token(token), role=role, agent_id=agent_id, team=None, active=True))


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    from app.web import create_app

    with migrated_pg_database() as url:
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        tokens = {name: seed_user(factory, tenant="acme", name=name, role=role, agent_id=agent_id)
                  for name, (role, agent_id) in ROLES.items()}
        seed_call(factory, tenant="acme", external_id="schema-call", agent_id="a1", team=None)
        app = create_app(settings_for(url), enqueue=BrokerQueue(redis_url(SCHEMA_BROKER_DB)))
        yield Target(from_asgi("/openapi.json", app), tokens, factory)
        app.state.web.session_factory.kw["bind"].dispose()
        engine.dispose()


def operations(target: Target) -> list[Any]:
    return [result.ok() for result in target.schema.get_all_operations()]


def test_the_run_covers_every_documented_operation(target: Target) -> None:
    labels = {operation.label for operation in operations(target)}
    assert labels == {
        "GET /api/me", "GET /api/calls", "POST /api/calls", "GET /api/calls/{call_id}",
        "DELETE /api/calls/{call_id}", "GET /api/calls/{call_id}/events", "POST /api/calls/{call_id}/review",
        "POST /api/calls/{call_id}/claims", "POST /api/claims/{claim_id}/review", "GET /api/users",
        "POST /api/users", "POST /api/me/rotate-token", "POST /api/users/{user_id}/rotate-token",
        "GET /api/users/events", "PATCH /api/users/{user_id}", "POST /api/users/{user_id}/deactivate",
        "POST /api/users/{user_id}/reactivate",
        # hand-off (app/web/handoff_api.py)
        "GET /api/schemas/call.v1.json", "GET /api/schemas/event.v1.json", "GET /api/calls/{call_id}/record",
        "GET /api/events", "GET /api/webhooks",
        "POST /api/webhooks",
        "POST /api/webhooks/{endpoint_id}/disable", "POST /api/webhooks/{endpoint_id}/enable",
        "DELETE /api/webhooks/{endpoint_id}",
        "POST /api/webhooks/{endpoint_id}/rotate-secret",
        "GET /api/webhooks/deliveries", "POST /api/webhooks/deliveries/replay",
        # analysts (app/web/analytics.py)
        "GET /api/export",
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_as_documented(target: Target, mode: GenerationMode) -> None:
    for operation in operations(target):

        # Authorization is fixed (each role's token replaces it when sending), so a negative case never
        # "omits" it only to have a token added back.
        @given(case=operation.as_strategy(generation_mode=mode, headers={"Authorization": "Bearer role-token"}))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: Any) -> None:
            for token in target.tokens.values():
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=EXCLUDED_CHECKS)
                if case.operation.path.startswith(CHANGES_USERS):
                    target.restore_users()

        try:
            answers_as_documented()
        except Unsatisfiable:
            # Nothing to violate but the (fixed) token or a path segment (a string any URL-safe text fits):
            # GET /api/me, GET /api/calls/{call_id}... in negative mode. Anything with a body or a query has.
            assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.body, operation.label
