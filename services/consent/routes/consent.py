"""Consent: create, search and the version routes."""

from typing import Annotated, Any

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
    fhir_body,
)
from services.common.fhir_time import now
from services.common.operations.definition import request_body
from services.common.resource_routes import add_search_routes, add_version_routes
from services.common.search import (
    date_bounds,
    organization_token,
    person_reference,
    person_token,
    token_code,
)
from services.common.search_answer import SearchService, search_answer
from services.common.search_declarations import (
    COMMON_PARAMETERS,
    SearchDeclarations,
    SearchParameter,
    Test,
    last_updated,
)
from services.consent.application import ConsentRegistry
from services.consent.fhir_mapping import consent_given_from_fhir, consent_to_fhir
from services.consent.registration import registration_refusal

STATUSES = ("active", "inactive", "entered-in-error")
_R4 = "http://hl7.org/fhir/SearchParameter/"


def _date_test(value: str) -> Test:
    since, until = date_bounds("date", value)
    return lambda consent: (
        (since is None or consent.given_at >= since)
        and (until is None or consent.given_at <= until)
    )


SEARCH = SearchDeclarations(
    "Consent",
    (
        *COMMON_PARAMETERS,
        SearchParameter(
            "identifier", "token", "Consent.identifier",
            "The recording system's identifier of the consent: system|value",
            index=lambda value: {"identifier": identifier_token(value, "identifier")},
            definition=_R4 + "clinical-identifier",
        ),
        SearchParameter(
            "patient", "reference", "Consent.patient",
            "Who the consent is about: patient=Patient/<personnummer>, or "
            "patient:identifier=system|personnummer (by POST to _search, to keep the number "
            "out of URLs)",
            index=lambda value: {"patient": person_reference("patient", value)},
            modifiers={"identifier": lambda value: {"patient": person_token(value)}},
            definition=_R4 + "clinical-patient",
        ),
        SearchParameter(
            "status", "token", "Consent.status", " | ".join(STATUSES),
            index=lambda value: {"status": {token_code("status", value, STATUSES)}},
            definition=_R4 + "Consent-status",
        ),
        SearchParameter(
            "actor", "token", "Consent.provision.actor.reference",
            "HSA-id of an organisation the consent (or block) names",
            index=lambda value: {"organization": organization_token("actor", value)},
        ),
        SearchParameter(
            "category", "token", "Consent.category",
            "a code of the consent-category code system",
            index=lambda value: {"category": _category(value)},
            definition=_R4 + "Consent-category",
        ),
        SearchParameter(
            "date", "date", "Consent.dateTime",
            "when the consent was given: eq/ge/gt/le/lt prefixed, repeatable (AND)",
            test=_date_test, definition=_R4 + "clinical-date",
        ),
    ),
    sort_keys={"_lastUpdated": last_updated, "date": lambda consent: consent.given_at},
)  # fmt: skip
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


def _category(value: str) -> str:
    system, _, code = value.rpartition("|")
    if code not in CONSENT_CATEGORIES or system not in ("", CONSENT_CATEGORY_SYSTEM):
        raise FhirError(
            400,
            "code-invalid",
            f"category is a code of {CONSENT_CATEGORY_SYSTEM}: " + ", ".join(CONSENT_CATEGORIES),
        )
    return code


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    service = SearchService(
        SEARCH,
        request.app.state.resources["Consent"].access,
        request.app.state.index.search,
        consent_to_fhir,
    )
    return search_answer(request, query, actor, service)


add_search_routes(router, search, SEARCH)
add_version_routes(router, "Consent")
