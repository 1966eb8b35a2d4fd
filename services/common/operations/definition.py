"""What an operation's declaration says to the outside: its OperationDefinition, the OpenAPI
schema of its `Parameters` body and its CapabilityStatement entry."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationdefinition import OperationDefinition

from services.common.capability import SOFTWARE_VERSION
from services.common.fhir_api import FHIR_JSON
from services.common.operations.declaration import Operation
from services.common.parameters import OperationParameters, ParameterSpec, parameter_specs

DEFINITIONS_DATE = "2026-11-25"


def operation_definition(operation: Operation[Any]) -> dict[str, Any]:
    returns = operation.returns or operation.resource_type
    outputs = (
        [_parameter(spec, "out") for spec in parameter_specs(returns)]
        if isinstance(returns, type)
        else [{"name": "return", "use": "out", "min": 1, "max": "1", "type": returns}]
    )
    definition = {
        "resourceType": "OperationDefinition",
        "id": operation.id,
        "url": operation.url,
        "version": SOFTWARE_VERSION,
        "name": "".join(word.capitalize() for word in operation.id.replace("-", " ").split()),
        "title": f"{operation.resource_type} ${operation.name}",
        "status": "active",
        "kind": "operation",
        "date": DEFINITIONS_DATE,
        "publisher": "sip-case-service",
        "description": operation.documentation,
        "affectsState": operation.changes_state,
        "code": operation.name,
        "comment": _who_may_call(operation),
        "resource": [operation.resource_type],
        "system": False,
        "type": not operation.instance,
        "instance": operation.instance,
        "parameter": [
            *(_parameter(spec, "in") for spec in parameter_specs(operation.parameters)),
            *outputs,
        ],
    }
    # Validated when built, so a declaration cannot drift into invalid FHIR.
    OperationDefinition.model_validate(definition)
    return definition


def _who_may_call(operation: Operation[Any]) -> str:
    who = "staff and the person" if operation.patient_may else "staff, not the person"
    return f"Called by {who}; " + ("changes the resource" if operation.changes_state else "reads")


def _parameter(spec: ParameterSpec, use: str) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": spec.name, "use": use, "min": spec.min, "max": spec.max}
    if spec.documentation:
        parameter["documentation"] = spec.documentation
    if spec.parts is not None:
        parameter["part"] = [_parameter(part, use) for part in parameter_specs(spec.parts)]
    else:
        assert spec.fhir_type is not None
        parameter["type"] = spec.fhir_type.name
    return parameter


_JSON_SCHEMA_OF_VALUE = {
    "valueString": {"type": "string"},
    "valueCode": {"type": "string"},
    "valueMarkdown": {"type": "string"},
    "valueDate": {"type": "string", "format": "date"},
    "valueDateTime": {"type": "string"},
    "valueInstant": {"type": "string", "format": "date-time"},
    "valueBoolean": {"type": "boolean"},
    "valueDecimal": {"type": "number"},
    "valueInteger": {"type": "integer"},
    "valueIdentifier": {
        "type": "object",
        "properties": {"system": {"type": "string"}, "value": {"type": "string"}},
    },
    "valueReference": {"type": "object", "properties": {"reference": {"type": "string"}}},
}


def parameters_schema(model: type[OperationParameters]) -> dict[str, Any]:
    """The JSON schema of a `Parameters` body carrying `model`'s parameters."""
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Parameters"]},
            "parameter": _parameter_list_schema(model),
        },
    }


def _parameter_list_schema(model: type[OperationParameters]) -> dict[str, Any]:
    items = []
    for spec in parameter_specs(model):
        properties: dict[str, Any] = {"name": {"type": "string", "enum": [spec.name]}}
        if spec.parts is not None:
            properties["part"] = _parameter_list_schema(spec.parts)
        else:
            assert spec.fhir_type is not None
            for kind in spec.fhir_type.accepts:
                properties[kind] = _JSON_SCHEMA_OF_VALUE[kind]
        items.append(
            {
                "type": "object",
                "title": spec.name,
                "description": f"{spec.min}..{spec.max}"
                + (f": {spec.documentation}" if spec.documentation else ""),
                "required": ["name"],
                "properties": properties,
                "additionalProperties": False,
            }
        )
    return {"type": "array", "items": {"oneOf": items} if items else {}, "maxItems": 1000}


def returned_type(operation: Operation[Any]) -> str:
    """The FHIR type an operation answers with: a Parameters, a named type, or its own."""
    if isinstance(operation.returns, type):
        return "Parameters"
    return operation.returns or operation.resource_type


def request_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """An `openapi_extra` naming a route's request body, for routes that read it themselves."""
    content = {"schema": schema}
    return {
        "requestBody": {
            "required": required,
            "content": {FHIR_JSON: content, "application/json": content},
        }
    }


def operation_request_body(operation: Operation[Any]) -> dict[str, Any]:
    required = any(spec.min for spec in parameter_specs(operation.parameters))
    return request_body(parameters_schema(operation.parameters), required=required)


def query_parameters(operation: Operation[Any]) -> dict[str, Any]:
    """An `openapi_extra` naming a GET operation's parameters, sent in the query string."""
    return {
        "parameters": [
            {
                "name": spec.name,
                "in": "query",
                "required": bool(spec.min),
                "description": f"FHIR {spec.fhir_type.name if spec.fhir_type else 'parts'}",
                "schema": {"type": "string"},
            }
            for spec in parameter_specs(operation.parameters)
        ]
    }
