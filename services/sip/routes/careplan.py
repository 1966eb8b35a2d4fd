"""CarePlan: create, search (with `_include`) and the version routes.

What a search returns, and what it includes, is each plan as the caller may see it
(`ResourceAccess.visible` applies services/sip/redaction.py)."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from contracts.actor import Actor
from services.common.auth.dependency import authorize
from services.common.business_identifiers import (
    create_once,
    identifier_token,
    identifiers_from_fhir,
    if_none_exist,
)
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_body,
)
from services.common.fhir_time import now
from services.common.operations.definition import request_body
from services.common.resource_routes import add_search_routes, add_version_routes
from services.common.search import (
    all_of,
    date_bounds,
    follow_up_bound,
    organization_token,
    person_reference,
    person_token,
    token_code,
)
from services.common.search_answer import SearchService, search_answer
from services.common.search_declarations import (
    COMMON_PARAMETERS,
    Arguments,
    SearchDeclarations,
    SearchParameter,
    last_updated,
)
from services.sip.application import SipPlans
from services.sip.domain import Plan
from services.sip.fhir_mapping import (
    care_team_to_fhir,
    goal_to_fhir,
    plan_started_from_fhir,
    plan_to_fhir,
)
from services.sip.permissions import guard, may_start
from services.sip.projections import PlanIndex

PLAN_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
_R4 = "http://hl7.org/fhir/SearchParameter/"


def _organization(name: str, argument: str) -> Callable[[str], Arguments]:
    return lambda value: {argument: organization_token(name, value)}


def _period(value: str) -> Arguments:
    since, until = date_bounds("date", value)
    return {
        key: moment
        for key, moment in (("period_from", since), ("period_to", until))
        if moment is not None
    }


def _responsible_test(value: str) -> Callable[[Plan], bool]:
    """Asked again of the plan as the caller sees it: a plan found only through an entry
    withheld from the caller is no match."""
    hsa_id = organization_token("responsible-organization", value)
    return lambda plan: (
        plan.overall_responsible == hsa_id
        or any(i.responsible_organization == hsa_id for i in plan.interventions.values())
    )


def _person(name: str) -> SearchParameter:
    return SearchParameter(
        name,
        "reference",
        "CarePlan.subject.where(resolve() is Patient)",
        f"Whose plan: {name}=Patient/<personnummer>, or {name}:identifier=system|personnummer "
        "(by POST to _search, to keep the number out of URLs)",
        index=lambda value: {"subject": person_reference(name, value)},
        modifiers={"identifier": lambda value: {"subject": person_token(value)}},
        definition=_R4 + ("CarePlan-subject" if name == "subject" else "clinical-patient"),
    )


SEARCH = SearchDeclarations(
    "CarePlan",
    (
        *COMMON_PARAMETERS,
        SearchParameter(
            "identifier", "token", "CarePlan.identifier",
            "The creating system's identifier of the plan: system|value",
            index=lambda value: {"identifier": identifier_token(value, "identifier")},
            definition=_R4 + "clinical-identifier",
        ),
        _person("subject"),
        _person("patient"),
        SearchParameter(
            "status", "token", "CarePlan.status", " | ".join(PLAN_STATUSES),
            index=lambda value: {"status": {token_code("status", value, PLAN_STATUSES)}},
            definition=_R4 + "CarePlan-status",
        ),
        SearchParameter(
            "date", "date", "CarePlan.period",
            "The plan's period: ge<date> (still running then), le<date> (started by then)",
            index=_period, definition=_R4 + "clinical-date",
        ),
        SearchParameter(
            "care-team-organization", "token", "CarePlan.careTeam.participant.member",
            "HSA-id of an organisation taking part",
            index=_organization("care-team-organization", "member"),
        ),
        SearchParameter(
            "responsible-organization", "token", "CarePlan.activity.detail.performer",
            "HSA-id responsible for an intervention or overall",
            index=_organization("responsible-organization", "responsible"),
            test=_responsible_test,
        ),
        SearchParameter(
            "follow-up-due", "date", "CarePlan.activity.detail.scheduled",
            "le<date>: next follow-up due on or before (overdue: le<yesterday>)",
            index=lambda value: {"follow_up_due_by": follow_up_bound(value)},
        ),
        SearchParameter(
            "invitation-pending", "token", "CarePlan.careTeam.participant.member",
            "HSA-id of the caller's own organisation: open plans it is invited to and has "
            "not accepted",
            index=_organization("invitation-pending", "invitation_pending"),
        ),
    ),
    sort_keys={"_lastUpdated": last_updated, "date": lambda plan: plan.activated_at},
    includes=("CarePlan:care-team", "CarePlan:goal"),
)  # fmt: skip
CAREPLAN_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4B CarePlan (category SIP), status draft",
    "required": ["resourceType", "subject", "author"],
    "properties": {"resourceType": {"type": "string", "enum": ["CarePlan"]}},
}

Body = Annotated[dict[str, Any], Depends(fhir_body)]
Creator = Annotated[Actor, Depends(authorize("CarePlan", "c"))]


def plans(request: Request) -> SipPlans:
    return request.app.state.plans


def plan_index(request: Request) -> PlanIndex:
    return request.app.state.index


Plans = Annotated[SipPlans, Depends(plans)]
router = APIRouter(prefix="/fhir")


@router.post("/CarePlan", status_code=201, openapi_extra=request_body(CAREPLAN_SCHEMA))
def start_plan(request: Request, body: Body, actor: Creator, plans: Plans) -> FhirResponse:
    """Creates a draft plan; with identifiers, at most once per creating organisation and
    identifier (services/common/business_identifiers.py): `If-None-Exist` gets the plan made
    before (200), a plain create a 409 naming `CarePlan.identifier`."""
    guard("create").may_call(actor)  # the role matrix (services/sip/permissions.py)
    identifiers = identifiers_from_fhir(body, "CarePlan")
    condition = if_none_exist(request, identifiers, "CarePlan")
    started = plan_started_from_fhir(body, actor, now())
    may_start(actor, started["starting_organization"])
    return create_once(
        request.app.state.resources["CarePlan"].access,
        actor,
        plan_index(request).engine,
        identifiers,
        condition is not None,
        lambda claims, given: plans.start(claims=claims, **started, identifiers=given),
        plan_to_fhir,
    )


def _own_organization_only(query: dict[str, str], actor: Actor) -> None:
    """invitation-pending is asked only of the organisation it names: what waits for an
    organisation is its own worklist, not something to ask of another."""
    for occurrence in all_of(query, "invitation-pending"):
        for token in occurrence.split(","):
            if organization_token("invitation-pending", token) != actor.organization:
                raise FhirError(
                    403,
                    "forbidden",
                    "invitation-pending names the caller's own organisation only",
                    rule="invitation-pending-own-organization",
                )


def _included(plan: Plan, includes: set[str]) -> list[dict[str, Any]]:
    included = []
    if "CarePlan:care-team" in includes:
        included.append(care_team_to_fhir(plan))
    if "CarePlan:goal" in includes:
        included += [goal_to_fhir(plan, goal_id) for goal_id in plan.goals]
    return included


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    service = SearchService(
        SEARCH,
        request.app.state.resources["CarePlan"].access,
        plan_index(request).search,
        plan_to_fhir,
        _included,
        _own_organization_only,
    )
    return search_answer(request, query, actor, service)


add_search_routes(router, search, SEARCH)
add_version_routes(router, "CarePlan")
