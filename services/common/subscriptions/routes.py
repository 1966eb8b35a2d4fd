"""Subscription and SubscriptionTopic over FHIR: a record system (role `integration`, scope
`system/Subscription.*`) makes, reads, changes and ends its organisation's subscriptions,
asks `$status`, and fetches missed notifications by number with `$events`. Another
organisation's subscription is 404, as if it did not exist."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from contracts.actor import Actor
from services.common.auth.dependency import authorize
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_base,
    fhir_body,
    resource_response,
    searchset,
)
from services.common.fhir_time import fhir_instant, now
from services.common.operations.declaration import NoParameters, Operation
from services.common.operations.definition import (
    operation_request_body,
    request_body,
    returned_type,
)
from services.common.parameters import Code, OperationParameters, String, parse_parameters
from services.common.personal_data.keys import PersonalDataKeys
from services.common.resource_routes import add_search_routes
from services.common.result_parameters import MAX_COUNT, count_parameter
from services.common.search_declarations import AskedSearch, SearchDeclarations, SearchParameter
from services.common.subscriptions.fhir_mapping import (
    Requested,
    subscription_from_fhir,
    subscription_to_fhir,
)
from services.common.subscriptions.judging import Moment, Published
from services.common.subscriptions.notification import (
    QUERY_EVENT,
    QUERY_STATUS,
    notification_bundle,
    status_parameters,
)
from services.common.subscriptions.person_filter import filtered_person, person_columns
from services.common.subscriptions.store import SubscriptionRow, SubscriptionStore
from services.common.subscriptions.topics import EVENTS, topic_resource
from services.common.subscriptions.worker import DeliveryWorker

MAX_EVENTS_FETCHED = 500


class SubscriptionEvents(OperationParameters):
    # Named and typed as the Backport IG's $events names them (event numbers are strings
    # there: int64 in JSON).
    eventsSinceNumber: String | None = None
    eventsUntilNumber: String | None = None
    content: Code | None = None


# The Backport IG's `$status` and `$events` (its OperationDefinitions
# backport-subscription-status and backport-subscription-events), declared here so that their
# definitions are served and listed like every other operation; routed below, by GET and POST.
STATUS_OPERATION = Operation(
    "status",
    "Subscription",
    "The subscription's status as a subscription-status Parameters in a searchset Bundle "
    "(Subscriptions Backport IG: backport-subscription-status)",
    NoParameters,
    None,
    changes_state=False,
    method="GET",
    returns="Bundle",
    disclosed=False,
)
EVENTS_OPERATION = Operation(
    "events",
    "Subscription",
    "The numbered notifications from eventsSinceNumber to eventsUntilNumber (at most "
    f"{MAX_EVENTS_FETCHED}), each as the subscriber may be told it now; the telling is logged "
    "as a delivery (Subscriptions Backport IG: backport-subscription-events)",
    SubscriptionEvents,
    None,
    changes_state=False,
    method="GET",
    returns="Bundle",
    disclosed=False,
)
SUBSCRIPTION_OPERATIONS: list[Operation[Any]] = [STATUS_OPERATION, EVENTS_OPERATION]


def _documented(operation: Operation[Any], *, by_post: bool) -> dict[str, Any]:
    """The route's OpenAPI: the declaration's answer type, and by POST its Parameters body."""
    returns = {"x-fhir-returns": returned_type(operation)}
    return operation_request_body(operation) | returns if by_post else returns


SUBSCRIPTION_SEARCH = SearchDeclarations(
    "Subscription",
    (
        SearchParameter(
            "status",
            "token",
            "Subscription.status",
            "requested | active | error | off",
            test=lambda status: lambda row: row.status == status,
        ),
    ),
)


@dataclass(frozen=True)
class Subscriptions:
    """What the routes read: `app.state.subscriptions`."""

    store: SubscriptionStore
    published: Published
    worker: DeliveryWorker
    endpoint_allowances: frozenset[str]

    @property
    def keys(self) -> PersonalDataKeys | None:
        return getattr(self.published.access.application, "personal_data", None)

    def heads(self) -> dict[str, int]:
        recorder = self.published.access.application.recorder
        return {EVENTS: recorder.max_notification_id() or 0}


TOPIC_SEARCH = SearchDeclarations("SubscriptionTopic", ())


def _asked(search: SearchDeclarations, query: dict[str, str]) -> AskedSearch:
    """The query read through the declarations: all fit one page, but a bad `_count` or an
    unknown parameter is still refused."""
    count_parameter(query.get("_count"), MAX_COUNT)
    return search.asked(query)


def _searchset(
    request: Request, resource_type: str, resources: list[dict[str, Any]], asked: AskedSearch
) -> FhirResponse:
    """Its self link the query as used, by GET whichever way it was asked."""
    self_link = f"{fhir_base(request)}/{resource_type}"
    if asked.used:
        self_link += f"?{urlencode(asked.used)}"
    return FhirResponse(searchset(fhir_base(request), resources, self_link))


def served(request: Request) -> Subscriptions:
    return request.app.state.subscriptions


def _record_system(interaction: Any) -> Any:
    check = authorize("Subscription", interaction)

    def dependency(request: Request) -> Actor:
        actor = check(request)
        if actor.role != "integration" or not actor.organization:
            raise FhirError(
                403,
                "forbidden",
                "subscriptions are made by record systems (role integration) of an organisation",
            )
        return actor

    return dependency


Served = Annotated[Subscriptions, Depends(served)]
Creator = Annotated[Actor, Depends(_record_system("c"))]
Reader = Annotated[Actor, Depends(_record_system("r"))]
Searcher = Annotated[Actor, Depends(_record_system("s"))]
Updater = Annotated[Actor, Depends(_record_system("u"))]
Deleter = Annotated[Actor, Depends(_record_system("d"))]
Body = Annotated[dict[str, Any], Depends(fhir_body)]
SUBSCRIPTION_SCHEMA = {
    "type": "object",
    "description": "A FHIR Subscription (Subscriptions Backport IG, R4 form): criteria a topic's "
    "canonical URL, a rest-hook channel",
    "required": ["resourceType", "status", "reason", "criteria", "channel"],
    "properties": {"resourceType": {"type": "string", "enum": ["Subscription"]}},
}
router = APIRouter(prefix="/fhir", tags=["subscriptions"])


def owned(subscriptions: Subscriptions, actor: Actor, id: str) -> SubscriptionRow:
    row = subscriptions.store.get(id) if len(id) <= 64 else None
    if row is None or row.owner != actor.organization:
        raise FhirError(404, "not-found", f"no Subscription with id '{id[:64]}'")
    return row


def shown(subscriptions: Subscriptions, row: SubscriptionRow) -> dict[str, Any]:
    topic = subscriptions.published.topic(row.topic)
    assert topic is not None, f"the topic {row.topic} is no longer offered"
    return subscription_to_fhir(row, topic, filtered_person(subscriptions.keys, row))


def _settings(
    subscriptions: Subscriptions, subscription_id: str, requested: Requested
) -> dict[str, Any]:
    return {
        "topic": requested.topic.code,
        "source": requested.topic.source,
        **person_columns(subscriptions.keys, subscription_id, requested.person),
        "parts": ",".join(requested.parts) if requested.parts else None,
        "endpoint": requested.endpoint,
        "payload": requested.payload,
        "heartbeat_seconds": requested.heartbeat_seconds,
        "timeout_seconds": requested.timeout_seconds,
        "reason": requested.reason,
        "status": requested.status,
        "last_updated": fhir_instant(now()),
    }


@router.post("/Subscription", status_code=201, openapi_extra=request_body(SUBSCRIPTION_SCHEMA))
def create(actor: Creator, subscriptions: Served, body: Body) -> FhirResponse:
    """Starts from the head of its source: a subscription hears of what happens after it."""
    requested = subscription_from_fhir(
        body, subscriptions.published.topics, actor, subscriptions.endpoint_allowances
    )
    source_head = (
        subscriptions.heads()[EVENTS]
        if requested.topic.source == EVENTS
        else subscriptions.store.timed_head()
    )
    subscription_id = str(uuid.uuid4())
    row = SubscriptionRow(
        id=subscription_id,
        owner=actor.organization or "",
        owner_subject=actor.subject,
        cursor=source_head,
        events_count=0,
        delivered_through=0,
        attempts=0,
        failing_since=None,
        next_attempt_at=None,
        heartbeat_due_at=None,
        last_error=None,
        version=1,
        **_settings(subscriptions, subscription_id, requested),
    )
    subscriptions.store.add(row)
    return resource_response(shown(subscriptions, row), status=201)


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    """The caller's organisation's subscriptions (`status=` narrows them)."""
    subscriptions = served(request)
    asked = _asked(SUBSCRIPTION_SEARCH, query)
    rows = [
        row for row in subscriptions.store.owned_by(actor.organization or "") if asked.matches(row)
    ]
    resources = [shown(subscriptions, row) for row in rows]
    return _searchset(request, "Subscription", resources, asked)


@router.get("/Subscription/{id}")
def read(id: str, actor: Reader, subscriptions: Served) -> FhirResponse:
    return resource_response(shown(subscriptions, owned(subscriptions, actor, id)))


@router.put("/Subscription/{id}", openapi_extra=request_body(SUBSCRIPTION_SCHEMA))
def replace(id: str, actor: Updater, subscriptions: Served, body: Body) -> FhirResponse:
    """A changed subscription keeps its cursor and its numbering; set to `requested` again
    it is handshaken again (how an owner turns on one that gave up)."""
    row = owned(subscriptions, actor, id)
    if body.get("id") not in (None, id):
        raise FhirError(
            400, "invalid", "the body's id is the id in the URL", expression="Subscription.id"
        )
    requested = subscription_from_fhir(
        body, subscriptions.published.topics, actor, subscriptions.endpoint_allowances
    )
    if requested.topic.code != row.topic:
        raise FhirError(
            422,
            "invalid",
            "a subscription's topic stays what it was: make a new one",
            expression="Subscription.criteria",
        )
    changed = row.with_(version=row.version + 1, **_settings(subscriptions, id, requested))
    subscriptions.store.replace_settings(changed)
    return resource_response(shown(subscriptions, subscriptions.store.get(id) or changed))


@router.delete("/Subscription/{id}")
def delete(id: str, actor: Deleter, subscriptions: Served) -> FhirResponse:
    subscriptions.store.remove(owned(subscriptions, actor, id).id)
    return Response(status_code=204)


@router.post(
    "/Subscription/{id}/$status", openapi_extra=_documented(STATUS_OPERATION, by_post=True)
)
def status_by_post(id: str, actor: Reader, subscriptions: Served, body: Body) -> FhirResponse:
    parse_parameters(NoParameters, body, STATUS_OPERATION.name)
    return status(id, actor, subscriptions)


@router.get(
    "/Subscription/{id}/$status", openapi_extra=_documented(STATUS_OPERATION, by_post=False)
)
def status(id: str, actor: Reader, subscriptions: Served) -> FhirResponse:
    row = owned(subscriptions, actor, id)
    parameters = status_parameters(row, QUERY_STATUS, [])
    entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": parameters,
        "search": {"mode": "match"},
    }
    return FhirResponse(
        {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [entry]}
    )


@router.get(
    "/Subscription/{id}/$events", openapi_extra=_documented(EVENTS_OPERATION, by_post=False)
)
def events(
    id: str,
    actor: Reader,
    subscriptions: Served,
    since: Annotated[int | None, Query(alias="eventsSinceNumber", ge=1, le=2**62)] = None,
    until: Annotated[int | None, Query(alias="eventsUntilNumber", ge=1, le=2**62)] = None,
    content: Annotated[str | None, Query(pattern="^(id-only|full-resource)$")] = None,
) -> FhirResponse:
    """The numbered notifications from `eventsSinceNumber` to `eventsUntilNumber` (at most
    500), each as the subscriber may be told it now; the telling is logged as a delivery."""
    return _events(owned(subscriptions, actor, id), subscriptions, since, until, content)


@router.post(
    "/Subscription/{id}/$events", openapi_extra=_documented(EVENTS_OPERATION, by_post=True)
)
def events_by_post(id: str, actor: Reader, subscriptions: Served, body: Body) -> FhirResponse:
    asked = parse_parameters(SubscriptionEvents, body, EVENTS_OPERATION.name)
    row = owned(subscriptions, actor, id)
    since = _event_number(asked.eventsSinceNumber, "eventsSinceNumber")
    until = _event_number(asked.eventsUntilNumber, "eventsUntilNumber")
    if asked.content not in (None, "id-only", "full-resource"):
        raise FhirError(
            400, "invalid", "content is id-only or full-resource",
            expression="Parameters.parameter.where(name='content')",
        )  # fmt: skip
    return _events(row, subscriptions, since, until, asked.content)


def _event_number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 2**62:
        raise FhirError(
            400, "invalid", f"{name} is an event number (a positive integer)",
            expression=f"Parameters.parameter.where(name='{name}')",
        )  # fmt: skip
    return int(value)


def _events(
    row: SubscriptionRow,
    subscriptions: Subscriptions,
    since: int | None,
    until: int | None,
    content: str | None,
) -> FhirResponse:
    last = min(until or row.events_count, row.events_count)
    first = since or max(1, last - MAX_EVENTS_FETCHED + 1)
    last = min(last, first + MAX_EVENTS_FETCHED - 1)
    asked = row.with_(payload=content or row.payload)
    moment = Moment(subscriptions.published)
    told = [moment.told(asked, n) for n in subscriptions.store.notifications(row.id, first, last)]
    subscriptions.worker.record([record for _, record in told if record is not None])
    return FhirResponse(notification_bundle(asked, QUERY_EVENT, [t for t, _ in told]))


TopicReader = Annotated[Actor, Depends(authorize("SubscriptionTopic", "r"))]


def topics(request: Request, query: dict[str, str], _: Actor) -> FhirResponse:
    asked = _asked(TOPIC_SEARCH, query)
    resources = [topic_resource(topic) for topic in served(request).published.topics]
    return _searchset(request, "SubscriptionTopic", resources, asked)


add_search_routes(router, search, SUBSCRIPTION_SEARCH, searcher=_record_system("s"))
add_search_routes(router, topics, TOPIC_SEARCH)


@router.get("/SubscriptionTopic/{id}")
def topic(id: str, _: TopicReader, subscriptions: Served) -> FhirResponse:
    found = subscriptions.published.topic(id)
    if found is None:
        raise FhirError(404, "not-found", f"no SubscriptionTopic with id '{id[:64]}'")
    return resource_response(topic_resource(found))
