"""FHIR over HTTP, the parts both services share: OperationOutcome errors, the FHIR JSON
media type, body parsing, ETags and Bundles."""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from contracts.canonical import CANONICAL_BASE
from services.common.domain import InvalidCommand, NotFound, RuleViolation, VersionMismatch
from services.common.fhir_extensions import with_erasures_marked
from services.common.request_ids import request_id_of, route_template_of

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
        expression: str | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.rule = rule
        self.headers = headers or {}
        self.expression = expression  # FHIRPath of the element refused


def unprocessable(message: str, rule: str) -> FhirError:
    """422: well-formed FHIR that breaks one of the rules of the domain."""
    return FhirError(422, "invalid", message, rule=rule)


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        # Every FHIR answer goes out here: an erased text is marked as such wherever it is.
        content = with_erasures_marked(content)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def operation_outcome(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    rule: str | None = None,
    expression: str | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if rule:
        issue["details"] = {"coding": [{"system": RULE_SYSTEM, "code": rule}], "text": rule}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(error: FhirError) -> FhirResponse:
    return FhirResponse(
        operation_outcome(
            error.code, error.diagnostics, rule=error.rule, expression=error.expression
        ),
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


def allowed_methods(request: Request) -> str:
    """The methods some route serves at the request's path, HEAD wherever GET is."""
    # Asked method by method: an included router (FastAPI's) matches as a whole, without
    # saying which methods its routes serve.
    methods = {
        method
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        for route in request.app.router.routes
        if route.matches({**request.scope, "method": method})[0] == Match.FULL
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


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
    async def _http_error(request: Request, error: StarletteHTTPException) -> FhirResponse:
        code = _HTTP_ISSUE_CODES.get(error.status_code, "processing")
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        headers = dict(error.headers or {})
        if error.status_code == 405:  # every method the path serves, not one route's
            headers["Allow"] = allowed_methods(request)
            detail = f"{request.method} is not served here; Allow: {headers['Allow']}"
        return outcome_response(FhirError(error.status_code, code, detail, headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> FhirResponse:
        return unexpected_error_response(error, request.scope)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def refuse_control_characters(request: Request) -> None:
    """A 400 for a NUL or other control character in the path or any query name or value,
    before the route reads or logs it (one NUL in an access record breaks PostgreSQL's text
    columns for every later reader)."""
    if _CONTROL.search(request.url.path):
        raise FhirError(400, "invalid", "the path holds a control character")
    for name, value in request.query_params.multi_items():
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise FhirError(
                400,
                "invalid",
                "a query parameter holds a control character",
                expression=name if not _CONTROL.search(name) else None,
            )


def install_request_checks(app: FastAPI) -> None:
    """Checks every route of `app` runs first (before authorization and logging); call it
    before any route is added."""
    app.router.dependencies.append(Depends(refuse_control_characters))


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


def unexpected_error_response(error: Exception, scope: Scope) -> FhirResponse:
    """A 500 that names the request's id, and a log line a developer can trace it by: method,
    route template, id, exception type and the traceback's frames. Never the exception's
    message, the query or the body, which may quote a personnummer."""
    request_id = request_id_of(scope)
    log.error(
        "unexpected %s in %s %s (request %s); traceback without the message:\n%s",
        type(error).__qualname__,
        scope.get("method", "?"),
        route_template_of(scope),
        request_id,
        "".join(traceback.format_tb(error.__traceback__)).rstrip(),
    )
    return outcome_response(
        FhirError(500, "exception", f"internal error; nothing was written (request {request_id})")
    )


DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64


async def fhir_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (a FastAPI dependency); see read_fhir_body."""
    return await read_fhir_body(request)


async def read_fhir_body(
    request: Request, when_empty: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413/415 OperationOutcome: at most the
    app's `max_body_bytes`, UTF-8, nested at most MAX_JSON_DEPTH deep, and with no NUL or
    lone surrogate in any text (PostgreSQL cannot store them, and they are no valid text).
    `when_empty`: what an empty body stands for (by default it is refused)."""
    raw = await _limited_body(request)
    if not raw and when_empty is not None:
        return when_empty
    content_type, _, options = request.headers.get("content-type", "").partition(";")
    content_type = content_type.strip().lower()
    if content_type and content_type not in (FHIR_JSON, "application/json"):
        raise FhirError(415, "not-supported", f"send {FHIR_JSON}, not {content_type}")
    _require_utf8(options)
    try:
        text = raw.decode("utf-8")  # json.loads(bytes) would also guess UTF-16 and UTF-32
        _refuse_deep_nesting(text)
        body = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FhirError(400, "structure", f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    _refuse_unstorable_text(body)
    return body


def _require_utf8(options: str) -> None:
    # Refused rather than decoded: FHIR's JSON is UTF-8 only, and a body decoded from another
    # charset would be stored as text its sender never checked.
    for option in options.split(";"):
        name, _, value = option.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise FhirError(415, "not-supported", f"send UTF-8 (charset=utf-8), not {charset}")


def max_body_bytes(request: Request) -> int:
    settings = getattr(request.app.state, "settings", None)  # ServiceSettings, when served
    return getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)


def _too_large(limit: int) -> FhirError:
    return FhirError(413, "too-costly", f"the body is larger than {limit} bytes")


async def _limited_body(request: Request) -> bytes:
    """The body, read no further than the limit (Content-Length is checked first, and the
    streamed bytes are counted for a body sent without one, or with a false one)."""
    limit = max_body_bytes(request)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _refuse_deep_nesting(text: str) -> None:
    # Counted before parsing: json.loads recurses, and [ × 100,000 is a RecursionError.
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token[0]
        if bracket in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise FhirError(
                    400, "structure", f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
                )
        elif bracket in "]}":
            depth -= 1


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse_unstorable_text(body: dict[str, Any]) -> None:
    """A 400 naming the first element whose name or text holds a NUL or a lone surrogate,
    or (in a resource) whose value is null: FHIR JSON leaves an absent element out, and a
    null read as "absent" would be stored as None. A Parameters body's nulls are left to the
    operation pipeline, which names the parameter."""
    root = body.get("resourceType")
    root = root if isinstance(root, str) and not _UNSTORABLE.search(root) else "Resource"
    refuse_null = root != "Parameters"
    pending: list[tuple[str, Any]] = [(root, body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    raise _unstorable(path)
                pending.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            pending += [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        elif isinstance(value, str) and _UNSTORABLE.search(value):
            raise _unstorable(path)
        elif value is None and refuse_null:
            raise FhirError(
                400, "invalid", f"{path} is null; leave an absent element out", expression=path
            )


def _unstorable(path: str) -> FhirError:
    return FhirError(
        400,
        "invalid",
        f"{path} holds a NUL character or a lone surrogate, which no text may hold",
        expression=path,
    )


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


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """A version, count or cursor written in ASCII digits, or None. isdigit() alone accepts
    '²' and Arabic-Indic digits, which int() refuses or reads; int() of 5,000 digits is slow."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def parse_if_match(header: str | None) -> int | None:
    """The version a client expects (`If-Match: W/"3"`), for optimistic concurrency."""
    if header is None:
        return None
    version = whole_number(header.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise FhirError(400, "invalid", 'If-Match must be an ETag like W/"3"')
    return version


def http_date(fhir_instant: str) -> str:
    """`2026-12-02T15:18:55.123+00:00` as an HTTP date (RFC 7231): `Wed, 02 Dec 2026
    15:18:55 GMT`. The fraction is dropped: HTTP dates count whole seconds."""
    moment = datetime.fromisoformat(fhir_instant)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def resource_response(resource: dict[str, Any], status: int = 200) -> FhirResponse:
    meta = resource.get("meta", {})
    headers = {}
    if "versionId" in meta:
        headers["ETag"] = etag(int(meta["versionId"]))
    if "lastUpdated" in meta:
        headers["Last-Modified"] = http_date(meta["lastUpdated"])
    if status == 201:
        headers["Location"] = (
            f"{resource['resourceType']}/{resource['id']}/_history/{meta.get('versionId', 1)}"
        )
    return FhirResponse(resource, status_code=status, headers=headers)


def searchset(
    base: str,
    resources: list[dict[str, Any]],
    self_url: str,
    *,
    total: int | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle; `total` and `links` (self, next, previous) where it is one page."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources) if total is None else total,
        "link": links or [{"relation": "self", "url": self_url}],
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
