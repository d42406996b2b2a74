"""`postcall webhooks ...` (app/cli/webhooks.py), driven through its Typer app on SQLite, with deliveries
sent to a real receiver on 127.0.0.1."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli.webhooks import webhooks_app
from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.delivery import DeliveryPolicy, deliver
from app.handoff.outbox import install_delivery_notifier
from app.handoff.secrets import SecretBox
from app.models import UserRole, WebhookDelivery, WebhookEndpoint
from app.pipeline.calls import get_or_create_tenant
from app.users import create_user
from tests.handoff.conftest import processed_call
from tests.support.receiver import Reply, running_receiver, verify
from tests.web.world import bearer, client_for

runner = CliRunner()


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTCALL_SECRET_KEY", "cli-webhooks-test-key-" + "k" * 24)  # as a deployment sets it
    get_settings.cache_clear()
    install_delivery_notifier(None)
    with unit_of_work(make_session_factory(create_db_engine(sqlite_url))) as session:
        for slug in ("acme", "globex"):
            get_or_create_tenant(session, slug)
    return sqlite_url


def test_add_refuses_an_unknown_tenant_unless_asked_to_make_it(database: str) -> None:
    # A mistyped --tenant made a new tenant and an endpoint that would never receive an event.
    typo = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", "acmee"])
    assert typo.exit_code != 0 and "no tenant 'acmee'" in typo.output and "--new-tenant" in typo.output
    assert runner.invoke(webhooks_app, ["list", "--tenant", "acmee"]).exit_code != 0  # nothing was made
    made = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", "initech", "--new-tenant"])
    assert made.exit_code == 0, made.output
    listed = json.loads(runner.invoke(webhooks_app, ["list", "--tenant", "initech", "--json"]).output)
    assert [e["url"] for e in listed["endpoints"]] == ["http://127.0.0.1:9/crm"]


def test_add_list_rotate_disable(database: str) -> None:
    added = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", "acme",
                                         "--events", "call.approved,call.rejected", "--description", "CRM"])
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown once" in added.output
    listed = runner.invoke(webhooks_app, ["list", "--tenant", "acme", "--json"])
    (endpoint,) = json.loads(listed.output)["endpoints"]
    assert endpoint["url"] == "http://127.0.0.1:9/crm" and endpoint["events"] == ["call.approved", "call.rejected"]
    assert secret not in listed.output
    assert secret not in runner.invoke(webhooks_app, ["list", "--tenant", "acme"]).output

    rotated = runner.invoke(webhooks_app, ["rotate-secret", str(endpoint["id"]), "--tenant", "acme", "--json"])
    assert json.loads(rotated.output)["secret"] not in {secret, ""}
    assert runner.invoke(webhooks_app, ["disable", str(endpoint["id"]), "--tenant", "acme"]).exit_code == 0
    assert json.loads(runner.invoke(webhooks_app, ["list", "--tenant", "acme", "--json"]).output)[
        "endpoints"][0]["active"] is False
    # Another tenant cannot touch it.
    runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/other", "--tenant", "globex"])
    refused = runner.invoke(webhooks_app, ["disable", str(endpoint["id"]), "--tenant", "globex"])
    assert refused.exit_code == 2 and "not found" in refused.output
    assert runner.invoke(webhooks_app, ["enable", str(endpoint["id"]), "--tenant", "globex"]).exit_code == 2
    enabled = runner.invoke(webhooks_app, ["enable", str(endpoint["id"]), "--tenant", "acme"])
    assert enabled.exit_code == 0 and "replay --failed" in enabled.output
    assert json.loads(runner.invoke(webhooks_app, ["list", "--tenant", "acme", "--json"]).output)[
        "endpoints"][0]["active"] is True
    # Deleted for good once disabled; an active one is refused, another tenant's not found.
    active = runner.invoke(webhooks_app, ["delete", str(endpoint["id"]), "--tenant", "acme"])
    assert active.exit_code != 0 and "disable it first" in active.output
    assert runner.invoke(webhooks_app, ["disable", str(endpoint["id"]), "--tenant", "acme"]).exit_code == 0
    assert runner.invoke(webhooks_app, ["delete", str(endpoint["id"]), "--tenant", "globex"]).exit_code == 2
    deleted = runner.invoke(webhooks_app, ["delete", str(endpoint["id"]), "--tenant", "acme"])
    assert deleted.exit_code == 0 and "deleted endpoint" in deleted.output
    assert json.loads(runner.invoke(webhooks_app, ["list", "--tenant", "acme", "--json"]).output)["endpoints"] == []


def test_the_cli_shows_an_endpoint_exactly_as_the_api_does(database: str) -> None:
    added = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", "acme", "--events",
                                         "call.failed", "--description", "CRM", "--json"])
    assert added.exit_code == 0, added.output
    runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/all", "--tenant", "acme"])
    created = json.loads(added.output)
    assert runner.invoke(webhooks_app, ["disable", str(created["id"]), "--tenant", "acme"]).exit_code == 0
    with unit_of_work(make_session_factory(create_db_engine(database))) as session:
        token = create_user(session, tenant="acme", name="ada", role=UserRole.admin).token
    with client_for(database, webhook_allow_private=True) as client:
        from_api = client.get("/api/webhooks", headers=bearer(token)).json()
    from_cli = json.loads(runner.invoke(webhooks_app, ["list", "--tenant", "acme", "--json"]).output)["endpoints"]
    assert from_cli == from_api and len(from_api) == 2
    assert from_api[0]["active"] is False and from_api[0]["disabled_reason"]
    # `add --json` shows the same fields as the list, with the tenant and the secret on top.
    assert {k: v for k, v in created.items() if k not in ("tenant", "secret")} == {
        **from_api[0], "active": True, "disabled_reason": None, "disabled_at": None}


def test_the_cli_shows_a_delivery_exactly_as_the_api_does(database: str) -> None:
    # `webhooks deliveries --json` named the event type `type` where the API says `event_type`, and had no
    # `finished_at`: a script moving from one to the other read nulls.
    factory = make_session_factory(create_db_engine(database))
    crm = json.loads(runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", "acme", "--json"])
                     .output)["id"]
    runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/tickets", "--tenant", "acme"])
    processed_call(factory, "same-1")
    processed_call(factory, "same-2")
    # One endpoint's deliveries dead-lettered (finished), the other's still pending (not finished).
    assert runner.invoke(webhooks_app, ["disable", str(crm), "--tenant", "acme"]).exit_code == 0
    with unit_of_work(factory) as session:
        token = create_user(session, tenant="acme", name="ada", role=UserRole.admin).token
    with client_for(database, webhook_allow_private=True) as client:
        from_api = client.get("/api/webhooks/deliveries", headers=bearer(token)).json()
        one_call = client.get("/api/webhooks/deliveries?call_id=same-1&limit=1", headers=bearer(token)).json()
    listed = runner.invoke(webhooks_app, ["deliveries", "--tenant", "acme", "--json"])
    assert listed.exit_code == 0, listed.output
    from_cli = json.loads(listed.output)["deliveries"]
    assert from_cli == from_api and len(from_api) == 4
    assert {d["event_type"] for d in from_cli} == {"call.processed"} and "type" not in from_cli[0]
    assert {d["status"]: d["finished_at"] is not None for d in from_cli} == {"dead": True, "pending": False}
    filtered = runner.invoke(webhooks_app, ["deliveries", "--call", "same-1", "--limit", "1", "--tenant", "acme",
                                            "--json"])
    assert json.loads(filtered.output)["deliveries"] == one_call
    # --attempts adds the attempt log, which the API does not serve, and changes nothing else.
    with_attempts = json.loads(runner.invoke(webhooks_app, ["deliveries", "--attempts", "--tenant", "acme",
                                                            "--json"]).output)["deliveries"]
    assert [{k: v for k, v in d.items() if k != "attempt_log"} for d in with_attempts] == from_api
    assert all(d["attempt_log"] == [] for d in with_attempts)  # nothing was sent
    factory.kw["bind"].dispose()


def test_invalid_input_is_refused_with_a_reason(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/x", "--events", "call.eaten"])
    assert unknown.exit_code == 2 and "unknown event type" in unknown.output
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    private = runner.invoke(webhooks_app, ["add", "https://127.0.0.1/x"])
    assert private.exit_code == 2 and "POSTCALL_WEBHOOK_ALLOW_PRIVATE" in private.output


def test_deliveries_shows_failures_and_replay_resends_with_the_same_id(database: str) -> None:
    factory = make_session_factory(create_db_engine(database))
    # The loopback receiver answers every attempt: a generous timeout, as a loaded box has taken over a second.
    policy = DeliveryPolicy(timeout=10, retry_period=3600, backoff_base=0.01, backoff_max=0.01,
                            max_client_error_attempts=1, allow_private=True)
    replies = iter([Reply(404), Reply(200)])
    with running_receiver(lambda _r, _n: next(replies)) as receiver, httpx.Client() as client:
        added = runner.invoke(webhooks_app, ["add", receiver.url, "--tenant", "acme", "--json"])
        secret = json.loads(added.output)["secret"]
        processed_call(factory, "cli-1")
        with unit_of_work(factory) as session:
            delivery_id = session.scalars(select(WebhookDelivery.id)).one()
            endpoint_tenant = session.scalars(select(WebhookEndpoint.tenant_id)).one()
        box = SecretBox.from_settings(get_settings())
        assert deliver(factory, delivery_id, policy, box, client).result.value == "dead"

        failed = json.loads(runner.invoke(webhooks_app, ["deliveries", "--failed", "--tenant", "acme",
                                                         "--json"]).output)["deliveries"]
        assert [(d["id"], d["status"], d["last_status_code"]) for d in failed] == [(delivery_id, "dead", 404)]
        assert "404" in runner.invoke(webhooks_app, ["deliveries", "--tenant", "acme"]).output
        logged = json.loads(runner.invoke(webhooks_app, ["deliveries", "--attempts", "--tenant", "acme",
                                                         "--json"]).output)["deliveries"][0]["attempt_log"]
        assert [(a["outcome"], a["status_code"]) for a in logged] == [("dead", 404)]
        assert logged[0]["latency_ms"] is not None
        assert "dead" in runner.invoke(webhooks_app, ["deliveries", "--attempts", "--tenant", "acme"]).output
        # One call's, by its external id as by its id; the next page of one is empty.
        for reference in ("cli-1", failed[0]["call_id"]):
            mine = json.loads(runner.invoke(webhooks_app, ["deliveries", "--call", reference, "--tenant", "acme",
                                                           "--json"]).output)["deliveries"]
            assert [d["id"] for d in mine] == [delivery_id]
        older = runner.invoke(webhooks_app, ["deliveries", "--before", str(delivery_id), "--tenant", "acme", "--json"])
        assert json.loads(older.output)["deliveries"] == []

        replayed = runner.invoke(webhooks_app, ["replay", "--failed", "--tenant", "acme"])
        assert replayed.exit_code == 0 and "replaying 1" in replayed.output
        assert deliver(factory, delivery_id, policy, box, client).result.value == "succeeded"
    first, second = receiver.all_requests()
    assert first.webhook_id == second.webhook_id
    verify(second, secret)
    assert endpoint_tenant
    factory.kw["bind"].dispose()


@pytest.mark.parametrize("key", [None, "a-real-key-" + "x" * 32])
def test_storing_a_secret_under_the_development_key_is_warned_about(
    database: str, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    # Workers run with the real key cannot decrypt such a secret: every delivery would fail.
    if key is None:
        monkeypatch.delenv("POSTCALL_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("POSTCALL_SECRET_KEY", key)
    get_settings.cache_clear()
    added = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/hook", "--tenant", "acme"])
    assert added.exit_code == 0, added.output
    assert ("development key" in added.output) is (key is None)
