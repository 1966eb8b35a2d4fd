"""The consent service's FHIR API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Header, Request

from contracts.actor import Actor
from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM
from contracts.consent_decision import ConsentCheckRequest, MalformedParameters
from contracts.identifiers import PERSON_ID_SYSTEMS, InvalidIdentifier, parse_person_identifier
from services.common import access_log_routes
from services.common.access_log import WriteContext, writing
from services.common.access_log_views import AccessLogIndex
from services.common.audit import feed as event_feed
from services.common.audit.checkpoints import CheckpointSigner
from services.common.auth.dependency import authorize
from services.common.capability import (
    ACCESS_LOG_CAPABILITIES,
    capability_statement,
    resource_capability,
)
from services.common.domain import NotFound
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_base,
    fhir_body,
    operation_outcome,
    parse_if_match,
    resource_response,
    searchset,
)
from services.common.fhir_time import fhir_instant, now
from services.common.parameters import OperationParameters
from services.common.persistence import read_model_engine, storage_for
from services.common.resource_routes import (
    Disclosure,
    ResourceAccess,
    add_search_routes,
    add_version_routes,
    resource_id,
)
from services.common.search import (
    date_range,
    organization_token,
    person_token,
    search_parameters,
)
from services.common.service import build_service_app
from services.common.settings import ServiceSettings
from services.consent.application import ConsentRegistry
from services.consent.domain import Consent
from services.consent.fhir_mapping import consent_given_from_fhir, consent_to_fhir
from services.consent.projections import ConsentIndex

SEARCH_PARAMETERS = {
    "patient:identifier": "Who the consent is about: system|personnummer",
    "status": "active | inactive | entered-in-error",
    "actor": "HSA-id of an organisation the consent (or block) names",
    "category": "a code of the consent-category code system",
    "_lastUpdated": "ge<instant> / le<instant>",
}
STATUSES = ("active", "inactive", "entered-in-error")
CAPABILITIES = [
    resource_capability(
        "Consent",
        interactions=["create", "read", "vread", "history-instance", "history-type", "search-type"],
        search_parameters={name.split(":")[0]: doc for name, doc in SEARCH_PARAMETERS.items()},
        operations={
            "withdraw": "Withdraws the consent at once; Parameters: reason",
            "check": "Decides whether a disclosure is permitted; Parameters in and out",
            "mark-entered-in-error": "Marks a registration made in error; Parameters: reason",
            "override-block": "Lets the caller's organisation past a block for a while; "
            "Parameters: reason, until",
        },
    ),
    *ACCESS_LOG_CAPABILITIES,
]
Body = Annotated[dict[str, Any], Depends(fhir_body)]
Creator = Annotated[Actor, Depends(authorize("Consent", "c"))]
Updater = Annotated[Actor, Depends(authorize("Consent", "u"))]
Checker = Annotated[Actor, Depends(authorize("Consent", "r"))]


def disclose(consent: Consent, actor: Actor) -> Disclosure:
    """The person sees their own consents; an organisation those that cover it or that it
    recorded."""
    if actor.role == "patient":
        if actor.patient == consent.patient["value"]:
            return Disclosure()
    elif actor.organization in consent.organizations or (
        actor.organization == consent.recorded_by.get("organization")
    ):
        return Disclosure()
    raise NotFound(f"Consent/{consent.id}")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env("CONSENT_DATABASE_URL")
    storage = storage_for("consent", settings.database_url, settings.data_dir)
    registry = ConsentRegistry(env=storage.event_store_env)
    engine = read_model_engine(storage)
    index = ConsentIndex(registry, engine)
    access = ResourceAccess(registry, disclose)

    app = build_service_app(
        title="SIP consent service",
        application=registry,
        capability_statement=lambda base: capability_statement(
            base, name="SipConsentService", title="SIP consent service", resources=CAPABILITIES
        ),
        token_verifier=settings.token_verifier(),
        closers=[engine.dispose],
    )
    app.state.registry = registry
    app.state.index = index
    router = APIRouter(prefix="/fhir")

    @router.post("/Consent", status_code=201)
    def create_consent(body: Body, actor: Creator) -> FhirResponse:
        given = consent_given_from_fhir(body, actor, now())
        if actor.role == "patient" and given["patient"]["value"] != actor.patient:
            raise FhirError(403, "forbidden", "a person gives consent for themself only")
        with writing(WriteContext(actor.as_event_data(), "create", "Consent", now())):
            consent = registry.give(**given)
        return resource_response(consent_to_fhir(consent), status=201)

    @router.post("/Consent/$check")
    def check(body: Body, actor: Checker) -> FhirResponse:
        if actor.role != "integration":
            raise FhirError(403, "forbidden", "$check is for systems (role integration)")
        try:
            request = ConsentCheckRequest.from_parameters(body)
        except MalformedParameters as error:
            raise FhirError(400, "invalid", str(error)) from None
        if request.patient_system in PERSON_ID_SYSTEMS:
            try:
                parse_person_identifier(request.patient_system, request.patient_value)
            except InvalidIdentifier as error:
                raise FhirError(422, "invalid", f"patient: {error}") from None
        candidates = index.search(patient=(request.patient_system, request.patient_value))
        decision = registry.check(
            request, candidates, now(), guardians_required=settings.guardians_required
        )
        # Recorded before it is answered: an auditor can later see why something was or
        # was not disclosed, and to whom.
        access.log(
            actor,
            "disclosure-decision",
            patient={"system": request.patient_system, "value": request.patient_value},
            custodian=request.source,
            consents=decision.consents,
            query=urlencode(
                {
                    "actor": request.actor,
                    "source": request.source,
                    "category": request.category,
                    "purpose": request.purpose or "",
                }
            ),
            detail=f"{decision.decision}: {decision.reason}",
        )
        return FhirResponse(decision.to_parameters())

    def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
        parameters = search_parameters(query, set(SEARCH_PARAMETERS))
        patient = parameters.get("patient:identifier")
        status = parameters.get("status")
        if status is not None and status not in STATUSES:
            raise FhirError(400, "invalid", f"status is one of {', '.join(STATUSES)}")
        updated_from, updated_to = date_range(
            request.query_params.getlist("_lastUpdated")
            or ([query["_lastUpdated"]] if "_lastUpdated" in query else [])
        )
        category = parameters.get("category")
        if category is not None:
            system, _, code = category.rpartition("|")
            if code not in CONSENT_CATEGORIES or system not in ("", CONSENT_CATEGORY_SYSTEM):
                raise FhirError(
                    400,
                    "code-invalid",
                    f"category is a code of {CONSENT_CATEGORY_SYSTEM}: "
                    + ", ".join(CONSENT_CATEGORIES),
                )
            category = code
        ids = index.search(
            patient=person_token(patient) if patient else None,
            status=status,
            organization=organization_token("actor", parameters.get("actor")),
            category=category,
            updated_from=updated_from,
            updated_to=updated_to,
        )
        matches = (registry.aggregate(consent_id) for consent_id in ids)
        resources = [consent_to_fhir(c) for c in access.visible(actor, matches, urlencode(query))]
        base = fhir_base(request)
        return FhirResponse(searchset(base, resources, f"{base}/Consent"))

    add_search_routes(router, "Consent", search)
    add_version_routes(router, access, consent_to_fhir)

    @router.post("/Consent/{consent_id}/$withdraw")
    def withdraw(
        consent_id: str,
        body: Body,
        actor: Updater,
        if_match: Annotated[str | None, Header()] = None,
    ) -> FhirResponse:
        reason = _withdrawal_reason(body)
        consent = access.for_change(actor, resource_id(consent_id), "operation")
        with writing(
            WriteContext(actor.as_event_data(), "operation", "Consent", now(), detail="withdraw")
        ):
            consent = registry.withdraw(
                consent.id,
                reason=reason,
                withdrawn_by=actor.as_event_data(),
                at=now(),
                expected_version=parse_if_match(if_match),
            )
        return resource_response(consent_to_fhir(consent))

    app.state.event_feed = event_feed.EventFeed(
        registry, engine, CheckpointSigner(settings.data_dir, "consent")
    )
    app.include_router(event_feed.router)
    app.state.access_log_reading = access_log_routes.AccessLogReading(
        access, AccessLogIndex(registry, engine), observer=app.title, peer_extract_url=None
    )
    router.include_router(access_log_routes.router)

    @router.post("/Consent/{consent_id}/$mark-entered-in-error")
    def mark_entered_in_error(
        consent_id: str,
        body: Body,
        actor: Updater,
        if_match: Annotated[str | None, Header()] = None,
    ) -> FhirResponse:
        reason = OperationParameters(body, "mark-entered-in-error").text("reason")
        consent = access.for_change(actor, resource_id(consent_id), "operation")
        if actor.role == "patient" or actor.organization != consent.custodian:
            raise FhirError(403, "forbidden", "the organisation that registered it corrects it")
        at = now()
        context = WriteContext(
            actor.as_event_data(), "operation", "Consent", at, detail="mark-entered-in-error"
        )
        with writing(context):
            consent = registry.mark_entered_in_error(
                consent.id,
                reason=reason or "",
                by=actor.as_event_data(),
                at=at,
                expected_version=parse_if_match(if_match),
            )
        return resource_response(consent_to_fhir(consent))

    @router.post("/Consent/{consent_id}/$override-block")
    def override_block(consent_id: str, body: Body, actor: Updater) -> FhirResponse:
        parameters = OperationParameters(body, "override-block")
        reason, until = parameters.text("reason"), parameters.instant("until")
        if actor.role not in ("coordinator", "professional") or not actor.organization:
            raise FhirError(403, "forbidden", "a block is overridden by staff, with a reason")
        block = registry.aggregate(resource_id(consent_id))
        if block.kind != "block":
            raise FhirError(404, "not-found", f"no block with id '{consent_id}'")
        at = now()
        context = WriteContext(
            actor.as_event_data(),
            "operation",
            "Consent",
            at,
            detail=f"override-block for {actor.organization}: {reason}",
        )
        with writing(context):
            block = registry.override_block(
                block.id,
                organization=actor.organization,
                reason=reason or "",
                until=until or at,
                by=actor.as_event_data(),
                at=at,
            )
        # The caller may not see the block itself (it names another organisation's data).
        return FhirResponse(
            operation_outcome(
                "informational",
                f"override recorded until {fhir_instant(until or at)}",
                severity="information",
            )
        )

    app.include_router(router)
    return app


def _withdrawal_reason(body: dict[str, Any]) -> str:
    if body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "$withdraw takes a Parameters resource")
    for parameter in body.get("parameter") or []:
        if parameter.get("name") == "reason" and isinstance(parameter.get("valueString"), str):
            reason = parameter["valueString"].strip()
            if reason:
                return reason
    raise FhirError(422, "required", "$withdraw needs a 'reason' (valueString)", rule="reason")
