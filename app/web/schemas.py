"""Request and response bodies of the JSON API (read models of calls come from app/schemas/api.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.models import ReviewStatus, UserRole
from app.review import MAX_CLAIM_TEXT_CHARS, MAX_SELECTION_PIECES, CallDecision, ClaimAction
from app.schemas.api import CallSummaryOut, RowModel, row_field
from app.schemas.extraction import MAX_DUE_CHARS, Owner
from app.schemas.grounding import ClaimKind
from app.text.storable import unstorable_problem

# Any text but U+0000 (see app/errors.py): declared on every string parameter and body field.
NO_NUL_PATTERN = r"^[^\x00]*$"


def _storable(value: str) -> str:
    problem = unstorable_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class _NoNulInSchema:
    """Says in the OpenAPI document what `_storable` enforces, so clients (and generated tests) know."""

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema["pattern"] = NO_NUL_PATTERN
        return schema


# Text a request body stores: refused with 422 naming the field when it holds U+0000.
StorableStr = Annotated[str, AfterValidator(_storable), _NoNulInSchema()]


class CallListItemOut(CallSummaryOut):
    flagged: bool = Field(description="The current extraction has unverified items nobody has decided on yet.")
    # Triage preview: what a reviewer needs to pick the next call without opening it.
    reason: str | None = Field(default=None, description="The current extraction's reason for the call.")
    outcome: str | None = Field(default=None, description="The current extraction's outcome.")
    unverified: list[Literal["reason", "outcome"]] = Field(
        default_factory=list, description="Which of `reason` and `outcome` the transcript does not confirm (their "
                                          "item is ungrounded): show them flagged, never as fact.")
    flagged_items: int = Field(default=0, description="Unverified items nobody has decided on yet.")
    earliest_due: str | None = Field(default=None, description="The due phrase of the soonest open action item.")
    earliest_due_date: date | None = Field(default=None, description="That phrase as a date, from the call's start.")
    waiting_since: datetime | None = Field(default=None, description="When the call entered its current state.")


class CallListOut(BaseModel):
    total: int = Field(description="Calls matching the filters (before limit/offset).")
    limit: int
    offset: int
    counts: dict[str, int] = Field(description="Calls per state among those matching every filter but state.")
    calls: list[CallListItemOut]
    next_cursor: str | None = Field(
        default=None, description="Opaque: pass as `cursor` for the next page (null on the last page)."
    )
    prev_cursor: str | None = Field(
        default=None, description="Opaque: pass as `cursor` for the previous page (null on the first page)."
    )


class SubmitOut(BaseModel):
    call_id: str
    external_id: str
    status: str = Field(
        description="created | replaced | updated (same utterances, corrected metadata) | unchanged (identical "
        "content was stored before)."
    )
    state: str
    format: str = Field(description="The transcript format that was detected or given.")
    warnings: list[str]
    enqueued: bool = Field(description="Handed to the workers now. False: it stays queued for the reconciler.")
    detail: str


class ClaimReviewIn(BaseModel):
    # Unknown fields are refused: a misspelt one ("txt") changed nothing and answered 200.
    model_config = ConfigDict(extra="forbid")

    action: ClaimAction
    text: StorableStr | None = Field(default=None, max_length=MAX_CLAIM_TEXT_CHARS, description="edit only")
    owner: Owner | None = Field(default=None, description="edit only; action items")
    due: StorableStr | None = Field(default=None, max_length=MAX_DUE_CHARS, description="edit only; empty clears it")
    expected_status: ReviewStatus | None = Field(
        default=None, description="The item's review status as you last read it: if another decision changed it "
                                  "since, 409 and nothing changes (a colleague's rejection is never overwritten "
                                  "unseen).")


class SelectedQuoteIn(BaseModel):
    utterance: int = Field(ge=0)
    quote: StorableStr = Field(min_length=1)


class ClaimAddIn(BaseModel):
    # Unknown fields are refused: "due_date" for "due" was dropped and the item stored with no due date (201).
    model_config = ConfigDict(extra="forbid")

    kind: ClaimKind = ClaimKind.action_item
    text: StorableStr = Field(min_length=1, max_length=MAX_CLAIM_TEXT_CHARS)
    owner: Owner | None = Field(default=None, description="required for action items")
    due: StorableStr | None = Field(default=None, max_length=MAX_DUE_CHARS)
    evidence: list[SelectedQuoteIn] = Field(min_length=1, max_length=MAX_SELECTION_PIECES)


class CallDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field this API does not read is refused, never ignored

    decision: CallDecision


class CallDecisionOut(BaseModel):
    call_id: str
    state: str


class EventOut(BaseModel):
    id: int
    call_id: str
    claim_id: int | None
    actor_user_id: int | None
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class UserOut(RowModel):
    id: int
    name: str
    tenant: str
    role: UserRole
    team: str | None
    agent_id: str | None
    active: bool
    created_at: datetime
    view_pii: bool = Field(default=False, description="granted with `postcall users grant-pii`")
    token_expires_at: datetime | None = Field(
        default=None, description="When the user's API token stops working (POSTCALL_TOKEN_LIFETIME_DAYS after it "
                                  "was issued); null: it does not expire. Rotate it before then.")


class UserEventOut(RowModel):
    """One change to a user, as the append-only `user_events` trail keeps it."""

    id: int
    user_id: int
    user_name: str = Field(description="The user's name at the change.")
    actor_user_id: int | None = Field(description="The user who made the change; null for a command (`cli:...`).")
    actor: str = row_field("actor", "actor_name", description="Who made the change: a user's name or `cli:<account>`.")
    action: str = Field(description="user_created, user_deactivated, user_reactivated, user_changed (role, team or "
                                    "agent id), token_rotated, view_pii_granted, view_pii_revoked")
    detail: dict[str, Any] = Field(description='What changed, as {"field": {"from": ..., "to": ...}} (at creation: '
                                               "the new user's fields). Never a token or its hash.")
    created_at: datetime


class UserCreateIn(BaseModel):
    # Unknown fields are refused: {"teem": "east"} made a supervisor with no team, who sees the whole tenant.
    model_config = ConfigDict(extra="forbid")

    name: StorableStr = Field(min_length=1, max_length=200)
    role: UserRole
    team: StorableStr | None = Field(default=None, max_length=200)
    agent_id: StorableStr | None = Field(default=None, max_length=200)


class UserChangeIn(BaseModel):
    """The fields to change; a field left out is kept, `null` clears a team or an agent id. Unknown fields are
    refused: a misspelt one would otherwise change nothing and answer 200."""

    model_config = ConfigDict(extra="forbid")

    role: UserRole | None = Field(default=None, description="A new role (null or left out: kept).")
    team: StorableStr | None = Field(default=None, max_length=200, description="A new team; null clears it.")
    agent_id: StorableStr | None = Field(default=None, max_length=200,
                                         description="A new agent id; null clears it (not for an agent).")


class UserCreatedOut(UserOut):
    token: str = Field(description="The API token. Shown once: only its hash is stored.")


class UserTokenOut(UserOut):
    token: str = Field(description="The new API token. Shown once: only its hash is stored. The token it replaces "
                                   "and every browser session signed in with it stopped working.")


class MeOut(RowModel):
    """Built from the signed-in Principal (its `user_id` is the `id`)."""

    id: int = row_field("id", "user_id")
    name: str
    tenant: str
    role: UserRole
    team: str | None
    agent_id: str | None
    can_review: bool
    can_submit_calls: bool
    can_delete_calls: bool
    can_manage_users: bool
    can_view_pii: bool = Field(default=False, description="may unmask card numbers, SSNs and accounts (audited)")
    token_expires_at: datetime | None = Field(
        default=None, description="When this token stops working; null: it does not expire. "
                                  "POST /api/me/rotate-token before then gives a new one.")


class ErrorOut(BaseModel):
    detail: str
