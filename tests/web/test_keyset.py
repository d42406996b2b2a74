"""Keyset pagination of GET /api/calls and the queue page: ties, both ends, both directions, calls
changing state between pages, and cursors that were not handed out."""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.db.session import unit_of_work
from app.models import Call, CallState, UserRole
from app.pipeline.calls import get_or_create_tenant, set_state
from tests.web.conftest import CSRF_FIELD, World
from tests.web.world import seed_user

MOMENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# (state, minutes after MOMENT): several calls share a waiting-since moment (ties broken by id).
LAYOUT = [
    (CallState.ready_for_review, 0), (CallState.ready_for_review, 0), (CallState.needs_attention, 5),
    (CallState.approved, 1), (CallState.approved, 1), (CallState.approved, 1), (CallState.failed, 0),
    (CallState.needs_attention, 5), (CallState.ready_for_review, 3), (CallState.queued, 2),
    (CallState.rejected, 1),
]
RANK = {CallState.needs_attention: 0, CallState.ready_for_review: 1}  # written out: the documented order


def _tenant(world: World, copies: int = 1) -> tuple[dict[str, str], dict[str, tuple[CallState, datetime]]]:
    """A tenant of its own (nothing else lists there) with LAYOUT's calls (`copies` times), and its admin's
    headers."""
    slug = f"keyset-{uuid.uuid4().hex[:8]}"
    token = seed_user(world.factory, tenant=slug, name="admin", role=UserRole.admin)
    calls = {}
    with unit_of_work(world.factory) as session:
        tenant = get_or_create_tenant(session, slug)
        for n, (state, minutes) in enumerate(LAYOUT * copies):
            call = Call(tenant_id=tenant.id, external_id=f"k{n}", source_format="native", transcript_hash="h",
                        state=state, state_changed_at=MOMENT + timedelta(minutes=minutes))
            session.add(call)
            session.flush()
            calls[call.id] = (state, call.state_changed_at)
    return {"Authorization": f"Bearer {token}"}, calls


def _expected_order(calls: dict[str, tuple[CallState, datetime]], states: set[CallState] | None = None) -> list[str]:
    chosen = [(RANK.get(state, 2), moment, call_id) for call_id, (state, moment) in calls.items()
              if states is None or state in states]
    return [call_id for *_, call_id in sorted(chosen)]


def _flat(pages: list[list[str]]) -> list[str]:
    return [call_id for page in pages for call_id in page]


def _get(world: World, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = world.client.get("/api/calls", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _walk(world: World, headers: dict[str, str], **params: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = _get(world, headers, limit=3, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([c["call_id"] for c in page["calls"]])
        assert (page["prev_cursor"] is None) == (len(pages) == 1)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_cursor_pages_follow_the_review_order_with_ties_to_the_last_page(world: World) -> None:
    headers, calls = _tenant(world)
    pages = _walk(world, headers)
    assert [len(p) for p in pages] == [3, 3, 3, 2]  # the last page is short and has no next cursor
    assert _flat(pages) == _expected_order(calls)
    listing = _get(world, headers, limit=200)
    assert [c["call_id"] for c in listing["calls"]] == _expected_order(calls)
    assert listing["next_cursor"] is None and listing["prev_cursor"] is None
    assert listing["total"] == len(LAYOUT)


def test_a_page_as_long_as_the_rest_ends_the_walk(world: World) -> None:
    headers, calls = _tenant(world)
    first = _get(world, headers, limit=len(LAYOUT) - 1)
    last = _get(world, headers, limit=1, cursor=first["next_cursor"])
    assert [c["call_id"] for c in last["calls"]] == _expected_order(calls)[-1:]
    assert last["next_cursor"] is None


def test_prev_cursors_walk_back_to_the_first_page(world: World) -> None:
    headers, calls = _tenant(world)
    forward = _walk(world, headers)
    page = _get(world, headers, limit=3, offset=9)  # an offset page hands out cursors too
    assert [c["call_id"] for c in page["calls"]] == forward[-1]
    backward = [[c["call_id"] for c in page["calls"]]]
    while page["prev_cursor"] is not None:
        page = _get(world, headers, limit=3, cursor=page["prev_cursor"])
        backward.insert(0, [c["call_id"] for c in page["calls"]])
        assert page["next_cursor"] is not None
    assert _flat(backward) == _expected_order(calls)
    assert backward[0] == forward[0]


def test_state_filters_walk_their_own_order(world: World) -> None:
    headers, calls = _tenant(world)
    for states in ({CallState.approved}, {CallState.needs_attention, CallState.ready_for_review},
                   {CallState.approved, CallState.failed, CallState.needs_attention}):
        pages = _walk(world, headers, state=sorted(s.value for s in states))
        assert _flat(pages) == _expected_order(calls, states), states


def test_a_call_changing_state_between_pages_skips_or_repeats_no_other_call(world: World) -> None:
    headers, calls = _tenant(world)
    order = _expected_order(calls)
    first = _get(world, headers, limit=3)
    seen = [c["call_id"] for c in first["calls"]]
    assert seen == order[:3]
    # Between two pages: an unseen call is decided (it moves further down), a seen one needs attention
    # again (it moves up, before the cursor), and an unseen one is queued again.
    moved_down, moved_up, requeued = order[4], order[0], order[6]
    with unit_of_work(world.factory) as session:
        for call_id, state in ((moved_down, CallState.approved), (moved_up, CallState.needs_attention),
                               (requeued, CallState.queued)):
            call = session.scalar(select(Call).where(Call.id == call_id))
            assert call is not None
            set_state(call, state)
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor is not None:
        page = _get(world, headers, limit=3, cursor=cursor)
        rest += [c["call_id"] for c in page["calls"]]
        cursor = page["next_cursor"]
    unchanged = [c for c in order if c not in {moved_down, moved_up, requeued}]
    walked = seen + rest
    # Every call that kept its place is listed exactly once, in order; the moved ones at most once more.
    assert [c for c in walked if c in unchanged] == unchanged
    assert moved_up not in rest
    assert rest.count(moved_down) == 1 and rest.count(requeued) == 1


def test_cursors_not_handed_out_are_422(world: World) -> None:
    headers, _ = _tenant(world)
    good = _get(world, headers, limit=2)["next_cursor"]
    for bad in ("not-a-cursor", "e30", good[:-3], "W10", "x" * 300):
        answer = world.client.get("/api/calls", params={"cursor": bad}, headers=headers)
        assert answer.status_code == 422, (bad, answer.text)
    both = world.client.get("/api/calls", params={"cursor": good, "offset": 2}, headers=headers)
    assert both.status_code == 422
    assert "cursor or offset" in both.text


def _crafted(key: Any) -> str:
    """A cursor encoded the way the API encodes its own, around any key."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


GOOD_MOMENT = "2026-01-01T00:00:00+00:00"
# Well-formed cursors whose values do not fit their columns: each was a 500 (SQLite OverflowError,
# PostgreSQL "smallint out of range", NUL or lone-surrogate strings, a datetime overflowing at UTC).
UNFIT_KEYS = [
    ["a", 10**30, GOOD_MOMENT, "x"],
    ["a", 2**63, GOOD_MOMENT, "x"],
    ["a", 40_000, GOOD_MOMENT, "x"],
    ["a", True, GOOD_MOMENT, "x"],
    ["a", 1, GOOD_MOMENT, "x\x00y"],
    ["a", 1, GOOD_MOMENT, "\ud800"],
    ["a", 1, GOOD_MOMENT, "x" * 33],
    ["a", 1, "9999-12-31T23:59:59-23:59", "x"],
    ["a", 1, "0001-01-01T00:00:00+23:59", "x"],
    ["a", 1, "2026-01-01T00:00:00", "x"],
]


def test_cursors_with_values_that_fit_no_column_are_422(world: World) -> None:
    for key in UNFIT_KEYS:
        answer = world.client.get("/api/calls", params={"cursor": _crafted(key)}, headers=world.token("admin"))
        assert answer.status_code == 422, (key, answer.text)
    fitting = world.client.get("/api/calls", params={"cursor": _crafted(["a", 1, GOOD_MOMENT, "x"])},
                               headers=world.token("admin"))
    assert fitting.status_code == 200, fitting.text


_offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
_moments = st.one_of(
    st.datetimes(timezones=st.builds(timezone, _offsets)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.text(max_size=30),
    st.integers(),
)
_keys = st.one_of(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3)),
        _moments,
        st.one_of(st.text(max_size=40), st.integers()),
    ).map(list),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=5), max_leaves=8),
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=_keys)
def test_any_crafted_cursor_is_200_or_422_never_a_server_error(world: World, key: Any) -> None:
    answer = world.client.get("/api/calls", params={"cursor": _crafted(key)}, headers=world.token("admin"))
    assert answer.status_code in (200, 422), (key, answer.text)


def test_queue_page_links_carry_cursors(world: World) -> None:
    headers, calls = _tenant(world, copies=5)  # 55 calls: two pages of the queue
    order = _expected_order(calls)
    token = headers["Authorization"].removeprefix("Bearer ")
    browser = world.client
    match = CSRF_FIELD.search(browser.get("/login").text)
    assert match is not None
    browser.post("/login", data={"token": token, "csrf_token": match.group(1)})
    try:
        first = browser.get("/", params={"state": "all"})
        assert first.status_code == 200
        assert [c for c in order if c in first.text] == order[:50]
        assert "previous</a>" not in first.text
        next_link = re.search(r'<a href="([^"]+)">next', first.text)
        assert next_link is not None and "cursor=" in next_link.group(1)
        second = browser.get(html.unescape(next_link.group(1)))
        assert second.status_code == 200 and "page 2" in second.text
        assert [c for c in order if c in second.text] == order[50:]
        assert ">next" not in second.text
        prev_link = re.search(r'<a href="([^"]+)">← previous', second.text)
        assert prev_link is not None
        back = browser.get(html.unescape(prev_link.group(1)))
        assert [c for c in order if c in back.text] == order[:50]
        # A typed page number still works (by offset).
        typed = browser.get("/", params={"state": "all", "page": 2})
        assert [c for c in order if c in typed.text] == order[50:]
        assert browser.get("/", params={"state": "all", "cursor": "garbage"}).status_code == 422
    finally:
        browser.cookies.clear()
