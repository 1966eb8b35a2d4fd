"""Consent: create, search and the version routes."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from contracts.actor import Actor
from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM
from services.common.access_log import REFUSED
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
    organization_token,
    person_token,
    search_parameters,
    token_choice,
)
from services.consent.application import ConsentRegistry
from services.consent.fhir_mapping import consent_given_from_fhir, consent_to_fhir
from services.consent.registration import registration_refusal

SEARCH_PARAMETERS = {
    "identifier": "The recording system's identifier of the consent: system|value",
    "patient:identifier": "Who the consent is about: system|personnummer",
    "status": "active | inactive | entered-in-error",
    "actor": "HSA-id of an organisation the consent (or block) names",
    "category": "a code of the consent-category code system",
    "_lastUpdated": "ge<instant> / le<instant>",
}
STATUSES = ("active", "inactive", "entered-in-error")
CONSENT_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4B Consent (IHE Privacy Consent on FHIR), or a block",
    "required": ["resourceType", "patient"],
    "properties": {"resourceType": {"type": "string", "enum": ["Consent"]}},
}


def registry(request: Request) -> ConsentRegistry:
    return request.app.state.registry


Body = Annotated[dict[str, Any], Depends(fhir_body)]
Creator = Annotated[Actor, Depends(authorize("Consent", "c"))]
Registry = Annotated[ConsentRegistry, Depends(registry)]
router = APIRouter(prefix="/fhir")


@router.post("/Consent", status_code=201, openapi_extra=request_body(CONSENT_SCHEMA))
def create_consent(
    request: Request, body: Body, actor: Creator, registry: Registry
) -> FhirResponse:
    """Records a consent or block; with identifiers, at most once per recording organisation
    and identifier (services/common/business_identifiers.py): `If-None-Exist` gets the one
    recorded before (200), a plain create a 409 naming `Consent.identifier`."""
    identifiers = identifiers_from_fhir(body, "Consent")
    condition = if_none_exist(request, identifiers, "Consent")
    given = consent_given_from_fhir(body, actor, now())
    refusal = registration_refusal(actor, given)
    if refusal is not None:
        # The attempt is logged for the organisations it named: someone tried to decide
        # over a person's information without being the person or one of them.
        request.app.state.resources["Consent"].access.log(
            actor,
            "create",
            outcome=REFUSED,
            patient=given["patient"],
            custodian=(given["organizations"] or [None])[0],
            entity="Consent",
            detail=f"registration refused: {refusal}",
        )
        raise FhirError(403, "forbidden", refusal)
    return create_once(
        request.app.state.resources["Consent"].access,
        actor,
        request.app.state.index.engine,
        identifiers,
        condition is not None,
        lambda claims, given_ids: registry.give(claims=claims, **given, identifiers=given_ids),
        consent_to_fhir,
    )


def _category(value: str | None) -> str | None:
    if value is None:
        return None
    system, _, code = value.rpartition("|")
    if code not in CONSENT_CATEGORIES or system not in ("", CONSENT_CATEGORY_SYSTEM):
        raise FhirError(
            400,
            "code-invalid",
            f"category is a code of {CONSENT_CATEGORY_SYSTEM}: " + ", ".join(CONSENT_CATEGORIES),
        )
    return code


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    query, position = opened_query(request, "search:Consent", query)
    parameters = search_parameters(query, set(SEARCH_PARAMETERS))
    patient = parameters.get("patient:identifier")
    updated_from, updated_to = date_range(all_of(query, "_lastUpdated"))
    identifier = parameters.get("identifier")
    ids = request.app.state.index.search(
        identifier=identifier_token(identifier, "identifier") if identifier else None,
        patient=person_token(patient) if patient else None,
        status=token_choice(query, "status", STATUSES),
        organization=organization_token("actor", parameters.get("actor")),
        category=_category(parameters.get("category")),
        updated_from=updated_from,
        updated_to=updated_to,
    )
    matches = (registry(request).aggregate(consent_id) for consent_id in ids)
    access = request.app.state.resources["Consent"].access
    count = 0 if summary_count(query) else count_parameter(query.get("_count"), MAX_COUNT)
    page = access.visible_page(
        actor, matches, urlencode(query), lambda c: str(c.id), position, count
    )
    resources = [consent_to_fhir(disclosed.current) for disclosed in page.items]
    links = page_links(request, "search:Consent", "Consent", query, page, count)
    bundle = searchset(fhir_base(request), resources, "", total=page.total, links=links)
    if count == 0:
        del bundle["entry"]
    return FhirResponse(bundle)


add_search_routes(router, "Consent", search, SEARCH_PARAMETERS)
add_version_routes(router, "Consent")
