"""Appointment and AppointmentResponse beyond the plan views' read, vread and `_history`
(services/sip/routes/views.py): `POST AppointmentResponse` (an answer, run as the plan's
`$answer-meeting`) and both types' searches.

A search reads the plans the caller's organisation takes part in (the person: their own)
from the plan index, discloses each through the plan's one way out (`ResourceAccess` over
`PlanDisclosure` and `redact`), and looks for matches only in what the caller sees; what a
page shows is logged as the plan searches are, one record per person and custodian, naming
the Appointments or AppointmentResponses shown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request

from contracts.actor import Actor
from services.common.auth.dependency import authorize
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_base,
    fhir_body,
    searchset,
)
from services.common.operations.definition import request_body
from services.common.operations.pipeline import run_operation
from services.common.paging import keyset_page, opened_query, page_links
from services.common.resource_routes import Disclosed, ResourceAccess, add_search_routes
from services.common.result_parameters import MAX_COUNT, ResultParameters
from services.common.search import date_bounds, token_code
from services.common.search_declarations import (
    COMMON_PARAMETERS,
    SearchDeclarations,
    SearchParameter,
)
from services.sip.domain import MEETING_ANSWERS, Plan
from services.sip.fhir_mapping import part_id
from services.sip.meetings.fhir import (
    answer_in,
    answers_of,
    appointment_of,
    appointment_response_of,
    appointment_status,
    participant_of_reference,
    participant_status,
)
from services.sip.meetings.operations import ANSWER
from services.sip.parts import Meeting
from services.sip.projections import PlanIndex

_R4 = "http://hl7.org/fhir/SearchParameter/"
APPOINTMENT_STATUSES = ("pending", "booked", "fulfilled", "cancelled")
PARTICIPANT_STATUSES = ("needs-action", *MEETING_ANSWERS)


@dataclass(frozen=True)
class Found:
    """One Appointment or AppointmentResponse of a plan as the caller sees it."""

    plan: Plan  # as seen
    meeting: Meeting
    part: str  # the meeting's id, or the answer's
    actors: tuple[str, ...] = ()  # the query's actors, which part-status asks about

    @property
    def id(self) -> str:
        """The resource's id, which `_id` asks about."""
        return part_id(self.plan, self.part)

    @property
    def modified_on(self) -> Any:
        """Its `lastUpdated`, which `_lastUpdated` asks about: the plan's, as the views show."""
        return self.plan.modified_on

    @property
    def participants(self) -> tuple[str, ...]:
        if self.part != self.meeting.id:
            found = answer_in(self.plan, self.part)
            return (found[1].participant,) if found else ()
        return (*self.meeting.participants, *filter(None, [self.meeting.organizer]))


def _participant(value: str) -> str:
    """An actor token: `<hsa-id>`, `participant-N`, `system|value` or `Organization/<hsa-id>`."""
    value = value.rpartition("|")[2].rpartition("/")[2]
    if not value:
        raise FhirError(400, "invalid", "actor names an organisation or a participant")
    return value


def _actor_test(value: str) -> Callable[[Found], bool]:
    named = _participant(value)
    return lambda found: named in found.participants


def _part_status_test(value: str) -> Callable[[Found], bool]:
    status = token_code("part-status", value, PARTICIPANT_STATUSES)

    def test(found: Found) -> bool:
        asked = found.actors or found.meeting.participants
        return any(
            participant_status(found.meeting, p) == status
            for p in asked
            if p in found.meeting.participants
        )

    return test


def _date_test(value: str) -> Callable[[Found], bool]:
    since, until = date_bounds("date", value)
    return lambda found: (
        (since is None or found.meeting.end >= since)
        and (until is None or found.meeting.start <= until)
    )


def _status_test(value: str) -> Callable[[Found], bool]:
    status = token_code("status", value, APPOINTMENT_STATUSES)
    return lambda found: appointment_status(found.meeting) == status


def _answer_test(value: str) -> Callable[[Found], bool]:
    status = token_code("part-status", value, MEETING_ANSWERS)

    def test(found: Found) -> bool:
        answered = answer_in(found.plan, found.part)
        return answered is not None and answered[1].answer == status

    return test


def _appointment_test(value: str) -> Callable[[Found], bool]:
    meeting = _appointment_argument(value)["meeting"]
    return lambda found: found.meeting.id == meeting


def _plan_argument(name: str) -> Callable[[str], dict[str, Any]]:
    def read(value: str) -> dict[str, Any]:
        plan_id = value.rpartition("CarePlan/")[2]
        try:
            return {"plan": UUID(plan_id)}
        except ValueError:
            refused = f"{name} refers to a CarePlan"
            raise FhirError(400, "invalid", refused, expression=name) from None

    return read


def _plan_parameter(name: str, expression: str) -> SearchParameter:
    return SearchParameter(
        name, "reference", expression, "The plan the meeting belongs to: CarePlan/<id>",
        index=_plan_argument(name),
    )  # fmt: skip


def _actor_parameter(name: str, expression: str, definition: str) -> SearchParameter:
    return SearchParameter(
        name, "reference", expression,
        "An invited organisation (its HSA-id, or Organization/<hsa-id>) or participant of the "
        "plan (participant-N); with part-status, the status is that participant's",
        test=_actor_test, definition=_R4 + definition,
    )  # fmt: skip


APPOINTMENT_SEARCH = SearchDeclarations(
    "Appointment",
    (
        *COMMON_PARAMETERS,
        _actor_parameter("actor", "Appointment.participant.actor", "Appointment-actor"),
        _actor_parameter("participant", "Appointment.participant.actor", "Appointment-actor"),
        SearchParameter(
            "part-status", "token", "Appointment.participant.status",
            " | ".join(PARTICIPANT_STATUSES) + ": a participant's answer to the current time "
            "(needs-action with actor=<own HSA-id>: the invitations it has to answer)",
            test=_part_status_test, definition=_R4 + "Appointment-part-status",
        ),
        SearchParameter(
            "status", "token", "Appointment.status", " | ".join(APPOINTMENT_STATUSES),
            test=_status_test,
            definition=_R4 + "Appointment-status",
        ),
        SearchParameter(
            "date", "date", "Appointment.start",
            "When the meeting is: ge<date> (not over by then), le<date> (begun by then)",
            test=_date_test, definition=_R4 + "Appointment-date",
        ),
        _plan_parameter("based-on", "Appointment.basedOn"),
        _plan_parameter("supporting-info", "Appointment.supportingInformation"),
    ),
)  # fmt: skip
RESPONSE_SEARCH = SearchDeclarations(
    "AppointmentResponse",
    (
        *COMMON_PARAMETERS,
        SearchParameter(
            "appointment", "reference", "AppointmentResponse.appointment",
            "The meeting answered: Appointment/<id>",
            index=lambda value: _appointment_argument(value),
            test=_appointment_test,
            definition=_R4 + "AppointmentResponse-appointment",
        ),
        _actor_parameter("actor", "AppointmentResponse.actor", "AppointmentResponse-actor"),
        SearchParameter(
            "part-status", "token", "AppointmentResponse.participantStatus",
            " | ".join(MEETING_ANSWERS),
            test=_answer_test,
            definition=_R4 + "AppointmentResponse-part-status",
        ),
    ),
)  # fmt: skip


def _appointment_argument(value: str) -> dict[str, Any]:
    resource_id = value.rpartition("Appointment/")[2]
    plan, dash, meeting = resource_id[:36], resource_id[36:37], resource_id[37:]
    try:
        if dash != "-" or not meeting:
            raise ValueError(value)
        return {"plan": UUID(plan), "meeting": meeting}
    except ValueError:
        raise FhirError(
            400, "invalid", "appointment refers to an Appointment", expression="appointment"
        ) from None


class MeetingSearch:
    """One of the two types' searches over the plans the caller may see."""

    def __init__(
        self,
        declarations: SearchDeclarations,
        parts: Callable[[Plan], Iterator[tuple[Meeting, str]]],
        render: Callable[[Plan, str], dict[str, Any]],
    ) -> None:
        self.declarations, self.parts, self.render = declarations, parts, render

    def candidates(self, index: PlanIndex, actor: Actor) -> Callable[..., list[UUID]]:
        """The index's plans the caller might see: the person's own, or those its
        organisation takes part in (the disclosure rule decides each)."""

        def search(plan: UUID | None = None, meeting: str | None = None) -> list[UUID]:
            if actor.role == "patient":
                found = index.search(subject=(None, actor.patient or ""))
            else:
                found = index.search(member=actor.organization or "")
            return [i for i in found if plan is None or i == plan]

        return search

    def __call__(self, request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
        resource_type = self.declarations.resource_type
        kind = f"search:{resource_type}"
        query, position = opened_query(request, kind, query)
        result = ResultParameters.of(query, MAX_COUNT, self.declarations.sort_keys)
        result.check_elements(resource_type)
        asked = self.declarations.asked(query)
        actors = tuple(
            _participant(value)
            for name in ("actor", "participant")
            for occurrence in [query.get(name)]
            if occurrence
            for value in occurrence.split(",")
        )
        access: ResourceAccess = request.app.state.resources["CarePlan"].access
        ids = asked.matching_ids(self.candidates(request.app.state.index, actor))
        plans = (access.aggregate(plan_id) for plan_id in ids)
        found: list[tuple[Found, Plan, Disclosed]] = []
        for plan, disclosed in access.disclosed_matches(actor, plans, None):
            for meeting, part in self.parts(disclosed.current):
                item = Found(disclosed.current, meeting, part, actors)
                if asked.matches(item):
                    found.append((item, plan, disclosed))
        ordered = sorted(found, key=lambda f: _key(f[0]))
        page = keyset_page(ordered, lambda f: _key(f[0]), position, result.count)
        self._log(access, actor, page.items, urlencode(query), page.total)
        links = page_links(request, kind, resource_type, asked.used, page, result.count)
        rendered = [self.render(item.plan, item.part) for item, _, _ in page.items]
        bundle = searchset(fhir_base(request), rendered, "", total=page.total, links=links)
        return FhirResponse(result.finish(bundle))

    def _log(
        self,
        access: ResourceAccess,
        actor: Actor,
        shown: list[tuple[Found, Plan, Disclosed]],
        query: str,
        total: int,
    ) -> None:
        """One record per person and custodian, as the plans' searches log
        (`ResourceAccess.log_shown`), naming this type's resources shown."""
        records: dict[tuple[str, str, str | None], tuple[list[str], set[str]]] = {}
        for item, plan, disclosed in shown:
            person = plan.person_identifier
            for custodian in access.logged_custodians(disclosed.current):
                entities, consents = records.setdefault(
                    (person["system"], person["value"], custodian), ([], set())
                )
                entities.append(f"{self.declarations.resource_type}/{part_id(plan, item.part)}")
                consents.update(disclosed.disclosure.consents)
        if not records:
            detail = f"{total} matches counted, none shown" if total else "no match shown"
            access.log(actor, "search-type", query=query, detail=detail)
            return
        access.log_all(
            [
                access.record(
                    actor,
                    "search-type",
                    patient={"system": system, "value": value},
                    custodian=custodian,
                    entity=" ".join(entities),
                    consents=sorted(consents),
                    query=query,
                )
                for (system, value, custodian), (entities, consents) in records.items()
            ]
        )


def _key(found: Found) -> list[str]:
    return [found.meeting.start.isoformat(), str(found.plan.id), found.part]


def _meetings(plan: Plan) -> Iterator[tuple[Meeting, str]]:
    for meeting in plan.meetings.values():
        yield meeting, meeting.id


def _answers(plan: Plan) -> Iterator[tuple[Meeting, str]]:
    for answer_id in answers_of(plan):
        found = answer_in(plan, answer_id)
        if found is not None:
            yield found[0], answer_id


search_appointments = MeetingSearch(APPOINTMENT_SEARCH, _meetings, appointment_of)
search_responses = MeetingSearch(RESPONSE_SEARCH, _answers, appointment_response_of)

router = APIRouter(prefix="/fhir")
add_search_routes(router, search_appointments, APPOINTMENT_SEARCH)
add_search_routes(router, search_responses, RESPONSE_SEARCH)

# A parameter of $answer-meeting as the AppointmentResponse's element names it.
ELEMENT = {
    "answer": "participantStatus",
    "proposedStart": "start",
    "proposedEnd": "end",
    "comment": "comment",
    "organization": "actor",
    "participant": "actor",
    "meeting": "appointment",
}
Answerer = Annotated[Actor, Depends(authorize("CarePlan", "u"))]
IfMatch = Annotated[str | None, Header()]


def answer_parameters(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the plan's id, `$answer-meeting`'s Parameters) of a posted AppointmentResponse."""
    if body.get("resourceType") != "AppointmentResponse":
        raise FhirError(400, "invalid", "expected resourceType 'AppointmentResponse'")
    reference = body.get("appointment")
    value = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(value, str) or not value.startswith("Appointment/"):
        raise FhirError(
            400, "required", "appointment: a reference to the Appointment answered",
            expression="AppointmentResponse.appointment",
        )  # fmt: skip
    resource_id = value.removeprefix("Appointment/")
    plan_id, meeting = resource_id[:36], resource_id[37:]
    status = body.get("participantStatus")
    if not isinstance(status, str):
        raise FhirError(
            400, "required", "participantStatus: accepted | declined | tentative",
            expression="AppointmentResponse.participantStatus",
        )  # fmt: skip
    parameters: list[dict[str, Any]] = [
        {"name": "meeting", "valueString": meeting},
        {"name": "answer", "valueCode": status},
    ]
    if "actor" in body:
        named = participant_of_reference(body["actor"])
        if named is None:
            raise FhirError(
                400, "invalid", "actor: an identifier of an invited organisation (HSA-id) or "
                "participant of the plan", expression="AppointmentResponse.actor",
            )  # fmt: skip
        name = "participant" if named.startswith("participant-") else "organization"
        parameters.append({"name": name, "valueString": named})
    for element, name, kind in (
        ("start", "proposedStart", "valueDateTime"),
        ("end", "proposedEnd", "valueDateTime"),
        ("comment", "comment", "valueString"),
    ):
        if element in body:
            parameters.append({"name": name, kind: body[element]})
    return plan_id, {"resourceType": "Parameters", "parameter": parameters}


def _in_resource_terms(error: FhirError) -> FhirError:
    """A refusal naming `$answer-meeting`'s parameter names the AppointmentResponse's element."""
    expression = error.expression or ""
    for name, element in ELEMENT.items():
        if expression == f"Parameters.parameter.where(name='{name}')" or expression == name:
            error.expression = f"AppointmentResponse.{element}"
    return error


RESPONSE_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4B AppointmentResponse: appointment (the Appointment answered), "
    "participantStatus (accepted | declined | tentative), actor (the invited participant, by "
    "identifier; default: the caller's organisation, or the person), start and end (another "
    "time proposed, with tentative), comment",
    "required": ["resourceType", "appointment", "participantStatus"],
    "properties": {"resourceType": {"type": "string", "enum": ["AppointmentResponse"]}},
}


@router.post(
    "/AppointmentResponse",
    status_code=201,
    name="create AppointmentResponse",
    openapi_extra=request_body(RESPONSE_SCHEMA),
)
def answer(
    request: Request,
    actor: Answerer,
    body: Annotated[dict[str, Any], Depends(fhir_body)],
    if_match: IfMatch = None,
) -> FhirResponse:
    """An invited participant's answer: `$answer-meeting` of the meeting's plan. The same
    answer posted again changes nothing and answers 200 with the answer given."""
    plan_id, parameters = answer_parameters(body)
    try:
        answered = run_operation(ANSWER, request, actor, parameters, plan_id, if_match)
    except FhirError as error:
        raise _in_resource_terms(error) from None
    if "location" in answered.headers:
        answered.status_code = 201
    return answered
