"""The review pages: sign-in, the queue, the call page and the forms it posts.

Every form is a plain HTML form with the session's CSRF token and answers with a redirect back to the
page (post/redirect/get), so the pages work without JavaScript; call.js only adds keyboard shortcuts,
evidence highlighting and turning a transcript selection into a new item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.session import retry_conflicts
from app.models import Call, CallState, ReviewStatus, UserRole
from app.review import (
    BulkApproval,
    CallDecision,
    ClaimAction,
    ClaimChanges,
    NewItem,
    ReviewConflictError,
    ReviewInputError,
    SelectedQuote,
    add_reviewer_claim,
    approve_verified_calls,
    decide_call,
    delete_call,
    edit_case_note,
    record_unmasking,
    review_claim,
    visible_call,
)
from app.schemas.extraction import Owner
from app.schemas.grounding import ClaimKind
from app.users import (
    Principal,
    TokenExpiredError,
    end_browser_sessions,
    load_principal,
    signed_in,
    visible_calls_clause,
)
from app.web.deps import (
    SESSION_CSRF_KEY,
    SESSION_FINGERPRINT_KEY,
    SESSION_USER_KEY,
    CsrfChecked,
    DbSession,
    PageUser,
    csrf_token,
    flash,
    pop_flash,
    web_state,
)
from app.web.queue import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR_CHARS,
    MAX_OFFSET,
    MAX_RECORD_ID,
    TO_REVIEW_STATES,
    CallFilters,
    PageCursor,
    list_queue,
    next_of_my_calls,
    next_to_review,
    queue_position,
)
from app.web.schemas import SelectedQuoteIn
from app.web.view import build_call_page

CALL_DECISION_MESSAGES = {
    CallDecision.approve: "Call approved.",
    CallDecision.reject: "Call rejected.",
    CallDecision.reopen: "Call reopened for review.",
}
CLAIM_ACTION_MESSAGES = {
    ClaimAction.approve: "Item approved.",
    ClaimAction.reject: "Item rejected.",
    ClaimAction.edit: "Item edited.",
}

router = APIRouter(include_in_schema=False)

# The queue's state filter: the two review states by default, "all", or one state.
STATE_FILTER_TO_REVIEW = "to_review"
STATE_FILTER_ALL = "all"
# The flagged filter's spellings: the form's yes / no, and the API's true / false.
FLAGGED_VALUES = {"yes": True, "true": True, "no": False, "false": False}
# The queue's filters, carried from the queue to a call page and through its forms, so "approve and next",
# `]` and the way back stay in the queue the reviewer chose; the pager's parameters are the queue page's.
FILTER_PARAMS = ("state", "agent", "date_from", "date_to", "flagged")
# Where a call page was opened from, carried in its URL and every form's action as the queue's filters are:
# `?from=mine` for /mine, so "approve and next", `]` and the way back follow /mine's rows, not the queue. It
# only says which list to follow: whatever it says, every call offered is one the user can see.
FROM_PARAM = "from"
FROM_MY_CALLS = "mine"
MY_CALLS_QUERY = f"?{urlencode({FROM_PARAM: FROM_MY_CALLS})}"
# Said after "approve and next" from /mine finds no other call to review: /mine lists decided calls too, so
# the list alone does not show that nothing is left.
MY_CALLS_DONE = "Nothing else to review in this list."
# A value quoted back in a message about it is cut to this many characters (a URL can hold kilobytes).
QUOTED_VALUE_CHARS = 60


def _quoted(value: str) -> str:
    return f"“{value[:QUOTED_VALUE_CHARS]}{'…' if len(value) > QUOTED_VALUE_CHARS else ''}”"


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200, *, writes_session: bool = True
) -> HTMLResponse:
    """Render a page. Error pages pass `writes_session=False`: a request that arrived without the session
    cookie (a cross-site form post) must not answer with a new session that replaces the signed-in one."""
    state = web_state(request)
    if writes_session:
        token, message = csrf_token(request), pop_flash(request)
    else:
        existing = request.session.get(SESSION_CSRF_KEY)
        token, message = (existing if isinstance(existing, str) else ""), None
    base = {"csrf_token": token, "flash": message, "insecure_secret": state.insecure_secret}
    return state.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def _safe_next(path: str | None) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would make sign-in an open redirect.
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


# ----------------------------------------------------------------------------------------- sign-in


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None, "user": None})


@router.post("/login", response_class=HTMLResponse, dependencies=[CsrfChecked])
def login(
    request: Request, db: DbSession, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    try:
        result = signed_in(db, token.strip())
    except TokenExpiredError as expired:
        # Only the token's holder can present it: telling them it expired (and how to get a new one) leaks nothing.
        message = str(expired)
        context = {"next": _safe_next(next), "error": message[:1].upper() + message[1:] + ".", "user": None}
        return render(request, "login.html", context, status_code=status.HTTP_401_UNAUTHORIZED)
    if result is None:
        context = {"next": _safe_next(next), "error": "That token is not valid.", "user": None}
        return render(request, "login.html", context, status_code=status.HTTP_401_UNAUTHORIZED)
    principal, fingerprint = result
    # A fresh session (and CSRF token) at sign-in, so nothing planted before it survives (session fixation).
    request.session.clear()
    request.session[SESSION_USER_KEY] = principal.user_id
    request.session[SESSION_FINGERPRINT_KEY] = fingerprint
    csrf_token(request)
    return redirect(_safe_next(next))


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, db: DbSession) -> Response:
    user_id = request.session.get(SESSION_USER_KEY)
    fingerprint = request.session.get(SESSION_FINGERPRINT_KEY)
    # Ended server-side too: a copy of the cookie saved before signing out no longer works.
    if isinstance(user_id, int) and isinstance(fingerprint, str) and load_principal(db, user_id, fingerprint):
        end_browser_sessions(db, user_id)
        db.commit()
    request.session.clear()
    return redirect("/login")


# ------------------------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueQuery:
    """The queue's filters read from a URL: what they select, the values kept for links (valid ones only)
    and a message per value that was not understood (shown, never silently dropped)."""

    filters: CallFilters
    state: str
    kept: dict[str, str]
    problems: list[str]

    @property
    def query_string(self) -> str:
        """"?state=...&agent=..." for links and form actions that stay in this queue; "" for the default."""
        return f"?{urlencode(self.kept)}" if self.kept else ""


def read_queue_query(params: Mapping[str, str]) -> QueueQuery:
    """The queue filters among `params` (a query string). A value that cannot be read is left out of the
    filters and reported: `?state=bogus` must not look like a queue that has no such calls, nor like one
    that was filtered."""
    problems: list[str] = []
    state = (params.get("state") or STATE_FILTER_TO_REVIEW).strip()
    if state == STATE_FILTER_ALL:
        states: tuple[CallState, ...] = ()
    elif state in CallState.__members__:
        states = (CallState(state),)
    else:
        if state != STATE_FILTER_TO_REVIEW:
            problems.append(f"Unknown state {_quoted(state)}: showing the calls to review. States: "
                            f"{', '.join(s.value for s in CallState)}, to_review or all.")
        state, states = STATE_FILTER_TO_REVIEW, TO_REVIEW_STATES
    agent = (params.get("agent") or "").strip()
    days: dict[str, date | None] = {}
    kept: dict[str, str] = {"state": state} if state != STATE_FILTER_TO_REVIEW else {}
    if agent:
        kept["agent"] = agent
    for name in ("date_from", "date_to"):
        raw = (params.get(name) or "").strip()
        days[name] = None
        if raw:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                label = "From" if name == "date_from" else "To"
                problems.append(f"{label} date {_quoted(raw)} is not a date (YYYY-MM-DD): not applied.")
            else:
                days[name], kept[name] = day, day.isoformat()
    raw_flagged = (params.get("flagged") or "").strip()
    flagged = FLAGGED_VALUES.get(raw_flagged.lower())
    if raw_flagged and flagged is None:
        problems.append(f"Flagged {_quoted(raw_flagged)} is not one of yes, no (or true, false): not applied.")
    if flagged is not None:
        kept["flagged"] = "yes" if flagged else "no"
    if days["date_from"] and days["date_to"] and days["date_from"] > days["date_to"]:
        problems.append("The From date is after the To date: no call can match.")
    filters = CallFilters(states=states, agent=agent or None, date_from=days["date_from"],
                          date_to=days["date_to"], flagged=flagged)
    return QueueQuery(filters, state, kept, problems)


def _queue_query(request: Request) -> QueueQuery:
    return read_queue_query(request.query_params)


@dataclass(frozen=True)
class OpenedFrom:
    """The list a call page was opened from: /mine, or the queue as `queue` filters it (its filters are
    ignored for /mine, which has none)."""

    queue: QueueQuery
    my_calls: bool

    @property
    def query_string(self) -> str:
        """What links and form actions of the call page carry to stay in this list."""
        return MY_CALLS_QUERY if self.my_calls else self.queue.query_string

    @property
    def list_url(self) -> str:
        return "/mine" if self.my_calls else f"/{self.queue.query_string}"

    @property
    def to_review_states(self) -> tuple[CallState, ...]:
        """The states of a call this list's "next" may offer."""
        return TO_REVIEW_STATES if self.my_calls else tuple(self.queue.filters.states or TO_REVIEW_STATES)


def _opened_from(request: Request) -> OpenedFrom:
    return OpenedFrom(_queue_query(request), my_calls=request.query_params.get(FROM_PARAM) == FROM_MY_CALLS)


def _next_call(
    db: Session, principal: Principal, call_id: str, opened_from: OpenedFrom, position: PageCursor | None
) -> str | None:
    """The call after `call_id` in the list its page was opened from. `position`: where the call stood in the
    review order (read before a decision moves it out of the queue; /mine's order does not change with one)."""
    if opened_from.my_calls:
        return next_of_my_calls(db, principal, call_id)
    return next_to_review(db, principal, position, opened_from.queue.filters) if position else None


def _page_links(path: str, kept: Mapping[str, str], page: int, last_page: int) -> dict[str, Any]:
    """Previous / next / last-page links of an offset pager over `last_page` pages."""
    def at(number: int) -> str:
        return f"{path}?{urlencode({**kept, 'page': number})}"

    return {
        "page": page,
        "last_page": last_page,
        "prev_url": at(page - 1) if 1 < page <= last_page else None,
        "next_url": at(page + 1) if page < last_page else None,
        "last_url": at(last_page) if page > last_page >= 1 else None,
    }


def _last_page(total: int) -> int:
    return max(1, math.ceil(total / DEFAULT_PAGE_SIZE))


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    principal: PageUser,
    db: DbSession,
    page: Annotated[int, Query(ge=1, le=MAX_OFFSET // DEFAULT_PAGE_SIZE)] = 1,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    wanted = _queue_query(request)
    filters = replace(
        wanted.filters,
        limit=DEFAULT_PAGE_SIZE,
        # The pager's links carry a cursor (keyset: any depth is fast); a typed ?page=N falls back to offset.
        offset=0 if cursor else (page - 1) * DEFAULT_PAGE_SIZE,
        cursor=PageCursor.decode(cursor) if cursor else None,
    )
    queued = list_queue(db, principal, filters)
    listing = queued.listing
    kept = wanted.kept
    last_page = _last_page(listing.total)
    # Past the end (a typed ?page=99, or calls decided since): say so and offer the last page.
    past_end = not listing.calls and listing.total > 0 and not cursor
    # The queue page itself, for a bulk approval to come back to (filters and position kept).
    here = {**kept, **({"page": str(page)} if page > 1 else {}), **({"cursor": cursor} if cursor else {})}
    return render(
        request,
        "queue.html",
        {
            "user": principal,
            "listing": listing,
            "unverified_previews": queued.unverified_previews,
            "filters": {"state": wanted.state, **{name: kept.get(name, "") for name in FILTER_PARAMS[1:]}},
            "filter_problems": wanted.problems,
            "call_query": wanted.query_string,
            "bulk_action": f"/calls/approve?{urlencode(here)}" if here else "/calls/approve",
            "states": [s.value for s in CallState],
            "to_review_count": sum(listing.counts[s.value] for s in TO_REVIEW_STATES),
            "page": page,
            "last_page": last_page,
            "last_url": f"/?{urlencode({**kept, 'page': last_page})}" if past_end else None,
            "prev_url": f"/?{urlencode({**kept, 'page': page - 1, 'cursor': listing.prev_cursor})}"
            if page > 1 and listing.prev_cursor
            else None,
            "next_url": f"/?{urlencode({**kept, 'page': page + 1, 'cursor': listing.next_cursor})}"
            if listing.next_cursor
            else None,
        },
    )


@router.get("/mine", response_class=HTMLResponse)
def my_calls_page(
    request: Request,
    principal: PageUser,
    db: DbSession,
    page: Annotated[int, Query(ge=1, le=MAX_OFFSET // DEFAULT_PAGE_SIZE)] = 1,
) -> Response:
    """An agent's own calls, the latest start first: open the call that just ended, check the note, approve."""
    filters = CallFilters(limit=DEFAULT_PAGE_SIZE, offset=(page - 1) * DEFAULT_PAGE_SIZE, newest_first=True)
    queued = list_queue(db, principal, filters)
    return render(request, "mine.html", {
        "user": principal,
        "listing": queued.listing,
        "unverified_previews": queued.unverified_previews,
        # A call opened from here goes on to the next row of this list, not of the queue.
        "call_query": MY_CALLS_QUERY,
        **_page_links("/mine", {}, page, _last_page(queued.listing.total)),
    })


# -------------------------------------------------------------------------------------------- call


@router.get("/calls/{call_id}", response_class=HTMLResponse)
def call_page(call_id: str, request: Request, principal: PageUser, db: DbSession) -> Response:
    """The call, card numbers, SSNs and accounts masked (`POST /calls/{id}/unmask` shows them)."""
    return _call_page(call_id, request, principal, db, unmask=False)


@router.post("/calls/{call_id}/unmask", response_class=HTMLResponse, dependencies=[CsrfChecked])
def unmasked_call_page(call_id: str, request: Request, principal: PageUser, db: DbSession) -> Response:
    """The call unmasked, for a view_pii user, audited. A form post with the session's CSRF token: as a
    link (a GET), any site could have a signed-in user's browser open it and write the audit event."""
    record_unmasking(db, principal, visible_call(db, principal, call_id), "page")
    db.commit()
    return _call_page(call_id, request, principal, db, unmask=True)


def _call_page(call_id: str, request: Request, principal: PageUser, db: DbSession, *, unmask: bool) -> Response:
    page = build_call_page(db, principal, call_id, unmask=unmask)
    opened_from = _opened_from(request)
    position = None if opened_from.my_calls else queue_position(db, principal, call_id)
    following = _next_call(db, principal, call_id, opened_from, position)
    return render(
        request,
        "call.html",
        {"user": principal, "page": page, "owners": [o.value for o in Owner], "call": page.call, "run": page.run,
         "next_url": f"/calls/{following}{opened_from.query_string}" if following else None,
         "next_call_id": following or "",
         # The list the call was opened from (the queue and its filters, or /mine): every form and link of the
         # page stays in it.
         "call_query": opened_from.query_string,
         "queue_url": opened_from.list_url,
         "list_name": ("the queue" if not opened_from.my_calls
                       else "your calls" if principal.role is UserRole.agent else "the recent calls"),
         "unmasked": unmask},
    )


def _back_to(call_id: str, request: Request, claim_id: int | None = None) -> str:
    """The call page after a form post, in the list it was opened from (the post carries it)."""
    return (f"/calls/{call_id}{_opened_from(request).query_string}"
            + (f"#claim-{claim_id}" if claim_id is not None else ""))


def _decided(request: Request, db: Session, run: Callable[[], None], success: str | Callable[[], str], *,
             typed: str | None = None) -> None:
    """Run a decision (again when PostgreSQL aborts it as a deadlock victim); a refused one (bad input,
    wrong state) becomes a message on the page, not an error page. `success`: the message, or what says it
    once the decision ran. `typed`: what the reviewer wrote (a note, an edit), quoted back when the decision
    is refused: the page comes back without the form, and the words were lost."""
    try:
        retry_conflicts(db, run)
    except (ReviewInputError, ReviewConflictError) as exc:
        cut = typed[:TYPED_BACK_CHARS] + ("…" if typed and len(typed) > TYPED_BACK_CHARS else "") if typed else ""
        kept = f" Your text, not saved: “{cut}”" if cut.strip() else ""
        flash(request, "error", f"{exc}{kept}")
    else:
        flash(request, "ok", success if isinstance(success, str) else success())


@router.post("/calls/{call_id}/claims/{claim_id}/review", dependencies=[CsrfChecked])
def claim_review_form(
    call_id: str,
    claim_id: Annotated[int, Path(ge=1, le=MAX_RECORD_ID)],
    request: Request,
    principal: PageUser,
    db: DbSession,
    action: Annotated[ClaimAction, Form()],
    text: Annotated[str | None, Form()] = None,
    owner: Annotated[str | None, Form()] = None,
    due: Annotated[str | None, Form()] = None,
    expected_status: Annotated[ReviewStatus | None, Form()] = None,
) -> Response:
    def run() -> None:
        changes = ClaimChanges(text=text, owner=owner, due=due) if action is ClaimAction.edit else None
        # The status the page showed: a colleague's decision since then is reported, not overwritten.
        review_claim(db, principal, claim_id, action, changes, expected=expected_status)
        db.commit()

    _decided(request, db, run, CLAIM_ACTION_MESSAGES[action], typed=text if action is ClaimAction.edit else None)
    return redirect(_back_to(call_id, request, claim_id))


# The form's selection read as the JSON API reads its evidence (pydantic's parser: a nesting too deep for
# Python's own `json` is an error it reports, not a RecursionError).
_SELECTION = TypeAdapter(list[SelectedQuoteIn])


def _selection(raw: str) -> list[SelectedQuote]:
    try:
        pieces = _SELECTION.validate_json(raw or "[]")
    except ValidationError as exc:
        raise ReviewInputError("the transcript selection could not be read; select the text again") from exc
    return [SelectedQuote(piece.utterance, piece.quote) for piece in pieces]


@router.post("/calls/{call_id}/claims", dependencies=[CsrfChecked])
def claim_add_form(
    call_id: str,
    request: Request,
    principal: PageUser,
    db: DbSession,
    text: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = ClaimKind.action_item.value,
    owner: Annotated[str | None, Form()] = None,
    due: Annotated[str | None, Form()] = None,
    selection: Annotated[str, Form()] = "[]",
) -> Response:
    added: list[int] = []

    def run() -> None:
        try:
            claim_kind = ClaimKind(kind)
        except ValueError:
            raise ReviewInputError(f"unknown item kind {kind!r}") from None
        item = NewItem(kind=claim_kind, text=text, owner=owner, due=due, selection=_selection(selection))
        result = add_reviewer_claim(db, principal, call_id, item)
        db.commit()
        added.append(result.claim.id)
        repeated.append(result.repeated)

    repeated: list[bool] = []
    _decided(request, db, run, lambda: "This item was added already." if any(repeated) else "Item added.")
    return redirect(_back_to(call_id, request, added[0] if added else None))


@router.post("/calls/{call_id}/decision", dependencies=[CsrfChecked])
def call_decision_form(
    call_id: str,
    request: Request,
    principal: PageUser,
    db: DbSession,
    decision: Annotated[CallDecision, Form()],
    then: Annotated[str, Form()] = "",
    next_call: Annotated[str, Form()] = "",
) -> Response:
    decided: list[bool] = []
    opened_from = _opened_from(request)
    # Where the call stood in the queue before the decision moves it out: the next call follows it.
    position = None if opened_from.my_calls else queue_position(db, principal, call_id)
    state_before = db.scalar(select(Call.state).where(Call.id == call_id))
    db.rollback()  # the decision starts its own transaction

    def run() -> None:
        decided_call = decide_call(db, principal, call_id, decision)
        db.commit()
        decided.append(decided_call.state is not state_before)

    def message() -> str:
        if decided and not decided[0] and decision is not CallDecision.reopen:
            # A colleague made the same decision first: nothing was done here, and the reviewer should know.
            return f"This call was {(state_before.value if state_before else 'decided')} already: nothing changed."
        return CALL_DECISION_MESSAGES[decision]

    _decided(request, db, run, message)
    if decided and then == "next":
        # "Approve and next": straight to the next call of the list the page was opened from, the queue or /mine
        # (the one the page offered, while it is still to review: a call decided meanwhile has no place in the
        # list to follow), or back to that list.
        following = (_still_to_review(db, principal, next_call, opened_from)
                     or _next_call(db, principal, call_id, opened_from, position))
        if following:
            return redirect(_back_to(following, request))
        if opened_from.my_calls:
            flash(request, "ok", f"{message()} {MY_CALLS_DONE}")
        return redirect(opened_from.list_url)
    return redirect(_back_to(call_id, request))


def _still_to_review(db: Session, principal: Principal, call_id: str, opened_from: OpenedFrom) -> str | None:
    """`call_id` when it is a call of the list `opened_from` (visible, undecided), else None."""
    if not call_id:
        return None
    state = db.scalar(select(Call.state).where(visible_calls_clause(principal), Call.id == call_id))
    return call_id if state in opened_from.to_review_states else None


@router.post("/calls/{call_id}/note", dependencies=[CsrfChecked])
def call_note_form(
    call_id: str, request: Request, principal: PageUser, db: DbSession, note: Annotated[str, Form()] = ""
) -> Response:
    def run() -> None:
        edit_case_note(db, principal, call_id, note)
        db.commit()

    _decided(request, db, run, "Case note saved.", typed=note)
    return redirect(_back_to(call_id, request) + "#note")


@router.post("/calls/approve", dependencies=[CsrfChecked])
def bulk_approve_form(
    request: Request, principal: PageUser, db: DbSession, call_id: Annotated[list[str] | None, Form()] = None
) -> Response:
    """Supervisors: approve the selected calls whose items are all verified, one audited decision each."""

    def approve() -> BulkApproval:
        approved = approve_verified_calls(db, principal, call_id or [])
        db.commit()
        return approved

    result = retry_conflicts(db, approve)
    message = f"{len(result.approved)} call{'' if len(result.approved) == 1 else 's'} approved."
    if result.refused:
        message += " Not approved: " + _refusals(db, result.refused) + "."
    flash(request, "ok" if result.approved else "error", message)
    # Back to the queue page the selection was made on: its filters and position (each re-read, never echoed).
    queue = _queue_query(request)
    page, cursor = request.query_params.get("page", ""), request.query_params.get("cursor", "")
    back = {
        **queue.kept,
        **({"page": page} if page.isdigit() and page != "1" else {}),
        **({"cursor": cursor} if cursor and len(cursor) <= MAX_CURSOR_CHARS else {}),
    }
    return redirect(f"/?{urlencode(back)}" if back else "/")


# At most this many characters of a refused note or edit are quoted back to its writer: the message rides in
# the signed session cookie, which a browser drops past 4 kB (signing the user out).
TYPED_BACK_CHARS = 400
# At most this many refused calls are named in a bulk approval's message; the rest are counted.
REFUSALS_NAMED = 10


def _refusals(db: Session, refused: Mapping[str, str]) -> str:
    """The calls a bulk approval left alone, by the id reviewers know (their external id), each with why:
    "probe-003 (approved already)", not "2 left for review" for calls a colleague had decided meanwhile."""
    external = {row.id: row.external_id
                for row in db.execute(select(Call.id, Call.external_id).where(Call.id.in_(list(refused))))}
    named = []
    for call_id, why in list(refused.items())[:REFUSALS_NAMED]:
        state = why.split(":", 1)[0]
        reason = (f"{state.replace('_', ' ')} already" if state in ("approved", "rejected")
                  else "needs attention" if state == CallState.needs_attention.value
                  else why if why in ("not found", "unverified items pending") else state.replace("_", " "))
        named.append(f"{external.get(call_id, call_id)} ({reason})")
    more = len(refused) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


@router.post("/calls/{call_id}/delete", dependencies=[CsrfChecked])
def call_delete_form(call_id: str, request: Request, principal: PageUser, db: DbSession) -> Response:
    def delete() -> None:
        delete_call(db, principal, call_id)
        db.commit()

    retry_conflicts(db, delete)
    flash(request, "ok", f"Call {call_id} deleted; its audit trail is kept.")
    return redirect(_opened_from(request).list_url)


def error_page(request: Request, status_code: int, title: str, message: str, principal: Principal | None) -> Response:
    return render(
        request, "error.html", {"title": title, "message": message, "user": principal}, status_code=status_code,
        writes_session=False,
    )

