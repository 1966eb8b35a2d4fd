"""`POST /fhir/Encounter/$admit`: the admission, at most once per admitting organisation and
business identifier, the way a create is (services/common/business_identifiers.py).

The ward names the stay by the hospital's own encounter number, or the web client by its
form's submission key (`identifier`, repeated). With `If-None-Exist: identifier=system|value`
the same admission sent again, after a lost answer, a double click or by a concurrent retry,
answers the stay it made (200, as FHIR's conditional create answers what it found); without
the condition an identifier used before is a 409. The identifier claimed is written in the
same transaction as the admission, so of two concurrent admissions one makes the stay.

An identifier names one admission of one person: posted again for another person it is a 409
that names neither the stay nor its person, whatever the condition."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from contracts.actor import Actor
from services.common import fhir_time
from services.common.access_log import WriteContext, writing
from services.common.auth.dependency import authorize
from services.common.business_identifiers import (
    MAX_IDENTIFIERS,
    BusinessIdentifier,
    IdentifierClaims,
    IdentifierTaken,
    created_before,
    creator_scope,
    if_none_exist,
    parse_identifier,
)
from services.common.fhir_api import FhirError, FhirResponse, resource_response
from services.common.openapi_fhir import CONDITIONAL_CREATE
from services.common.operations.declaration import OperationCall
from services.common.operations.definition import operation_request_body, returned_type
from services.common.operations.pipeline import operation_body
from services.common.parameters import parse_parameters
from services.common.resource_routes import AggregateResource
from services.sip.discharge.application import STAY_RESOURCE_TYPE
from services.sip.discharge.operations import ADMIT, Admit, admitted
from services.sip.discharge.stay import Stay

IDENTIFIER = "Parameters.parameter.where(name='identifier')"
Body = Annotated[dict[str, Any], Depends(operation_body)]


def admission_identifiers(parameters: Admit) -> list[BusinessIdentifier]:
    """The admission's identifiers, validated as a create's are; 400 naming the parameter."""
    if len(parameters.identifier) > MAX_IDENTIFIERS:
        raise FhirError(
            400, "invalid", f"identifier: at most {MAX_IDENTIFIERS}", expression=IDENTIFIER
        )
    parsed: list[BusinessIdentifier] = []
    for given in parameters.identifier:
        if set(given) - {"system", "value"}:
            raise FhirError(
                400, "invalid", "identifier: an identifier has system and value only",
                expression=IDENTIFIER,
            )  # fmt: skip
        identifier = parse_identifier(given.get("system"), given.get("value"), IDENTIFIER)
        if identifier in parsed:
            raise FhirError(
                400, "invalid", "identifier: the same identifier twice", expression=IDENTIFIER
            )
        parsed.append(identifier)
    return parsed


def _admitted_before(
    resource: AggregateResource, actor: Actor, existing: Any, posted: Stay, conditional: bool
) -> FhirResponse:
    """The answer to an admission whose identifier the organisation used before: the stay,
    where it is the same person's and the condition asks for it; else a 409 naming only the
    parameter (the stay's id or person would tell the caller of an admission not theirs)."""
    earlier: Stay = resource.access.aggregate(existing)
    if not conditional or earlier.subject != posted.subject:
        raise FhirError(
            409, "duplicate",
            "identifier: this organisation has admitted with this identifier already"
            + ("" if conditional else "; send If-None-Exist to get that stay")
            + ("; an identifier names one admission of one person" if conditional else ""),
            rule="identifier-unique-per-organization", expression=IDENTIFIER,
        )  # fmt: skip
    return created_before(resource.access, actor, existing, True, resource.to_fhir)


router = APIRouter(prefix="/fhir")


@router.post(
    ADMIT.path,
    name=ADMIT.name,
    description=ADMIT.documentation,
    openapi_extra=operation_request_body(ADMIT)
    | {"x-fhir-returns": returned_type(ADMIT), "parameters": CONDITIONAL_CREATE},
)
def admit_once(
    request: Request,
    body: Body,
    actor: Actor = Depends(authorize(STAY_RESOURCE_TYPE, "u")),
) -> FhirResponse:
    ADMIT.check_patient(actor)
    assert ADMIT.may_call is not None
    ADMIT.may_call(actor)
    parameters = parse_parameters(Admit, body, ADMIT.name, ADMIT.missing)
    identifiers = admission_identifiers(parameters)
    conditional = if_none_exist(request, identifiers, STAY_RESOURCE_TYPE) is not None
    state = request.app.state
    resource: AggregateResource = state.resources[STAY_RESOURCE_TYPE]
    call = OperationCall(ADMIT, parameters, actor, fhir_time.now(), request)
    stay = admitted(call, [i.as_fhir() for i in identifiers])
    claims = IdentifierClaims(
        STAY_RESOURCE_TYPE, creator_scope(actor), identifiers, state.index.engine, state.plans
    )
    existing = claims.existing()
    if existing is None:
        context = WriteContext(
            call.by, ADMIT.interaction, STAY_RESOURCE_TYPE, call.at, detail=ADMIT.name
        )
        try:
            with writing(context):
                claims.save(state.plans, stay)
            return resource_response(resource.to_fhir(resource.access.as_seen_by(actor, stay)))
        except IdentifierTaken as taken:  # a concurrent admission committed first
            existing = taken.resource_id
    return _admitted_before(resource, actor, existing, stay, conditional)
