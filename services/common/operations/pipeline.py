"""The one handler of every operation: read the parameters, load the target through its
disclosure rule, check the caller, honour `If-Match`, run the command and save it inside the
write context, so the change and its access-log record are one write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request

from contracts.actor import Actor
from services.common.access_log import WriteContext, writing
from services.common.bundles.unit_of_work import refuse_reading_in_transaction
from services.common.disclosure import Disclosure
from services.common.domain import (
    InvalidCommand,
    RuleViolation,
    VersionMismatch,
    ensure_expected_version,
)
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    parse_if_match,
    read_fhir_body,
    resource_response,
)
from services.common.fhir_time import now
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import parameter_specs, parse_parameters
from services.common.resource_routes import AggregateResource, resource_id


def run_operation(
    operation: Operation[Any],
    request: Request,
    actor: Actor,
    body: dict[str, Any],
    id: str | None = None,
    if_match: str | None = None,
) -> FhirResponse:
    resource: AggregateResource = request.app.state.resources[operation.resource_type]
    if not operation.changes_state:
        refuse_reading_in_transaction(resource.application, f"${operation.name}")
    if not operation.instance:
        operation.check_patient(actor)
    if operation.may_call:
        operation.may_call(actor)
    parameters = parse_parameters(operation.parameters, body, operation.name, operation.missing)
    target, disclosure = _target(operation, resource, actor, id) if id is not None else (None, None)
    call = OperationCall(operation, parameters, actor, now(), request, target, disclosure)
    if target is not None:
        operation.check_patient(actor)
    if operation.may_change:
        operation.may_change(call)
    if disclosure is not None and operation.changes_state:
        names = set(_texts(parameters.model_dump()))
        resource.access.refuse_withheld(actor, target, disclosure, "operation", names)
    assert operation.command is not None
    if not operation.changes_state:
        return _commanded(operation, call)
    if target is not None:
        ensure_expected_version(target.version, parse_if_match(if_match))
    detail = operation.detail(call) if operation.detail else operation.name
    context = WriteContext(
        call.by, operation.interaction, operation.resource_type, call.at, detail=detail
    )
    with writing(context):
        answer = _commanded(operation, call)
        # A type-level operation that changes state makes its resource: the command's answer.
        target = answer if target is None else target
        resource.application.save(target)
    if isinstance(answer, FhirResponse):
        return answer
    # The changed resource as the caller may see it: the same disclosure and redaction as a
    # read (an operation's answer is a way out like any other).
    shown = resource.access.as_seen_by(actor, target) if operation.disclosed else target
    return resource_response(resource.to_fhir(shown))


def _commanded(operation: Operation[Any], call: OperationCall[Any]) -> Any:
    """The command's answer; a rule it refuses names the parameter the rule is about."""
    assert operation.command is not None
    try:
        return operation.command(call)
    except RuleViolation as refused:
        if isinstance(refused, InvalidCommand | VersionMismatch):
            raise
        taken = {spec.name for spec in parameter_specs(operation.parameters)}
        about = next(
            (name for name in operation.rule_parameters.get(refused.rule, ()) if name in taken),
            None,
        )
        if about is None:
            raise
        raise FhirError(
            409,
            "business-rule",
            refused.message,
            rule=refused.rule,
            expression=f"Parameters.parameter.where(name='{about}')",
        ) from None


def _texts(value: Any) -> Iterator[str]:
    """Every string in the parameters: the parts (ids) a command names are among them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


def _target(
    operation: Operation[Any], resource: AggregateResource, actor: Actor, id: str
) -> tuple[Any, Disclosure | None]:
    """The operation's target (for a read, as the caller may see it) and, under the
    disclosure rule, what of it the caller sees: decided once, for the withheld-entry check
    and the command to reuse."""
    target_id = resource_id(id)
    if not operation.disclosed:
        return resource.access.aggregate(target_id), None
    if operation.changes_state:  # the write logs itself
        return resource.access.for_change(actor, target_id, "operation")
    entity = f"{operation.resource_type}/{id}/${operation.name}"
    disclosed = resource.access.disclosed(actor, target_id, "operation", entity)
    return disclosed.current, disclosed.disclosure


async def operation_body(request: Request) -> dict[str, Any]:
    """The `Parameters` body; an operation without parameters may be called without one."""
    return await read_fhir_body(request, when_empty={"resourceType": "Parameters"})


def query_as_parameters(operation: Operation[Any], request: Request) -> dict[str, Any]:
    """A GET operation's parameters from the query string, as FHIR lets simple ones be sent."""
    kinds = {
        spec.name: spec.fhir_type.accepts[0]
        for spec in parameter_specs(operation.parameters)
        if spec.fhir_type is not None
    }
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": name, kinds.get(name, "valueString"): value}
            for name, value in request.query_params.multi_items()
        ],
    }
