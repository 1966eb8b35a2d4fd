"""CarePlan: create, search (with `_include`) and the version routes.

What a search returns, and what it includes, is each plan as the caller may see it
(`ResourceAccess.visible` applies services/sip/redaction.py)."""

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

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
    fhir_base,
    fhir_body,
    searchset,
)
from services.common.fhir_time import now
from services.common.operations.definition import request_body
from services.common.paging import (
    MAX_COUNT,
    count_parameter,
    opened_query,
    page_links,
    summary_count,
)
from services.common.resource_routes import add_search_routes, add_version_routes
from services.common.search import (
    all_of,
    date_range,
    follow_up_bound,
    organization_token,
    person_token,
    search_parameters,
    token_choice,
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
SEARCH_PARAMETERS = {
    "identifier": "The creating system's identifier of the plan: system|value",
    "subject:identifier": "Whose plan: system|personnummer",
    "status": "draft | active | revoked | completed",
    "date": "The plan's period: ge<date> (still running then), le<date> (started by then)",
    "care-team-organization": "HSA-id of an organisation taking part",
    "responsible-organization": "HSA-id responsible for an intervention or overall",
    "follow-up-due": "le<date>: next follow-up due on or before (overdue: le<yesterday>)",
    "invitation-pending": "HSA-id of the caller's own organisation: open plans it is invited "
    "to and has not accepted",
}
INCLUDES = {"CarePlan:care-team", "CarePlan:goal"}
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


def _includes(query: dict[str, str]) -> set[str]:
    includes = {name for value in all_of(query, "_include") for name in value.split(",")}
    includes.discard("")
    if includes - INCLUDES:
        raise FhirError(400, "not-supported", f"_include supports {', '.join(sorted(INCLUDES))}")
    return includes


def _still_matches(query: dict[str, str]) -> Callable[[Plan], bool] | None:
    """The search parameters that match on entries, asked again of the plan as the caller
    sees it: a plan found only through an entry withheld from the caller is no match. (The
    others match the plan's frame, which every reader sees.)"""
    responsible = query.get("responsible-organization")
    if not responsible:
        return None
    hsa_id = organization_token("responsible-organization", responsible)

    def matches(plan: Plan) -> bool:
        return plan.overall_responsible == hsa_id or any(
            i.responsible_organization == hsa_id for i in plan.interventions.values()
        )

    return matches


def _own_organization(name: str, token: str | None, actor: Actor) -> str | None:
    """A search parameter only the organisation it names may ask: what waits for an
    organisation is its own worklist, not something to ask of another."""
    hsa_id = organization_token(name, token)
    if hsa_id is not None and hsa_id != actor.organization:
        raise FhirError(
            403,
            "forbidden",
            f"{name} names the caller's own organisation only",
            rule=f"{name}-own-organization",
        )
    return hsa_id


def _matching_ids(request: Request, query: dict[str, str], actor: Actor) -> list[Any]:
    parameters = search_parameters(query, set(SEARCH_PARAMETERS))
    subject = parameters.get("subject:identifier")
    period_from, period_to = date_range(all_of(query, "date"))
    due = parameters.get("follow-up-due")
    identifier = parameters.get("identifier")
    return plan_index(request).search(
        identifier=identifier_token(identifier, "identifier") if identifier else None,
        subject=person_token(subject) if subject else None,
        status=token_choice(query, "status", PLAN_STATUSES),
        period_from=period_from,
        period_to=period_to,
        member=organization_token(
            "care-team-organization", parameters.get("care-team-organization")
        ),
        responsible=organization_token(
            "responsible-organization", parameters.get("responsible-organization")
        ),
        follow_up_due_by=follow_up_bound(due) if due else None,
        invitation_pending=_own_organization(
            "invitation-pending", parameters.get("invitation-pending"), actor
        ),
    )


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    query, position = opened_query(request, "search:CarePlan", query)
    includes = _includes(query)
    without_includes = {key: value for key, value in query.items() if key != "_include"}
    matching = _matching_ids(request, without_includes, actor)
    matches = (plans(request).aggregate(plan_id) for plan_id in matching)
    access = request.app.state.resources["CarePlan"].access
    count = 0 if summary_count(query) else count_parameter(query.get("_count"), MAX_COUNT)
    page = access.visible_page(
        actor,
        matches,
        urlencode(query),
        order=lambda plan: str(plan.id),
        position=position,
        count=count,
        matches=_still_matches(query),
    )
    shown = [disclosed.current for disclosed in page.items]
    base = fhir_base(request)
    links = page_links(request, "search:CarePlan", "CarePlan", query, page, count)
    bundle = searchset(
        base, [plan_to_fhir(plan) for plan in shown], "", total=page.total, links=links
    )
    for plan in shown:
        included = []
        if "CarePlan:care-team" in includes:
            included.append(care_team_to_fhir(plan))
        if "CarePlan:goal" in includes:
            included += [goal_to_fhir(plan, goal_id) for goal_id in plan.goals]
        bundle["entry"] += [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "include"},
            }
            for r in included
        ]
    if count == 0:
        del bundle["entry"]
    return FhirResponse(bundle)


add_search_routes(
    router, "CarePlan", search, {**SEARCH_PARAMETERS, "_include": " | ".join(sorted(INCLUDES))}
)
add_version_routes(router, "CarePlan")
