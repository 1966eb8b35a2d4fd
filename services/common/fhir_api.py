"""FHIR over HTTP, the parts both services share: OperationOutcome errors, the FHIR JSON
media type, body parsing, ETags and Bundles."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.canonical import CANONICAL_BASE
from services.common.domain import InvalidCommand, NotFound, RuleViolation, VersionMismatch

FHIR_JSON = "application/fhir+json"
RULE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/rule"

log = logging.getLogger("sip.api")

Resource = TypeVar("Resource", bound=BaseModel)


class FhirError(Exception):
    """A refusal that the API turns into an OperationOutcome with this HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.rule = rule
        self.headers = headers or {}


def unprocessable(message: str, rule: str) -> FhirError:
    """422: well-formed FHIR that breaks one of the rules of the domain."""
    return FhirError(422, "invalid", message, rule=rule)


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def operation_outcome(
    code: str, diagnostics: str, *, severity: str = "error", rule: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if rule:
        issue["details"] = {"coding": [{"system": RULE_SYSTEM, "code": rule}], "text": rule}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(error: FhirError) -> FhirResponse:
    return FhirResponse(
        operation_outcome(error.code, error.diagnostics, rule=error.rule),
        status_code=error.status,
        headers=error.headers,
    )


_HTTP_ISSUE_CODES = {
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    415: "not-supported",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def _fhir_error(_: Request, error: FhirError) -> FhirResponse:
        return outcome_response(error)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, error: NotFound) -> FhirResponse:
        return outcome_response(FhirError(404, "not-found", f"{error} is not known"))

    @app.exception_handler(VersionMismatch)
    async def _version(_: Request, error: VersionMismatch) -> FhirResponse:
        return outcome_response(FhirError(412, "conflict", error.message, rule=error.rule))

    @app.exception_handler(InvalidCommand)
    async def _invalid_command(_: Request, error: InvalidCommand) -> FhirResponse:
        return outcome_response(unprocessable(error.message, error.rule))

    @app.exception_handler(RuleViolation)
    async def _rule(_: Request, error: RuleViolation) -> FhirResponse:
        return outcome_response(FhirError(409, "business-rule", error.message, rule=error.rule))

    @app.exception_handler(IntegrityError)
    async def _concurrent_write(_: Request, __: IntegrityError) -> FhirResponse:
        # Two writers appended the same version of an aggregate: the second is refused whole.
        return outcome_response(
            FhirError(409, "conflict", "changed by someone else at the same time; read it again")
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> FhirResponse:
        return outcome_response(FhirError(400, "invalid", _describe_errors(error.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> FhirResponse:
        code = _HTTP_ISSUE_CODES.get(error.status_code, "processing")
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return outcome_response(FhirError(error.status_code, code, detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> FhirResponse:
        return unexpected_error_response(error)


def unavailable(diagnostics: str, retry_after_seconds: int = 5) -> FhirError:
    """503: something the answer depends on cannot be reached now; try again later."""
    return FhirError(
        503, "transient", diagnostics, headers={"Retry-After": str(retry_after_seconds)}
    )


def access_log_unwritable(error: Exception) -> FhirError:
    """Fail closed: an access that cannot be logged is not answered."""
    return unavailable(
        f"the access log cannot be written ({type(error).__name__}); nothing is disclosed"
    )


def unexpected_error_response(error: Exception) -> FhirResponse:
    # The exception text may quote request data (a personnummer); log the type only.
    log.error("unexpected %s while serving a request", type(error).__name__)
    return outcome_response(FhirError(500, "exception", "internal error; nothing was written"))


async def fhir_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/415 OperationOutcome."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in (FHIR_JSON, "application/json"):
        raise FhirError(415, "not-supported", f"send {FHIR_JSON}, not {content_type}")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FhirError(400, "structure", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    return body


def parse_resource(model: type[Resource], body: dict[str, Any]) -> Resource:
    """Validates a FHIR resource's structure with fhir.resources (R4B models)."""
    expected = model.__name__
    if body.get("resourceType") != expected:
        raise FhirError(
            400, "invalid", f"expected resourceType '{expected}', got '{body.get('resourceType')}'"
        )
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise FhirError(400, "structure", _describe_errors(error.errors())) from None


def _describe_errors(errors: Iterable[Any]) -> str:
    parts = []
    for error in list(errors)[:10]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location or 'resource'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version a client expects (`If-Match: W/"3"`), for optimistic concurrency."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise FhirError(400, "invalid", 'If-Match must be an ETag like W/"3"')
    return int(value)


def resource_response(resource: dict[str, Any], status: int = 200) -> FhirResponse:
    meta = resource.get("meta", {})
    headers = {}
    if "versionId" in meta:
        headers["ETag"] = etag(int(meta["versionId"]))
    if "lastUpdated" in meta:
        headers["Last-Modified"] = meta["lastUpdated"]
    if status == 201:
        headers["Location"] = (
            f"{resource['resourceType']}/{resource['id']}/_history/{meta.get('versionId', 1)}"
        )
    return FhirResponse(resource, status_code=status, headers=headers)


def searchset(base: str, resources: list[dict[str, Any]], self_url: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def history_bundle(
    base: str,
    versions: list[dict[str, Any]],
    created: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """A history Bundle, newest version first, as FHIR's `_history` interaction returns it.

    `created` tells which versions created their resource (by default, version 1)."""
    entries = []
    for resource in reversed(versions):
        version = resource["meta"]["versionId"]
        first = created(resource) if created else version == "1"
        entries.append(
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "request": {
                    "method": "POST" if first else "PUT",
                    "url": f"{resource['resourceType']}" + ("" if first else f"/{resource['id']}"),
                },
                "response": {
                    "status": "201 Created" if first else "200 OK",
                    "etag": etag(int(version)),
                    "lastModified": resource["meta"]["lastUpdated"],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}


def fhir_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"
