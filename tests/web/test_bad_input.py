"""Bad or hostile input through the HTTP API ends in a 4xx naming the problem: never a 500, never a record
stored in part, never a decided record changed (issue: bad input never reaches a 500)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app.models import Call, CallState, Claim, Utterance
from tests.web.conftest import World
from tests.web.world import native_call


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def claim_count(world: World, call_id: str) -> int:
    with world.factory() as session:
        return int(session.scalar(select(func.count()).select_from(Claim).where(Claim.call_id == call_id)) or 0)


def approve(world: World, call_id: str, user: str = "supervisor") -> None:
    """Decide every unverified item, then approve the call, through the API."""
    headers = world.token(user)
    detail = world.client.get(f"/api/calls/{call_id}", headers=headers).json()
    for claim in detail["claims"]:
        if claim["status"] != "grounded":
            world.client.post(f"/api/claims/{claim['id']}/review", json={"action": "reject"}, headers=headers)
    response = world.client.post(f"/api/calls/{call_id}/review", json={"decision": "approve"}, headers=headers)
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------------ 1. decided calls are locked


def test_replacing_an_approved_call_is_409_until_it_is_reopened(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    headers = world.token("supervisor")
    external_id = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()["external_id"]
    approve(world, call.call_id)
    items = claim_count(world, call.call_id)
    params = {"external_id": external_id, "replace": "true"}
    refused = world.client.post("/api/calls", params=params, content=native_call(external_id, team="blue"),
                                headers=headers)
    assert refused.status_code == 409, refused.text
    assert "approved" in refused.json()["detail"] and "reopen" in refused.json()["detail"]
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and stored.state is CallState.approved
    assert claim_count(world, call.call_id) == items

    reopened = world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reopen"}, headers=headers)
    assert reopened.status_code == 200
    replaced = world.client.post("/api/calls", params=params, content=native_call(external_id, team="blue"),
                                 headers=headers)
    assert replaced.status_code == 202, replaced.text
    assert replaced.json()["status"] == "replaced"
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=headers).json()
    assert events[-1]["action"] == "transcript_replaced"
    # Every event names the person who acted; none is anonymous "system".
    assert {e["actor"] for e in events} == {"supervisor"}
    assert all(e["actor_user_id"] is not None for e in events)


def test_a_rejected_call_also_refuses_replacement(world: World) -> None:
    call = world.fresh_call("acme_a2_red")
    headers = world.token("admin")
    external_id = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()["external_id"]
    assert world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reject"},
                             headers=headers).status_code == 200
    refused = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                content=native_call(external_id, agent_id="a2"), headers=headers)
    assert refused.status_code == 409
    assert "rejected" in refused.json()["detail"]


# ------------------------------------------------------------- 11. metadata is correctable by replace


def test_replace_with_the_same_utterances_corrects_metadata_and_keeps_the_extraction(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    headers = world.token("admin")
    detail = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()
    external_id = detail["external_id"]
    items = claim_count(world, call.call_id)
    # The seeded call's own utterances, resubmitted as native JSON with a corrected agent id and team.
    document = {
        "external_id": external_id, "agent_id": "a2", "team": "red", "started_at": "2026-03-03T09:30:00Z",
        "utterances": [{"speaker": u["speaker"], "role": u["role"], "start": u["start"], "end": u["end"],
                        "text": u["text"]} for u in detail["utterances"]],
    }
    body = json.dumps(document).encode()
    without_replace = world.client.post("/api/calls", params={"external_id": external_id}, content=body,
                                        headers=headers)
    assert without_replace.status_code == 409
    assert "agent_id" in without_replace.json()["detail"]
    corrected = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                  content=body, headers=headers)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["status"] == "updated"
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None
        assert (stored.agent_id, stored.team) == ("a2", "red")
    assert claim_count(world, call.call_id) == items
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=headers).json()
    assert events[-1]["action"] == "metadata_corrected"
    assert events[-1]["actor"] == "admin"
    assert events[-1]["before"] == {"agent_id": "a1", "team": "blue"}
    assert events[-1]["after"] == {"agent_id": "a2", "team": "red"}


# --------------------------------------------------------- 5. parallel first submissions of one call


def test_parallel_first_submissions_of_one_external_id_all_get_an_answer(world: World) -> None:
    external_id = unique("race")
    body = native_call(external_id)

    def submit(_: int) -> int:
        response = world.client.post("/api/calls", params={"external_id": external_id}, content=body,
                                     headers=world.token("admin"))
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = sorted(pool.map(submit, range(12)))
    assert codes == [200] * 11 + [202], codes
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(Call).where(Call.external_id == external_id)) == 1
        call_id = session.scalar(select(Call.id).where(Call.external_id == external_id))
        assert session.scalar(select(func.count()).select_from(Utterance).where(Utterance.call_id == call_id)) == 2
