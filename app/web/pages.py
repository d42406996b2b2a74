"""The review pages: sign-in, the queue, the call page and the forms it posts.

Every form is a plain HTML form with the session's CSRF token and answers with a redirect back to the
page (post/redirect/get), so the pages work without JavaScript; call.js only adds keyboard shortcuts,
evidence highlighting and turning a transcript selection into a new item.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from app.db.session import retry_conflicts
from app.models import CallState
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
from app.users import Principal, TokenExpiredError, end_browser_sessions, load_principal, signed_in
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
    list_calls,
    next_to_review,
)
from app.web.schemas import SelectedQuoteIn
from app.web.view import build_call_page

CALL_DECISION_MESSAGES = {
    CallDecision.approve: "Call approved.",
    CallDecision.reject: "Call rejected.",
    CallDecision.reopen: "Call reopened for review.",
}

router = APIRouter(include_in_schema=False)

# The queue's state filter: the two review states by default, "all", or one state.
STATE_FILTER_TO_REVIEW = "to_review"
STATE_FILTER_ALL = "all"


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


def _parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    principal: PageUser,
    db: DbSession,
    state: str = STATE_FILTER_TO_REVIEW,
    agent: str = "",
    date_from: str = "",
    date_to: str = "",
    flagged: str = "",
    page: Annotated[int, Query(ge=1, le=MAX_OFFSET // DEFAULT_PAGE_SIZE)] = 1,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    if state == STATE_FILTER_ALL:
        states: tuple[CallState, ...] = ()
    elif state in CallState.__members__:
        states = (CallState(state),)
    else:
        state, states = STATE_FILTER_TO_REVIEW, TO_REVIEW_STATES
    filters = CallFilters(
        states=states,
        agent=agent.strip() or None,
        date_from=_parse_date(date_from),
        date_to=_parse_date(date_to),
        flagged={"yes": True, "no": False}.get(flagged),
        limit=DEFAULT_PAGE_SIZE,
        # The pager's links carry a cursor (keyset: any depth is fast); a typed ?page=N falls back to offset.
        offset=0 if cursor else (page - 1) * DEFAULT_PAGE_SIZE,
        cursor=PageCursor.decode(cursor) if cursor else None,
    )
    listing = list_calls(db, principal, filters)
    query = {"state": state, "agent": agent, "date_from": date_from, "date_to": date_to, "flagged": flagged}
    kept = {k: v for k, v in query.items() if v}
    return render(
        request,
        "queue.html",
        {
            "user": principal,
            "listing": listing,
            "filters": query,
            "states": [s.value for s in CallState],
            "to_review_count": sum(listing.counts[s.value] for s in TO_REVIEW_STATES),
            "page": page,
            "prev_url": f"/?{urlencode({**kept, 'page': page - 1, 'cursor': listing.prev_cursor})}"
            if page > 1 and listing.prev_cursor
            else None,
            "next_url": f"/?{urlencode({**kept, 'page': page + 1, 'cursor': listing.next_cursor})}"
            if listing.next_cursor
            else None,
        },
    )


@router.get("/mine", response_class=HTMLResponse)
def my_calls_page(request: Request, principal: PageUser, db: DbSession) -> Response:
    """An agent's own calls, newest first: open the call that just ended, check the note, approve."""
    listing = list_calls(db, principal, CallFilters(limit=DEFAULT_PAGE_SIZE, newest_first=True))
    return render(request, "mine.html", {"user": principal, "listing": listing})


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
    following = next_to_review(db, principal, call_id)
    return render(
        request,
        "call.html",
        {"user": principal, "page": page, "owners": [o.value for o in Owner], "call": page.call, "run": page.run,
         "next_url": f"/calls/{following}" if following else None,
         "unmasked": unmask},
    )


def _back_to(call_id: str, claim_id: int | None = None) -> str:
    return f"/calls/{call_id}" + (f"#claim-{claim_id}" if claim_id is not None else "")


def _decided(request: Request, db: Session, run: Callable[[], None], success: str) -> None:
    """Run a decision (again when PostgreSQL aborts it as a deadlock victim); a refused one (bad input,
    wrong state) becomes a message on the page, not an error page."""
    try:
        retry_conflicts(db, run)
    except (ReviewInputError, ReviewConflictError) as exc:
        flash(request, "error", str(exc))
    else:
        flash(request, "ok", success)


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
) -> Response:
    def run() -> None:
        changes = ClaimChanges(text=text, owner=owner, due=due) if action is ClaimAction.edit else None
        review_claim(db, principal, claim_id, action, changes)
        db.commit()

    _decided(request, db, run, f"Item {action.value}d." if action is not ClaimAction.edit else "Item edited.")
    return redirect(_back_to(call_id, claim_id))


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
        claim = add_reviewer_claim(db, principal, call_id, item)
        db.commit()
        added.append(claim.id)

    _decided(request, db, run, "Item added.")
    return redirect(_back_to(call_id, added[0] if added else None))


@router.post("/calls/{call_id}/decision", dependencies=[CsrfChecked])
def call_decision_form(
    call_id: str,
    request: Request,
    principal: PageUser,
    db: DbSession,
    decision: Annotated[CallDecision, Form()],
    then: Annotated[str, Form()] = "",
) -> Response:
    decided: list[bool] = []

    def run() -> None:
        decide_call(db, principal, call_id, decision)
        db.commit()
        decided.append(True)

    _decided(request, db, run, CALL_DECISION_MESSAGES[decision])
    if decided and then == "next":
        # "Approve and next": straight to the next call to review, or back to the queue when none is left.
        following = next_to_review(db, principal, call_id)
        return redirect(_back_to(following) if following else "/")
    return redirect(_back_to(call_id))


@router.post("/calls/{call_id}/note", dependencies=[CsrfChecked])
def call_note_form(
    call_id: str, request: Request, principal: PageUser, db: DbSession, note: Annotated[str, Form()] = ""
) -> Response:
    def run() -> None:
        edit_case_note(db, principal, call_id, note)
        db.commit()

    _decided(request, db, run, "Case note saved.")
    return redirect(_back_to(call_id) + "#note")


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
        message += f" {len(result.refused)} left for review (not every item verified, or already decided)."
    flash(request, "ok" if result.approved else "error", message)
    return redirect("/")


@router.post("/calls/{call_id}/delete", dependencies=[CsrfChecked])
def call_delete_form(call_id: str, request: Request, principal: PageUser, db: DbSession) -> Response:
    def delete() -> None:
        delete_call(db, principal, call_id)
        db.commit()

    retry_conflicts(db, delete)
    flash(request, "ok", f"Call {call_id} deleted; its audit trail is kept.")
    return redirect("/")


def error_page(request: Request, status_code: int, title: str, message: str, principal: Principal | None) -> Response:
    return render(
        request, "error.html", {"title": title, "message": message, "user": principal}, status_code=status_code,
        writes_session=False,
    )

