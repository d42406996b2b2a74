"""The JSON API under /api. Bearer-token auth on every route; the OpenAPI spec is at /openapi.json.

Status codes follow one rule: a record the caller cannot see is 404 (another tenant's call, or a
colleague's call for an agent), never 403, so existence does not leak; 403 is for a visible record and an
action the caller's role does not allow; 409 for a decision the record's state does not allow; 422 for
invalid input, naming the problem.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BeforeValidator
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.db.session import retry_conflicts
from app.errors import ConfigError, DuplicateCallError, InvalidInputError, PostcallError
from app.ingest.source import declared_charset
from app.models import Call, CallState, Claim, LlmMode, ReviewEvent, User, UserRole
from app.models import Utterance as UtteranceRow
from app.pipeline.llm_mode import resolve_llm_mode
from app.pipeline.queries import call_detail, claim_out, stored_masks
from app.pipeline.store import Actor, StoreStatus, clean_external_id, store_transcript
from app.privacy.mask import CallMasks
from app.privacy.reads import mask_lone_claim, mask_snapshot
from app.review import (
    AddedItem,
    CallDecision,
    ClaimChanges,
    NewItem,
    ReviewInputError,
    SelectedQuote,
    add_reviewer_claim,
    call_events,
    decide_call,
    delete_call,
    record_unmasking,
    review_claim,
    visible_call,
)
from app.schemas.api import CallDetailOut, ClaimOut
from app.text.storable import is_blank
from app.users import (
    KEEP,
    AccessDeniedError,
    IssuedToken,
    Principal,
    change_user,
    create_user,
    deactivate_user_by_id,
    list_users,
    reactivate_user,
    require_tenant_user,
    rotate_token_by_id,
    user_history,
    visible_calls_clause,
)
from app.web.deps import (
    ApiUser,
    BearerCredentials,
    DbSession,
    UnsupportedBodyError,
    WebState,
    check_api_query_parameters,
    require_json_body,
    web_state,
)
from app.web.queue import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR_CHARS,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_RECORD_ID,
    CallFilters,
    PageCursor,
    list_calls,
)
from app.web.schemas import (
    NO_NUL_PATTERN,
    CallDecisionIn,
    CallDecisionOut,
    CallListOut,
    ClaimAddIn,
    ClaimReviewIn,
    ErrorOut,
    EventOut,
    MeOut,
    SubmitOut,
    UserChangeIn,
    UserCreatedOut,
    UserCreateIn,
    UserEventOut,
    UserOut,
    UserTokenOut,
)

logger = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, invalid or expired bearer token (the detail says which)."},
    404: {"model": ErrorOut, "description": "No such record visible to this user (other tenants' records included)."},
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {"model": ErrorOut, "description": "The role may not do this."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut, "description": "The record's state forbids it."}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut, "description": "Invalid input; says why."}}

router = APIRouter(prefix="/api", responses=ERRORS,
                   dependencies=[Depends(check_api_query_parameters), Depends(require_json_body)])
def _iso_day(value: object) -> object:
    # pydantic would also read "0.0" or "1700000000" as a day (a Unix time); the API takes YYYY-MM-DD only.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"expected a day as YYYY-MM-DD, got {value[:40]!r}")
    return value


IsoDay = Annotated[date, BeforeValidator(_iso_day)]
CallIdPath = Annotated[str, Path(description="The call's id.", pattern=NO_NUL_PATTERN)]


# ---------------------------------------------------------------------------------------------- me


@router.get("/me", tags=["users"], summary="Who the token belongs to and what it may do")
def me(principal: ApiUser) -> MeOut:
    return MeOut.model_validate(principal)


@router.post("/me/rotate-token", tags=["users"],
             summary="A new token for the token's own user, in the answer once; the old one stops working at once")
def post_me_rotate_token(
    request: Request, principal: ApiUser, credentials: BearerCredentials, db: DbSession
) -> UserTokenOut:
    """The token sent with this request, and every browser session signed in with it, stop working when
    the answer is sent: use the token in the answer from then on. 409 if that token was replaced meanwhile
    (an admin rotated it): nothing is issued for it."""
    assert credentials is not None  # ApiUser authenticated with it
    issued = rotate_token_by_id(db, principal.tenant_id, principal.user_id, replacing=credentials.credentials,
                                actor=api_actor(principal), token_lifetime_days=token_lifetime_days(request))
    db.commit()
    return token_out(issued, principal.tenant)


# ------------------------------------------------------------------------------------------- calls


@router.get("/calls", tags=["calls"], summary="List the calls this user may see")
def get_calls(
    principal: ApiUser,
    db: DbSession,
    state: Annotated[list[CallState] | None, Query(description="Repeat to allow several states.")] = None,
    agent: Annotated[str | None, Query(description="Agent id.", pattern=NO_NUL_PATTERN)] = None,
    date_from: Annotated[IsoDay | None, Query(description="Calls started on or after this day (UTC).")] = None,
    date_to: Annotated[IsoDay | None, Query(description="Calls started on or before this day (UTC).")] = None,
    flagged: Annotated[bool | None, Query(description="Only calls with (true) / without (false) "
                                                      "unverified items awaiting a decision.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip; prefer `cursor` past the "
                                                                  "first pages (it stays fast at any depth).")] = 0,
    cursor: Annotated[str | None, Query(description="Opaque `next_cursor` / `prev_cursor` of a previous page "
                                                    "(same filters); not with `offset`.",
                                        max_length=MAX_CURSOR_CHARS)] = None,
) -> CallListOut:
    """Calls in review order: `needs_attention` first, then `ready_for_review`, then the rest, each
    oldest-waiting first. Page with `cursor` (keyset: every page is as fast as the first) or `offset`."""
    if cursor is not None and offset:
        raise InvalidInputError("pass either cursor or offset, not both")
    filters = CallFilters(
        states=tuple(state or ()), agent=agent, date_from=date_from, date_to=date_to, flagged=flagged,
        limit=limit, offset=offset, cursor=PageCursor.decode(cursor) if cursor is not None else None,
    )
    return list_calls(db, principal, filters)


@router.get(
    "/calls/{call_id}",
    tags=["calls"],
    summary="A call with its items, evidence and utterances",
    responses=FORBIDDEN,
)
def get_call(
    call_id: CallIdPath,
    principal: ApiUser,
    db: DbSession,
    unmask: Annotated[bool, Query(description="Card numbers, SSNs and accounts unmasked: needs the view_pii "
                                              "permission (403 otherwise); every unmasked read is audited.")] = False,
) -> CallDetailOut:
    """Card numbers, SSNs and bank accounts are masked (last four kept; lengths, and so evidence
    offsets, unchanged) unless `unmask=true`."""
    call = visible_call(db, principal, call_id)
    if not unmask:
        return call_detail(db, call, masked=True)
    record_unmasking(db, principal, call, "api")
    db.commit()
    return call_detail(db, call)


@router.post(
    "/calls",
    tags=["calls"],
    summary="Hand over a finished call's transcript",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": SubmitOut, "description": "Identical content was stored before, or only its metadata was "
              "corrected; nothing new to process (a call still queued is handed to the workers again)."},
        **FORBIDDEN,
        409: {"model": ErrorOut, "description": "The external id exists with other content or metadata (use "
              "replace=true), or its call is approved or rejected (reopen it first)."},
        413: {"model": ErrorOut, "description": "The body exceeds POSTCALL_MAX_TRANSCRIPT_BYTES."},
        415: {"model": ErrorOut, "description": "The body is a form (curl -d, -F) or compressed "
              "(Content-Encoding): send the file's bytes as they are."},
        **INVALID,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The transcript file's bytes, exactly as the vendor produced it (any format "
            "`postcall ingest` accepts). Send it as the raw body, e.g. `curl --data-binary @call.json`.",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def post_call(
    request: Request,
    response: Response,
    principal: ApiUser,
    db: DbSession,
    format: Annotated[str, Query(description="Format name, or `auto` to detect it.", pattern=NO_NUL_PATTERN)] = "auto",
    external_id: Annotated[
        str | None,
        Query(max_length=200, description="Required unless the transcript carries one.", pattern=NO_NUL_PATTERN),
    ] = None,
    agent_speaker: Annotated[
        str | None, Query(description="The speaker label that is the agent.", pattern=NO_NUL_PATTERN)
    ] = None,
    source_name: Annotated[
        str | None, Query(max_length=500, description="File name, for messages.", pattern=NO_NUL_PATTERN)
    ] = None,
    replace: Annotated[bool, Query(description="Overwrite a call whose content changed.")] = False,
    mode: Annotated[
        LlmMode | None,
        Query(description="sync, or batch: the call waits for the next provider batch (about half the "
              "token price, answered within the batch window). Default: POSTCALL_LLM_MODE."),
    ] = None,
) -> SubmitOut:
    """Parse, store and enqueue one call. 202 with the call id once it is committed as `queued`; the
    workers pick it up from there. If the broker is unreachable the answer is still 202 with
    `enqueued: false`: the call is safe in the database and the reconciler enqueues it later.
    Invalid input is 422 naming the problem, and nothing is stored."""
    principal.require(principal.can_submit_calls, "submit calls")
    state = web_state(request)
    data = await _read_body(request, state.settings.max_transcript_bytes)
    outcome = await run_in_threadpool(
        _store_submission, state, db, principal, data,
        _Submission(format, external_id, agent_speaker, source_name, replace, mode,
                    declared_charset(request.headers.get("content-type"))),
    )
    if outcome.status in (StoreStatus.unchanged.value, StoreStatus.updated.value):
        response.status_code = status.HTTP_200_OK
    return outcome


class PayloadTooLargeError(PostcallError):
    """The request body exceeds the configured transcript size limit (413)."""


# Bodies that are not the file as it is: curl's -d sends a form (its newlines stripped, so a transcript's
# turns ran into one utterance), -F a multipart form.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/")


def _check_body_encoding(request: Request) -> None:
    content_type = request.headers.get("content-type", "").strip().lower()
    if content_type.startswith(_FORM_TYPES):
        raise UnsupportedBodyError(
            f"the body is a form ({content_type.split(';')[0]}); send one call's transcript file as the raw body, "
            "with its own type, e.g. curl -H 'Content-Type: text/plain' --data-binary @call.txt (curl labels a body "
            "it is given as a form unless told; -d also strips its newlines)")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedBodyError(f"Content-Encoding {encoding!r} is not accepted; send the file uncompressed")


async def _read_body(request: Request, limit: int) -> bytes:
    _check_body_encoding(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the transcript is {int(declared)} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the transcript exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Submission:
    fmt: str
    external_id: str | None
    agent_speaker: str | None
    source_name: str | None
    replace: bool
    mode: LlmMode | None = None
    charset: str | None = None  # the Content-Type's charset: the body's encoding when it is not UTF-8


def _store_submission(
    state: WebState, db: Session, principal: Principal, data: bytes, submission: _Submission
) -> SubmitOut:
    from app.ingest import parse_bytes

    if not data:
        raise ReviewInputError("the request body is empty; send the transcript file's bytes")
    try:
        llm_mode = resolve_llm_mode(state.settings, submission.mode)
    except ConfigError as exc:
        raise ReviewInputError(str(exc)) from exc
    source_name = submission.source_name or submission.external_id or "upload"
    parsed = parse_bytes(
        data,
        source_name=source_name,
        fmt=submission.fmt,
        agent_speaker=submission.agent_speaker,
        max_bytes=state.settings.max_transcript_bytes,
        max_utterances=state.settings.max_utterances_per_call,
        encoding=submission.charset,
    )
    # An explicit value wins over one read from a plain-text header ("Call ID: ...", "Team: ..."), with a
    # warning; a format's own field that differs is a conflict the uploader must settle.
    if submission.external_id and not parsed.prefer_explicit(
            "external_id", submission.external_id, given_as="the query's external_id"):
        raise ReviewInputError(f"the query's external_id {submission.external_id!r} is not the transcript's "
                               f"{parsed.transcript.metadata.external_id!r}; send one of them")
    if principal.role is UserRole.supervisor and principal.team and "team" in parsed.from_header:
        parsed.prefer_explicit("team", principal.team, given_as="the submitting supervisor's team")
    transcript = parsed.transcript
    metadata = transcript.metadata
    external_id = submission.external_id or metadata.external_id
    if not external_id or is_blank(external_id):
        raise ReviewInputError("external_id is required: pass ?external_id=... or include it in the transcript")
    external_id = clean_external_id(external_id)  # as stored: the visibility check below looks up the same id
    if metadata.tenant and metadata.tenant != principal.tenant:
        raise AccessDeniedError(f"the transcript names tenant {metadata.tenant!r}; this token submits to its own")
    if principal.role is UserRole.supervisor and principal.team:
        if metadata.team and metadata.team != principal.team:
            raise AccessDeniedError(f"a supervisor of team {principal.team!r} submits only that team's calls")
        if not metadata.team:
            # Without it the supervisor could not see the call they just handed over.
            with_team = metadata.model_copy(update={"team": principal.team})
            transcript = transcript.model_copy(update={"metadata": with_team})
    # One lookup: whether the tenant has the external id, and whether this user may see that call (a
    # condition that is not true, NULL included, is not visible).
    existing_visible = db.scalar(
        select(case((visible_calls_clause(principal), True), else_=False))
        .where(Call.tenant_id == principal.tenant_id, Call.external_id == external_id)
    )
    if existing_visible is False:
        raise DuplicateCallError(f"external id {external_id!r} is already used in this tenant")
    stored = store_transcript(
        db, transcript, tenant=principal.tenant, external_id=external_id, source_name=source_name,
        replace=submission.replace, actor=Actor(principal.name, principal.user_id),
        redact=state.settings.store_redacted,
        llm_mode=llm_mode, sees_personal_data=principal.can_view_pii,
    )
    db.commit()
    enqueued = False
    if stored.needs_processing and not stored.needs_enqueue:
        detail = "stored as queued; it waits for the next provider batch"
    elif stored.mode_changed and not stored.needs_enqueue:
        detail = "stored before and still queued: now in batch mode, it waits for the next provider batch"
    elif stored.needs_enqueue:
        detail = ("stored as queued and handed to the workers" if stored.needs_processing else
                  "stored before and still queued: now in sync mode, handed to the workers" if stored.mode_changed
                  else "stored before and still queued: handed to the workers again")
        try:
            state.enqueue([stored.call_id])
            enqueued = True
        except Exception as exc:  # kombu raises several unrelated types when the broker is down
            logger.warning("could not enqueue call %s: %s", stored.call_id, exc)
            detail = "stored as queued; the broker is unreachable, so the reconciler will enqueue it"
    elif stored.status is StoreStatus.updated:
        detail = "metadata corrected; the utterances and the extraction are unchanged"
    else:
        detail = "identical content was stored before; nothing to do"
    return SubmitOut(
        call_id=stored.call_id,
        external_id=stored.external_id,
        status=stored.status.value,
        state=stored.state.value,
        format=parsed.detected_format,
        warnings=list(parsed.warnings),
        enqueued=enqueued,
        detail=detail,
    )


@router.delete(
    "/calls/{call_id}",
    tags=["calls"],
    summary="Hard-delete a call (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=FORBIDDEN,
)
def remove_call(call_id: CallIdPath, principal: ApiUser, db: DbSession) -> Response:
    """The transcript, runs, items and evidence go; the review events stay, plus one recording the
    deletion without any transcript content."""
    def delete() -> None:
        delete_call(db, principal, call_id)
        db.commit()

    retry_conflicts(db, delete)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/calls/{call_id}/events", tags=["review"], summary="The call's audit trail, oldest first")
def get_events(call_id: CallIdPath, principal: ApiUser, db: DbSession) -> list[EventOut]:
    events = call_events(db, principal, call_id)
    # Texts masked as the call's transcript is: a date of birth asked for in one turn and given in the next.
    rows = db.execute(select(UtteranceRow.index, UtteranceRow.text).where(UtteranceRow.call_id == call_id))
    masks = CallMasks(dict(rows.all()))
    return [event_out(e, masks) for e in events]


def event_out(review_event: ReviewEvent, masks: CallMasks | None = None) -> EventOut:
    """One audit event, its texts masked (as the call's transcript is, given its `masks`)."""
    return EventOut(
        id=review_event.id,
        call_id=review_event.call_id,
        claim_id=review_event.claim_id,
        actor_user_id=review_event.actor_user_id,
        actor=review_event.actor_name,
        action=review_event.action,
        before=mask_snapshot(review_event.before, masks),
        after=mask_snapshot(review_event.after, masks),
        created_at=review_event.created_at,
    )


@router.post(
    "/calls/{call_id}/review",
    tags=["review"],
    summary="Approve or reject a whole call",
    responses={**FORBIDDEN, **CONFLICT, **INVALID},
)
def post_call_decision(call_id: CallIdPath, body: CallDecisionIn, principal: ApiUser, db: DbSession) -> CallDecisionOut:
    """Approving needs every unverified item decided first (409 otherwise)."""
    def decide() -> Call:
        decided = decide_call(db, principal, call_id, CallDecision(body.decision))
        db.commit()
        return decided

    call = retry_conflicts(db, decide)
    return CallDecisionOut(call_id=call.id, state=call.state.value)


@router.post(
    "/calls/{call_id}/claims",
    tags=["review"],
    summary="Add a missed item with its transcript evidence",
    status_code=status.HTTP_201_CREATED,
    responses={**FORBIDDEN, **CONFLICT, **INVALID,
               200: {"model": ClaimOut, "description": "The same item was added before: that item; nothing stored."}},
)
def post_claim(
    call_id: CallIdPath, body: ClaimAddIn, principal: ApiUser, db: DbSession, response: Response
) -> ClaimOut:
    """The evidence quotes go through the grounding verifier; a quote not found in the transcript is 422.
    The item joins the call's current extraction with origin `reviewer`. The same item again (kind, text,
    owner, due and evidence as an item added before: a retried request) is answered 200 with that item, and
    nothing new is stored."""
    item = NewItem(
        kind=body.kind,
        text=body.text,
        owner=body.owner.value if body.owner else None,
        due=body.due,
        selection=[SelectedQuote(e.utterance, e.quote) for e in body.evidence],
    )

    def add() -> AddedItem:
        added = add_reviewer_claim(db, principal, call_id, item)
        db.commit()
        return added

    added = retry_conflicts(db, add)
    if added.repeated:
        response.status_code = status.HTTP_200_OK
    return mask_lone_claim(claim_out(added.claim), stored_masks(added.claim))


@router.post(
    "/claims/{claim_id}/review",
    tags=["review"],
    summary="Approve, edit or reject one item",
    responses={**FORBIDDEN, **CONFLICT, **INVALID},
)
def post_claim_review(
    claim_id: Annotated[int, Path(ge=1, le=MAX_RECORD_ID)], body: ClaimReviewIn, principal: ApiUser, db: DbSession
) -> ClaimOut:
    changes = ClaimChanges(text=body.text, owner=body.owner.value if body.owner else None, due=body.due)

    def review() -> Claim:
        reviewed = review_claim(db, principal, claim_id, body.action, changes, expected=body.expected_status)
        db.commit()
        return reviewed

    claim = retry_conflicts(db, review)
    return mask_lone_claim(claim_out(claim), stored_masks(claim))


# ------------------------------------------------------------------------------------------- users


UserIdPath = Annotated[int, Path(description="The user's id.", ge=1, le=MAX_RECORD_ID)]


@router.get("/users", tags=["users"], summary="Users of the admin's tenant", responses=FORBIDDEN)
def get_users(principal: ApiUser, db: DbSession) -> list[UserOut]:
    principal.require(principal.can_manage_users, "manage users")
    return [user_out(user, slug) for user, slug in list_users(db, principal.tenant)]


@router.post(
    "/users",
    tags=["users"],
    summary="Create a user in the admin's tenant; the token is in the answer, once",
    status_code=status.HTTP_201_CREATED,
    responses={**FORBIDDEN, **CONFLICT, **INVALID},
)
def post_user(request: Request, body: UserCreateIn, principal: ApiUser, db: DbSession) -> UserCreatedOut:
    principal.require(principal.can_manage_users, "manage users")
    created = create_user(
        db, tenant=principal.tenant, name=body.name, role=body.role, team=body.team, agent_id=body.agent_id,
        actor=api_actor(principal), token_lifetime_days=token_lifetime_days(request),
    )
    db.commit()
    return UserCreatedOut(**user_out(created.user, principal.tenant).model_dump(), token=created.token)


@router.post(
    "/users/{user_id}/rotate-token",
    tags=["users"],
    summary="A new token for a user of the admin's tenant, in the answer once; the old one stops working at once",
    responses={**FORBIDDEN, **CONFLICT},
)
def post_user_rotate_token(
    user_id: UserIdPath,
    request: Request,
    principal: ApiUser,
    db: DbSession,
) -> UserTokenOut:
    """The user's old token and browser sessions stop working at once (a leaked token, a departure from a
    shared account, an expired token). A deactivated user gets none (409)."""
    principal.require(principal.can_manage_users, "manage users")
    issued = rotate_token_by_id(db, principal.tenant_id, user_id, actor=api_actor(principal),
                                token_lifetime_days=token_lifetime_days(request),
                                may_take_pii=principal.can_view_pii or principal.user_id == user_id)
    db.commit()
    return token_out(issued, principal.tenant)


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    summary="Change a user's role, team or agent id (admins; the user's token is unchanged)",
    responses={**FORBIDDEN, **CONFLICT, **INVALID},
)
def patch_user(user_id: UserIdPath, body: UserChangeIn, principal: ApiUser, db: DbSession) -> UserOut:
    """A field left out is kept; `null` clears a team or an agent id. The change holds from the user's next
    request, and is recorded (`user_changed`). Refused (409) when it would leave the tenant without an active
    admin; an agent needs an agent id (422)."""
    principal.require(principal.can_manage_users, "manage users")
    given = body.model_fields_set
    if not given or (given == {"role"} and body.role is None):
        raise InvalidInputError("nothing to change: give role, team or agent_id")
    user = change_user(db, principal.tenant_id, user_id, role=body.role,
                       team=body.team if "team" in given else KEEP,
                       agent_id=body.agent_id if "agent_id" in given else KEEP, actor=api_actor(principal))
    db.commit()
    return user_out(user, principal.tenant)


@router.post(
    "/users/{user_id}/deactivate",
    tags=["users"],
    summary="Switch a user off: their token and browser sessions stop working at once",
    responses={**FORBIDDEN, **CONFLICT},
)
def post_user_deactivate(user_id: UserIdPath, principal: ApiUser, db: DbSession) -> UserOut:
    """Recorded (`user_deactivated`); a user already off is answered as they are. Refused (409) for the tenant's
    last active admin."""
    principal.require(principal.can_manage_users, "manage users")
    user = deactivate_user_by_id(db, principal.tenant_id, user_id, actor=api_actor(principal))
    db.commit()
    return user_out(user, principal.tenant)


@router.post(
    "/users/{user_id}/reactivate",
    tags=["users"],
    summary="Switch a deactivated user on again, with a new token in the answer, once",
    responses={**FORBIDDEN, **CONFLICT},
)
def post_user_reactivate(user_id: UserIdPath, request: Request, principal: ApiUser, db: DbSession) -> UserTokenOut:
    """The token the user held when switched off never works again (it may be why they were). Role, team,
    agent id and view_pii are as they were. 409 for an active user; 403 for an admin without view_pii
    reactivating a user who has it (they would hold that user's token)."""
    principal.require(principal.can_manage_users, "manage users")
    issued = reactivate_user(db, principal.tenant_id, user_id, actor=api_actor(principal),
                             token_lifetime_days=token_lifetime_days(request), may_take_pii=principal.can_view_pii)
    db.commit()
    return token_out(issued, principal.tenant)


MAX_USER_EVENTS_PAGE = 500


@router.get(
    "/users/events",
    tags=["users"],
    summary="The audit trail of changes to the admin's tenant's users, oldest first",
    responses=FORBIDDEN,
)
def get_user_events(
    principal: ApiUser,
    db: DbSession,
    user_id: Annotated[int | None, Query(description="Only this user's changes (404 if not a user of your tenant).",
                                         ge=1, le=MAX_RECORD_ID)] = None,
    after: Annotated[int | None, Query(description="Events after this event id: the last id of the previous page.",
                                       ge=0, le=MAX_RECORD_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_USER_EVENTS_PAGE)] = 100,
) -> list[UserEventOut]:
    """Who created, deactivated, gave a new token to, or granted or revoked view_pii for which user, when.
    Only your own tenant's: another tenant's user is 404, as one that does not exist."""
    principal.require(principal.can_manage_users, "manage users")
    if user_id is not None:
        require_tenant_user(db, principal.tenant_id, user_id)
    events = user_history(db, principal.tenant_id, user_id=user_id, after=after, limit=limit)
    return [UserEventOut.model_validate(event) for event in events]


def api_actor(principal: Principal) -> Actor:
    """The user an API request acts as, as the audit trails name them."""
    return Actor(principal.name, principal.user_id)


def token_lifetime_days(request: Request) -> int:
    return web_state(request).settings.token_lifetime_days


def user_out(user: User, tenant: str) -> UserOut:
    return UserOut.from_row(user, tenant=tenant)


def token_out(issued: IssuedToken, tenant: str) -> UserTokenOut:
    return UserTokenOut.from_row(issued.user, tenant=tenant, token=issued.token)

