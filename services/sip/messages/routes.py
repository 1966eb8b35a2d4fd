"""Communication (a message): create, read, vread, `_history` and search, through the
messages' one way out (`ResourceAccess` over `MessageDisclosure`), with the CarePlan's rules
for 401/403/404, history, identifiers and the access log (services/common/resource_routes.py,
services/common/business_identifiers.py). Marking a message read is an operation
(services/sip/messages/operations.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from contracts.actor import Actor
from services.common.auth.dependency import authorize
from services.common.business_identifiers import (
    create_once,
    identifiers_from_fhir,
    if_none_exist,
)
from services.common.domain import NotFound
from services.common.fhir_api import FhirError, FhirResponse, fhir_body
from services.common.fhir_time import now
from services.common.operations.definition import request_body
from services.common.resource_routes import ResourceAccess, add_search_routes, add_version_routes
from services.common.search import date_bounds, organization_token, token_code
from services.common.search_answer import SearchService, search_answer
from services.common.search_declarations import (
    COMMON_PARAMETERS,
    SearchDeclarations,
    SearchParameter,
    last_updated,
)
from services.sip.discharge.application import STAY_RESOURCE_TYPE
from services.sip.messages.application import may_send, send
from services.sip.messages.disclosure import MESSAGE_RESOURCE_TYPE
from services.sip.messages.fhir import CATEGORY_SYSTEM, message_to_fhir, posted_message
from services.sip.messages.message import CATEGORIES, Message
from services.sip.messages.projections import MessageIndex

_R4 = "http://hl7.org/fhir/SearchParameter/"


def _organization(name: str, argument: str) -> SearchParameter:
    def read(value: str) -> dict[str, Any]:
        return {argument: organization_token(name, value)}

    return SearchParameter(
        name, "reference", f"Communication.{name}",
        f"{name}=<HSA-id> of an organisation or of one of its units (or "
        f"{name}:identifier=urn:oid:1.2.752.29.4.19|<HSA-id>)",
        index=read, modifiers={"identifier": read}, definition=_R4 + f"Communication-{name}",
    )  # fmt: skip


def _about(name: str, resource_type: str) -> SearchParameter:
    def read(value: str) -> dict[str, Any]:
        kind, _, id = value.rpartition("/")
        if kind.rpartition("/")[2] not in ("", resource_type):
            raise FhirError(400, "invalid", f"{name} refers to a {resource_type}", expression=name)
        return {"about": (resource_type, id)}

    return SearchParameter(
        name, "reference", f"Communication.{name}",
        f"The {resource_type} the message is about: {name}={resource_type}/<id>",
        index=read, definition=_R4 + f"Communication-{name}",
    )  # fmt: skip


def _received_test(value: str) -> Callable[[Message], bool]:
    since, until = date_bounds("received", value)

    def test(message: Message) -> bool:
        moment = message.received
        return (
            moment is not None
            and (since is None or moment >= since)
            and (until is None or moment <= until)
        )

    return test


SEARCH = SearchDeclarations(
    MESSAGE_RESOURCE_TYPE,
    (
        *COMMON_PARAMETERS,
        _organization("recipient", "recipient"),
        _organization("sender", "sender"),
        SearchParameter(
            "received", "date", "Communication.received",
            "When every recipient had read it (eq/ge/gt/le/lt); received:missing=true: not "
            "read yet, by the recipient named in `recipient` when one is, else by someone",
            test=_received_test,
            modifiers={"missing": lambda value: {
                "unread": token_code("received:missing", value, ("true", "false")) == "true"}},
            definition=_R4 + "Communication-received",
        ),
        SearchParameter(
            "category", "token", "Communication.category",
            f"category={' | '.join(CATEGORIES)} (system {CATEGORY_SYSTEM}): a message a unit "
            "wrote, or a stay's admission notice",
            index=lambda value: {"category": token_code("category", value, CATEGORIES)},
            definition=_R4 + "Communication-category",
        ),
        _about("encounter", STAY_RESOURCE_TYPE),
        _about("based-on", "CarePlan"),
    ),
    sort_keys={"_lastUpdated": last_updated, "sent": lambda message: message.sent_at},
)  # fmt: skip


class MessageScan:
    """The messages' search: the candidates the read model names for the caller are read and
    tested; the disclosure rule then keeps what the caller may see."""

    def __init__(
        self, access: ResourceAccess, candidates: Callable[[], Iterable[UUID]] | None = None
    ) -> None:
        self.access = access
        self.candidates = candidates or access.aggregate_ids

    def __call__(
        self,
        *,
        recipient: str | None = None,
        sender: str | None = None,
        unread: bool | None = None,
        about: tuple[str, str] | None = None,
        category: str | None = None,
    ) -> list[UUID]:
        found = []
        for message_id in self.candidates():
            try:
                message: Message = self.access.aggregate(message_id)
            except NotFound:
                continue
            to = [r for r in message.recipients.values() if recipient in (r.organization, r.unit)]
            if recipient is not None and not to:
                continue
            if sender is not None and sender not in (message.custodian, message.sender_unit):
                continue
            if category is not None and message.category != category:
                continue
            if about is not None and (message.about["type"], message.about["id"]) != about:
                continue
            if unread is not None:
                # Unread by the recipient named, or by someone where none is.
                waiting = [r for r in (to or message.recipients.values()) if r.read is None]
                if bool(waiting) != unread:
                    continue
            found.append(message_id)
        return found


COMMUNICATION_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4B Communication: payload[0].contentString, recipient (HSA-ids of "
    "organisations or units taking part), basedOn [CarePlan] or encounter (the stay)",
    "required": ["resourceType", "recipient", "payload"],
    "properties": {"resourceType": {"type": "string", "enum": ["Communication"]}},
}
Body = Annotated[dict[str, Any], Depends(fhir_body)]
Sender = Annotated[Actor, Depends(authorize(MESSAGE_RESOURCE_TYPE, "c"))]
router = APIRouter(prefix="/fhir")


def _record(request: Request, actor: Actor, about: dict[str, str]) -> Any:
    """The plan or the stay, loaded through its own disclosure rule (404, logged, for an
    organisation it does not concern)."""
    access: ResourceAccess = request.app.state.resources[about["type"]].access
    record, _ = access.for_change(actor, UUID(about["id"]), "create")
    return record


def _answered(request: Request, actor: Actor, message_id: UUID | None) -> Message | None:
    """The message answered or corrected, if the caller may read it (its read is logged)."""
    if message_id is None:
        return None
    access: ResourceAccess = request.app.state.resources[MESSAGE_RESOURCE_TYPE].access
    entity = f"{MESSAGE_RESOURCE_TYPE}/{message_id}"
    try:
        return access.open(actor, message_id, "read", entity)
    except NotFound:
        raise FhirError(
            422, "invalid", "Communication.inResponseTo: no message the caller may read",
            expression="Communication.inResponseTo[0]",
        ) from None  # fmt: skip


@router.post(
    f"/{MESSAGE_RESOURCE_TYPE}", status_code=201, openapi_extra=request_body(COMMUNICATION_SCHEMA)
)
def send_message(request: Request, body: Body, actor: Sender) -> FhirResponse:
    """Sends a message about one plan or one stay from the caller's unit; with identifiers,
    at most once per sending organisation and identifier (`If-None-Exist` gets the message
    sent before, a plain create a 409 naming `Communication.identifier`)."""
    may_send(actor.role, actor.organization)
    identifiers = identifiers_from_fhir(body, MESSAGE_RESOURCE_TYPE)
    condition = if_none_exist(request, identifiers, MESSAGE_RESOURCE_TYPE)
    posted = posted_message(body)
    record = _record(request, actor, posted.about)
    subject = body.get("subject")
    if subject is not None and (
        not isinstance(subject, dict) or subject.get("identifier") != record.subject
    ):
        raise FhirError(
            422, "invalid", "Communication.subject: the person the plan or the stay is about",
            expression="Communication.subject",
        )  # fmt: skip
    replies_to = _answered(request, actor, posted.replies_to)
    resource = request.app.state.resources[MESSAGE_RESOURCE_TYPE]
    state = request.app.state

    def create(claims: Any, given: list[dict[str, str]]) -> Message:
        message = send(
            record, posted, replies_to=replies_to, consent_gate=state.consent_gate_uncached,
            at=now(), by=actor.as_event_data(), identifiers=given,
        )  # fmt: skip
        claims.save(state.plans, message)
        return message

    return create_once(
        resource.access, actor, state.index.engine, identifiers, condition is not None, create,
        message_to_fhir,
    )  # fmt: skip


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    access = request.app.state.resources[MESSAGE_RESOURCE_TYPE].access
    index: MessageIndex = request.app.state.message_index
    scan = MessageScan(access, lambda: index.candidates_for(actor))
    service = SearchService(SEARCH, access, scan, message_to_fhir)
    return search_answer(request, query, actor, service)


add_search_routes(router, search, SEARCH)
add_version_routes(router, MESSAGE_RESOURCE_TYPE)
