"""The OpenAPI says what really comes back: FastAPI sees routes that return a FhirResponse
built by hand, so on its own it declares an empty `application/json` schema for every answer
and a 422 the services never send. This module rewrites each operation's responses from the
shape of its FHIR path, in one place for every route of both services:

- a read or vread: the resource of the path's type, and 304 for a conditional read;
- a search, `_search`, or a `_history`: a Bundle; a transaction or batch at the base too;
- a create: the resource (201 made, 200 found by a conditional create);
- an operation (`$name`): what its declaration returns (`x-fhir-returns`, set by
  services/common/operations/routes.py), else the path's type;
- every refusal (4XX) and failure (5XX): an OperationOutcome;
- a search by GET: the parameters its `_search` form takes, and the result parameters.

A write or an operation answers an OperationOutcome instead of the resource when asked
(`Prefer: return=OperationOutcome`, services/common/http_conventions.py), so its success
schema is one of the two. The request bodies are declared where the routes read them
(`operations/definition.py`: the resource JSON of a create, a Parameters of an operation).

The schemas hold what every answer has (the resource type, its id and version, a Bundle's
entries, an issue's severity and code), not the whole FHIR definition, which the
CapabilityStatement and http://hl7.org/fhir/R4 give."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from services.common.result_parameters import RESULT_PARAMETER_FIELDS

FHIR_JSON = "application/fhir+json"
_REF = "#/components/schemas/"
_TYPE_PATH = re.compile(r"^/fhir/(?P<type>[A-Z][A-Za-z]+)(?P<rest>/.*)?$")
_INSTANCE = re.compile(r"^/\{[a-z_]+\}(?:/_history/\{vid\})?$")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def resource_schema(resource_type: str, *, identified: bool = True) -> dict[str, Any]:
    required = ["resourceType", "id"] if identified else ["resourceType"]
    return {
        "type": "object",
        "description": f"A FHIR R4 {resource_type} "
        f"(http://hl7.org/fhir/R4/{resource_type.lower()}.html)",
        "required": required,
        "properties": {
            "resourceType": {"type": "string", "enum": [resource_type]},
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9\-.]{1,64}$"},
            "meta": _ref("Meta"),
        },
    }


BUNDLE_TYPES = ["searchset", "history", "collection", "batch-response", "transaction-response"]
BUNDLE_TYPES = ["searchset", "history", "collection", "batch-response", "transaction-response"]
COMMON_SCHEMAS: dict[str, Any] = {
    "Meta": {
        "type": "object",
        "properties": {
            "versionId": {"type": "string"},
            "lastUpdated": {"type": "string"},
            "tag": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Resource": {
        "type": "object",
        "description": "Any FHIR R4 resource",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
    },
    "OperationOutcome": {
        "type": "object",
        "description": "Why a request was refused or failed: each issue's severity, code, "
        "diagnostics and the element it is about (`expression`)",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {
                            "type": "string",
                            "enum": ["fatal", "error", "warning", "information"],
                        },
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                        "expression": {"type": "array", "items": {"type": "string"}},
                        "details": {"type": "object"},
                    },
                },
            },
        },
    },
    "Bundle": {
        "type": "object",
        "description": "A page of a search or history: `total`, the `self`, `next` and "
        "`previous` links, and the entries",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Bundle"]},
            "type": {"type": "string", "enum": BUNDLE_TYPES},
            "total": {"type": "integer", "minimum": 0},
            "link": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["relation", "url"],
                    "properties": {"relation": {"type": "string"}, "url": {"type": "string"}},
                },
            },
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": _ref("Resource"),
                        "search": {"type": "object"},
                        "request": {"type": "object"},
                        "response": {"type": "object"},
                    },
                },
            },
        },
    },
}
ERRORS = {
    "4XX": {
        "description": "Refused: an OperationOutcome naming why (and the element)",
        "content": {FHIR_JSON: {"schema": _ref("OperationOutcome")}},
    },
    "5XX": {
        "description": "Failed or not ready: an OperationOutcome (never a stack trace)",
        "content": {FHIR_JSON: {"schema": _ref("OperationOutcome")}},
    },
}
# A create is conditional by either (services/common/business_identifiers.py).
CONDITIONAL_CREATE = [
    {
        "name": "If-None-Exist",
        "in": "header",
        "required": False,
        "description": "identifier=system|value: the resource made before with it (200), "
        "else a new one (201)",
        "schema": {"type": "string"},
    },
    {
        "name": "identifier",
        "in": "query",
        "required": False,
        "description": "system|value: the same condition as If-None-Exist, as fhirpy's "
        "get_or_create sends it",
        "schema": {"type": "string"},
    },
]
NOT_MODIFIED = {"description": "Not modified since (If-None-Match, If-Modified-Since): no body"}
# The one route with three shapes: the person's log extract (services/common/access_log_routes.py).
ACCESS_LOG_EXTRACT = {
    FHIR_JSON: {"schema": _ref("Parameters")},
    "application/json": {
        "schema": {"type": "object", "required": ["patient", "generated", "entries"]}
    },
    "text/html": {"schema": {"type": "string"}},
}


def _success(path: str, method: str, operation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The 2xx answers of a FHIR path (status → content) and the FHIR types they name."""
    match = _TYPE_PATH.match(path)
    if path == "/fhir/metadata":
        return {"200": _content(_ref("CapabilityStatement"))}, "CapabilityStatement"
    if path == "/fhir" and method == "post":  # a transaction or batch (services/common/bundles)
        answered = _content(_written("Bundle", method), "A transaction-response or batch-response")
        return {"200": answered}, "Bundle"
    if match is None:
        return {}, ""
    resource_type, rest = match["type"], match["rest"] or ""
    if "$" in rest:
        returned = operation.pop("x-fhir-returns", None) or resource_type
        if rest.endswith("$access-log"):
            return {"200": {"description": "The log extract", "content": ACCESS_LOG_EXTRACT}}, (
                "Parameters"
            )
        return {"200": _content(_written(returned, method))}, returned
    if rest in ("", "/_search", "/_history") or rest.endswith("/_history"):
        if method == "post" and rest == "":  # a create
            operation.setdefault("parameters", []).extend(CONDITIONAL_CREATE)
            created = _written(resource_type, method)
            return {"201": _content(created, "Made"), "200": _content(created, "Found")}, (
                resource_type
            )
        return {"200": _content(_ref("Bundle"), "A page of the matches")}, "Bundle"
    if _INSTANCE.match(rest):
        return {"200": _content(_ref(resource_type)), "304": NOT_MODIFIED}, resource_type
    return {}, ""


def _written(resource_type: str, method: str) -> dict[str, Any]:
    if method != "post" or resource_type == "OperationOutcome":
        return _ref(resource_type)
    return {"oneOf": [_ref(resource_type), _ref("OperationOutcome")]}


def _content(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


def describe_fhir_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI `schema` with every operation's responses as the services send them."""
    named: set[str] = {"Parameters", "CapabilityStatement"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's; a malformed request is a 400 here
            success, resource_type = _success(path, method, operation)
            if success:
                for status in [s for s in responses if s.startswith("2")]:
                    del responses[status]
                responses.update(success)
                named.add(resource_type)
            responses.update(ERRORS)
    _declare_search_parameters(schema.get("paths", {}))
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(COMMON_SCHEMAS)
    for resource_type in sorted(named - set(COMMON_SCHEMAS) - {""}):
        schemas[resource_type] = resource_schema(
            resource_type, identified=resource_type not in ("Parameters", "CapabilityStatement")
        )
    return schema


def _declare_search_parameters(paths: dict[str, Any]) -> None:
    """A search by GET takes what its `_search` form takes, in the query string; both take
    the result parameters too."""
    for path, operations in paths.items():
        form = operations.get("post", {}) if path.endswith("/_search") else {}
        content = form.get("requestBody", {}).get("content", {})
        schema = content.get("application/x-www-form-urlencoded", {}).get("schema")
        by_get = paths.get(path.removesuffix("/_search"), {}).get("get")
        if schema is None or by_get is None:
            continue
        properties = schema.setdefault("properties", {})
        for name, description in RESULT_PARAMETER_FIELDS.items():
            properties.setdefault(name, {"type": "string", "description": description})
        declared = {parameter["name"] for parameter in by_get.get("parameters", [])}
        by_get.setdefault("parameters", []).extend(
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
             "description": property_.get("description", "")}
            for name, property_ in properties.items()
            if name not in declared
        )  # fmt: skip


def declare_fhir_answers(app: FastAPI) -> None:
    """Wraps the app's OpenAPI generation; the schema is made once and kept."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        app.openapi_schema = describe_fhir_answers(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
