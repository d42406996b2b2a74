"""Hand-off routes of the JSON API: the event feed, webhook endpoints (admins), the record's JSON Schema.

Same rules as app/web/api.py: bearer token on every route (except the schema, which holds no data),
tenant-scoped, 403 for a role that may not, 422 naming invalid input.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.handoff.endpoints import (
    EndpointView,
    add_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    replay_deliveries,
    rotate_secret,
)
from app.handoff.feed import DEFAULT_PAGE, MAX_PAGE, read_feed
from app.handoff.outbox import EventType, event_json_schema
from app.handoff.record import CallRecordV1, build_record, record_json_schema
from app.models.tables import MAX_BIG_ID
from app.review import visible_call
from app.schemas.api import DeliveryOut
from app.web.api import ERRORS, FORBIDDEN, INVALID, CallIdPath
from app.web.deps import ApiUser, DbSession, check_api_query_parameters, require_json_body, web_state
from app.web.queue import MAX_RECORD_ID
from app.web.schemas import NO_NUL_PATTERN, ErrorOut, StorableStr

router = APIRouter(prefix="/api", responses=ERRORS,
                   dependencies=[Depends(check_api_query_parameters), Depends(require_json_body)])

# Endpoint ids are 32-bit in the database, delivery and event ids 64-bit (migration 0026); larger values
# are 422, not 500.
RecordId = Annotated[int, Field(ge=1, le=MAX_RECORD_ID)]
DeliveryId = Annotated[int, Field(ge=1, le=MAX_BIG_ID)]
EndpointIdPath = Annotated[int, Path(description="The endpoint's id.", ge=1, le=MAX_RECORD_ID)]
MAX_REPLAY_IDS = 1000
MAX_EVENT_ID_CHARS = 40
# The deliveries' list, under the router's prefix: its `Link` header names the next page by it.
DELIVERIES_ROUTE = "/webhooks/deliveries"
NEXT_PAGE_LINK = {"Link": {
    "description": 'RFC 8288 `<URL>; rel="next"`: this query with `before` set to the last id of the page. Sent '
                   "when the page is full (there may be more; the next page can be empty), never on a page that is "
                   "not. The URL is absolute on POSTCALL_PUBLIC_URL when that is set, else a path (a reference "
                   "relative to the URL asked).",
    "schema": {"type": "string"},
}}


class FeedEventOut(BaseModel):
    cursor: str = Field(description="Pass as `after` to continue after this event.")
    id: str = Field(description="The event id; the same value is the webhook-id of its deliveries.")
    type: str
    timestamp: str
    sequence: int = Field(description="The event's `sequence`, as its webhook body carries it (the cursor as a "
                                      "number): per call, apply an event only if its sequence is higher than "
                                      "the last one applied.")
    data: dict[str, Any] = Field(description="The postcall.call.v1 record (see /api/schemas/call.v1.json).")


class FeedOut(BaseModel):
    events: list[FeedEventOut]
    next_cursor: str = Field(description="Pass as `after` for the next page (unchanged when nothing is new; \"0\" "
                                         "before any event).")


class EndpointIn(BaseModel):
    # Unknown fields are refused: a `secret` sent along was ignored, and the integrator who believed they had
    # set it failed every verification.
    model_config = ConfigDict(extra="forbid")

    url: StorableStr = Field(max_length=2000)
    events: list[EventType] | None = Field(default=None, description="Event types to send; omitted: all.")
    description: StorableStr | None = Field(default=None, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise ValueError("`secret` cannot be set: the server generates the signing secret and returns it once, "
                             "in this request's answer")
        return data


class EndpointSecretOut(EndpointView):
    secret: str = Field(description="The signing secret (whsec_...). Shown this once; store it now.")


class EndpointCreatedOut(EndpointSecretOut):
    warnings: list[str] = Field(default_factory=list, description="What the subscription misses (call.approved "
                                                                   "without call.reopened...).")


class EndpointRotatedOut(EndpointSecretOut):
    previous_secret_until: datetime | None = Field(description="The secret before this one keeps signing until "
                                                               "then; null: it signs no more.")
    notes: list[str] = Field(default_factory=list, description="What changed besides (a secret that did not "
                                                                "decrypt was dropped...).")


class EndpointEnabledOut(EndpointView):
    queued: int = Field(description="Events written while it was disabled, queued for it now (in order).")
    skipped: int = Field(description="Events written while it was disabled, not queued (skip_backlog=true).")
    notes: list[str] = Field(default_factory=list, description="What the admin must know: dead letters to "
                                                                "replay, events the retention purge deleted.")


class ReplayIn(BaseModel):
    """One selector: `delivery_ids`, `event_id` or `all_dead`. Unknown fields are refused ("endpoint_id" beside
    `all_dead` replayed every endpoint's dead letters), and so are two selectors (one was silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    delivery_ids: list[DeliveryId] = Field(default_factory=list, max_length=MAX_REPLAY_IDS)
    event_id: StorableStr | None = Field(default=None, max_length=MAX_EVENT_ID_CHARS)
    all_dead: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> ReplayIn:
        given = [name for name, value in (("delivery_ids", self.delivery_ids), ("event_id", self.event_id),
                                          ("all_dead", self.all_dead)) if value]
        if len(given) > 1:
            raise ValueError(f"give one of delivery_ids, event_id, all_dead, not {' and '.join(given)}")
        return self


class ReplayOut(BaseModel):
    replayed: list[int]


@router.get("/schemas/call.v1.json", tags=["hand-off"], summary="JSON Schema of the postcall.call.v1 record",
            responses={401: {"description": "Never: the schema is public."}})
def get_record_schema() -> dict[str, Any]:
    return record_json_schema()


@router.get("/calls/{call_id}/record", tags=["hand-off"], response_model=CallRecordV1,
            summary="The call's postcall.call.v1 record as it is now (a receiver catching up after a 410)",
            responses=FORBIDDEN)
def get_call_record(call_id: CallIdPath, request: Request, principal: ApiUser, db: DbSession) -> CallRecordV1:
    """The record an event of the call would carry if one were written now: the same model, the same
    masking, for a receiver rebuilding what it filed (the feed answered 410, a delivery was lost) without a
    second mapping from the review API's shape."""
    call = visible_call(db, principal, call_id)
    return build_record(db, call, public_url=web_state(request).settings.public_url)


@router.get("/schemas/event.v1.json", tags=["hand-off"],
            summary="JSON Schema of a webhook delivery's body (type, timestamp, the record as data)",
            responses={401: {"description": "Never: the schema is public."}})
def get_event_schema() -> dict[str, Any]:
    return event_json_schema()


@router.get("/events", tags=["hand-off"], summary="Hand-off events in commit order, after a cursor",
            responses={**INVALID, 410: {"model": ErrorOut, "description": "The cursor is older than the events "
                                        "kept (hand-off retention): catch up from the calls API, then start "
                                        "again without `after`."}})
def get_events_feed(
    request: Request,
    principal: ApiUser,
    db: DbSession,
    after: Annotated[str | None, Query(description="A `next_cursor` from an earlier page; omit to start.",
                                       pattern=NO_NUL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> FeedOut:
    """The events of the calls this user may see, oldest first. The cursor is stable: an event that
    commits later always sorts after every cursor already handed out, so polling with `next_cursor`
    misses nothing (a page can come back empty while a large transaction is still writing events; poll
    again). A deleted call's earlier events are stripped to identity fields. Events are kept for the
    hand-off's retention period (POSTCALL_HANDOFF_RETENTION_DAYS): a cursor from before the oldest kept is
    410, never a silent gap. An unknown query parameter is 422: the feed has no filters, and one guessed
    (`type=`, `call_id=`) was ignored, serving every event as if it had applied."""
    page = read_feed(db, principal, after, limit)
    db.rollback()  # a read: end it now, releasing the feed's lock before the answer is built
    return FeedOut(
        events=[FeedEventOut(cursor=item.cursor, id=item.event_id, type=item.type,
                             timestamp=str(item.payload.get("timestamp", "")), sequence=int(item.cursor),
                             data=item.payload.get("data", {}))
                for item in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/webhooks", tags=["hand-off"], summary="The tenant's webhook endpoints (admins)", responses=FORBIDDEN)
def get_webhooks(principal: ApiUser, db: DbSession) -> list[EndpointView]:
    principal.require(principal.can_manage_users, "manage webhooks")
    return [EndpointView.model_validate(e) for e in list_endpoints(db, principal.tenant_id)]


@router.post("/webhooks", tags=["hand-off"], status_code=status.HTTP_201_CREATED,
             summary="Register an endpoint; the signing secret is in the answer, once",
             responses={**FORBIDDEN, **INVALID})
def post_webhook(body: EndpointIn, request: Request, principal: ApiUser, db: DbSession) -> EndpointCreatedOut:
    principal.require(principal.can_manage_users, "manage webhooks")
    event_types = [e.value for e in body.events] if body.events is not None else None
    created = add_endpoint(db, web_state(request).settings, tenant_id=principal.tenant_id, url=body.url,
                           event_types=event_types, description=body.description)
    db.commit()
    return EndpointCreatedOut(**EndpointView.model_validate(created.endpoint).model_dump(), secret=created.secret,
                              warnings=list(created.warnings))


@router.post("/webhooks/{endpoint_id}/disable", tags=["hand-off"], summary="Stop sending to an endpoint",
             responses=FORBIDDEN)
def post_webhook_disable(endpoint_id: EndpointIdPath, principal: ApiUser, db: DbSession) -> EndpointView:
    principal.require(principal.can_manage_users, "manage webhooks")
    endpoint = disable_endpoint(db, get_endpoint(db, principal.tenant_id, endpoint_id),
                                f"disabled by {principal.name}")
    db.commit()
    return EndpointView.model_validate(endpoint)


@router.delete("/webhooks/{endpoint_id}", tags=["hand-off"], status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a disabled endpoint for good, with its deliveries",
               responses={**FORBIDDEN, 409: {"model": ErrorOut, "description": "The endpoint is active: disable "
                                                                               "it first."}})
def delete_webhook(endpoint_id: EndpointIdPath, principal: ApiUser, db: DbSession) -> Response:
    """Its deliveries and their attempts go with it (its dead letters can no longer be replayed). An active
    endpoint is refused (409): POST /api/webhooks/{id}/disable first."""
    principal.require(principal.can_manage_users, "manage webhooks")
    delete_endpoint(db, get_endpoint(db, principal.tenant_id, endpoint_id))
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhooks/{endpoint_id}/enable", tags=["hand-off"],
             summary="Send to an endpoint again; the events written while it was disabled are queued for it",
             responses=FORBIDDEN)
def post_webhook_enable(
    request: Request, endpoint_id: EndpointIdPath, principal: ApiUser, db: DbSession,
    skip_backlog: Annotated[bool, Query(description="Do not queue the events written while it was disabled (the "
                                                    "receiver catches up from the calls API instead).")] = False,
) -> EndpointEnabledOut:
    """Disabling is a pause: the events of the tenant that match the endpoint's subscription and were written
    while it was disabled are queued for it, in order (`queued`), unless `skip_backlog=true`. What was
    dead-lettered before or by the disable is sent again by POST /api/webhooks/deliveries/replay."""
    principal.require(principal.can_manage_users, "manage webhooks")
    enabled = enable_endpoint(db, web_state(request).settings, get_endpoint(db, principal.tenant_id, endpoint_id),
                              backlog=not skip_backlog)
    db.commit()
    return EndpointEnabledOut(**EndpointView.model_validate(enabled.endpoint).model_dump(), queued=enabled.queued,
                              skipped=enabled.skipped, notes=enabled.notes)


@router.post("/webhooks/{endpoint_id}/rotate-secret", tags=["hand-off"],
             summary="A new signing secret (the old one also signs for 24 h)",
             responses={**FORBIDDEN, 409: {"model": ErrorOut, "description": "A rotation's overlap is running "
                                                                             "(force=true drops the old secret)."}})
def post_webhook_rotate(
    endpoint_id: EndpointIdPath, request: Request, principal: ApiUser, db: DbSession,
    force: Annotated[bool, Query(description="Rotate even during the last rotation's overlap: the secret "
                                             "before it stops signing at once (for a leaked secret), or "
                                             "the current one cannot be decrypted.")] = False,
) -> EndpointRotatedOut:
    principal.require(principal.can_manage_users, "manage webhooks")
    endpoint = get_endpoint(db, principal.tenant_id, endpoint_id)
    rotation = rotate_secret(db, web_state(request).settings, endpoint, force=force)
    db.commit()
    return EndpointRotatedOut(**EndpointView.model_validate(endpoint).model_dump(), secret=rotation.secret,
                              previous_secret_until=rotation.previous_until, notes=list(rotation.notes))


@router.get(DELIVERIES_ROUTE, tags=["hand-off"], summary="Recent deliveries, newest first (admins)",
            responses={200: {"description": "Deliveries, newest first: a bare list.", "headers": NEXT_PAGE_LINK},
                       **FORBIDDEN, **INVALID})
def get_webhook_deliveries(
    request: Request,
    response: Response,
    principal: ApiUser,
    db: DbSession,
    failed: Annotated[bool, Query(description="Only dead-lettered or failing deliveries.")] = False,
    call_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL_PATTERN,
                                         description="Only this call's deliveries: its id or external id.")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIG_ID, description="Only deliveries with a smaller id: "
                                        "the next page is `before=<the last id of this one>` (the `Link` header "
                                        "names it).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryOut]:
    """The body is a bare list, newest first. A full page carries a `Link: <...>; rel="next"` header; the
    last page none."""
    principal.require(principal.can_manage_users, "manage webhooks")
    rows = [DeliveryOut.from_listed(row) for row in list_deliveries(
        db, principal.tenant_id, failed_only=failed, call_id=call_id, before=before, limit=limit)]
    if len(rows) == limit:
        next_page = next_page_url(web_state(request).settings.public_url, router.prefix + DELIVERIES_ROUTE,
                                  request, before=rows[-1].id)
        response.headers["Link"] = f'<{next_page}>; rel="next"'
    return rows


def next_page_url(public_url: str | None, path: str, request: Request, *, before: int) -> str:
    """The next page of a list paged by `before`: the app's `path` with this request's query, every parameter
    but `before` kept as sent and `before` set. On POSTCALL_PUBLIC_URL when it is set, as the record's
    `review_url` is; else a path, as the app's redirects are, which a client resolves against the URL it
    asked (RFC 3986). Never built from the request's Host header: a client sets it, and behind a proxy it
    names the proxy's upstream."""
    query = [(key, value) for key, value in request.query_params.multi_items() if key != "before"]
    path_and_query = f"{path}?{urlencode([*query, ('before', str(before))])}"
    return f"{public_url.rstrip('/')}{path_and_query}" if public_url else path_and_query


@router.post("/webhooks/deliveries/replay", tags=["hand-off"], summary="Send deliveries again (same webhook-id)",
             responses={**FORBIDDEN, **INVALID})
def post_webhook_replay(body: ReplayIn, request: Request, principal: ApiUser, db: DbSession) -> ReplayOut:
    principal.require(principal.can_manage_users, "manage webhooks")
    replayed = replay_deliveries(db, web_state(request).settings, principal.tenant_id,
                                 delivery_ids=body.delivery_ids, event_id=body.event_id, all_dead=body.all_dead)
    db.commit()
    return ReplayOut(replayed=replayed)
