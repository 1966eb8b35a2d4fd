"""The HTTP conventions FHIR clients rely on, for every route at once: content negotiation
(`_format`, `Accept` → 406), HEAD wherever GET is served, conditional reads (`If-None-Match`,
`If-Modified-Since` → 304), `Prefer: return=...` on writes and operations, `Prefer:
handling=lenient` on searches, an absolute `Location`, and `Allow` on a 405.

One ASGI middleware rather than code in each route, so no route can forget them. It sees the
answer each route gave (after the disclosure check and the access log), so a 304 or an empty
body never tells more, or less, than the route decided to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.fhir_api import FHIR_JSON, FhirError, operation_outcome, outcome_response

_JSON_FORMATS = {"json", "application/json", "application/fhir+json"}
_HTML_FORMATS = {"html", "text/html"}
_FHIR_VERSIONS = {"4.0", "4.0.1"}
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Paths that answer a person's log extract as HTML today (services/common/access_log_routes.py).
_HTML_PATH_ENDINGS = ("/$access-log",)


def _parse_http_date(text: str | None) -> datetime | None:
    """An HTTP date, or None for one that is missing or malformed (RFC 7232 §3.3: a
    recipient ignores an If-Modified-Since that is not a valid date)."""
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---- content negotiation ---------------------------------------------------------------


def _media_type(text: str) -> tuple[str, dict[str, str]]:
    """(`type/subtype`, parameters) of one media range, lower-cased; `+` read back from the
    space a URL's query turns it into (`_format=application/fhir+json` unencoded)."""
    kind, *options = text.split(";")
    parameters = {}
    for option in options:
        name, _, value = option.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower().replace(" ", "+"), parameters


def _served(kind: str, parameters: dict[str, str], html: bool) -> bool:
    version = parameters.get("fhirversion")
    if version is not None and version not in _FHIR_VERSIONS:
        return False
    return kind in _JSON_FORMATS or (html and kind in _HTML_FORMATS)


def _accepts_what_is_served(accept: str, html: bool) -> bool:
    """Whether an Accept header leaves room for what is served. Entries that are no media
    range are passed over, and a header with none at all is read as no header."""
    ranges = [_media_type(entry) for entry in accept.split(",")]
    ranges = [(kind, options) for kind, options in ranges if kind.count("/") == 1]
    if not ranges:
        return True
    for kind, options in ranges:
        try:
            weight = float(options.get("q", "1"))
        except ValueError:
            weight = 1.0  # a malformed weight counts as none given
        if weight <= 0:
            continue
        if kind in ("*/*", "application/*") or (html and kind == "text/*"):
            return True
        if _served(kind, options, html):
            return True
    return False


def negotiation_refusal(scope: Scope) -> FhirError | None:
    """A 406 for a `_format` (which overrides Accept, as FHIR says) or an Accept header that
    asks only for what is not served: XML, or HTML where no HTML is served."""
    html = scope["path"].endswith(_HTML_PATH_ENDINGS)
    formats = Request(scope).query_params.getlist("_format")
    if any(_CONTROL.search(format) for format in formats):
        return None  # refused as a 400 by the request checks every route runs first
    if formats:
        for format in formats:
            if not _served(*_media_type(format), html):
                return FhirError(
                    406,
                    "not-supported",
                    f"_format={format} is not served; ask for json (application/fhir+json)",
                    expression="_format",
                )
        return None
    accept = Headers(scope=scope).get("accept")
    if accept is not None and not _accepts_what_is_served(accept, html):
        return FhirError(
            406,
            "not-supported",
            f"Accept: {accept} names nothing served; accept application/fhir+json",
        )
    return None


# ---- Prefer ----------------------------------------------------------------------------


def preferences(headers: Headers) -> dict[str, str]:
    """The `Prefer` header's preferences (RFC 7240), name → value, lower-cased. Unknown ones
    are kept here and ignored by whoever reads them, as RFC 7240 asks."""
    found: dict[str, str] = {}
    for header in headers.getlist("prefer"):
        for preference in header.split(","):
            token = preference.split(";")[0]
            name, _, value = token.partition("=")
            found.setdefault(name.strip().lower(), value.strip().strip('"').lower())
    return found


# The search parameters a search ignored under `Prefer: handling=lenient`, or None where
# unknown ones are refused (strict, the default). A list, shared with the worker thread a
# route runs in, so what the search appends the middleware reads.
_lenient_ignored: ContextVar[list[str] | None] = ContextVar("lenient_ignored", default=None)


def ignoring_unknown_parameters(unknown: Iterable[str]) -> bool:
    """True if this request asked for lenient handling, noting `unknown` as ignored (the
    answer says so); False if unknown parameters are to be refused."""
    ignored = _lenient_ignored.get()
    if ignored is None:
        return False
    ignored.extend(unknown)
    return True


# ---- the middleware --------------------------------------------------------------------


def _not_modified(request_headers: Headers, response_headers: Headers) -> bool:
    """RFC 7232: If-None-Match (a list of ETags, or *) decides when given; otherwise
    If-Modified-Since against Last-Modified, in whole seconds."""
    tag = response_headers.get("etag")
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        if tag is None:
            return False
        wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in wanted or tag.removeprefix("W/") in wanted
    since = _parse_http_date(request_headers.get("if-modified-since"))
    modified = _parse_http_date(response_headers.get("last-modified"))
    return since is not None and modified is not None and modified <= since


class FhirHttpConventions:
    """See the module's docstring. A plain ASGI middleware (no task or stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope
        fhir = scope["path"].startswith("/fhir")
        refusal = negotiation_refusal(scope) if fhir else None
        if refusal is not None:
            await outcome_response(refusal)(inner, receive, _without_body(send) if head else send)
            return
        prefer = preferences(Headers(scope=scope)) if fhir else {}
        token = _lenient_ignored.set([] if prefer.get("handling") == "lenient" else None)
        try:
            answer = _Answer(scope, prefer, head, send)
            await self.app(inner, receive, answer.send)
        finally:
            _lenient_ignored.reset(token)


def _without_body(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return sending


class _Answer:
    """One response on its way out, changed as the request's conventions ask."""

    def __init__(self, scope: Scope, prefer: dict[str, str], head: bool, send: Send) -> None:
        self.scope, self.prefer, self.head, self._send = scope, prefer, head, send
        self.ignored = _lenient_ignored.get()
        self.start: Message | None = None
        # "not-modified", "empty", "outcome", "lenient" or None (passed on as it is)
        self.rewrite: str | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._started(message)
        elif message["type"] == "http.response.body" and self.rewrite in ("outcome", "lenient"):
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._send_replaced(b"".join(self.chunks))
        elif message["type"] == "http.response.body" and (self.head or self.rewrite):
            await self._send({**message, "body": b""})
        else:
            await self._send(message)

    async def _started(self, message: Message) -> None:
        status = message["status"]
        headers = MutableHeaders(scope=message)
        location = headers.get("location")
        # A create's (201) and a conditional create's that found the resource (200).
        if status in (200, 201) and location and "://" not in location:
            headers["location"] = f"{Request(self.scope).base_url}fhir/{location}"
        self.rewrite = self._rewrite(status, headers)
        if self.rewrite == "not-modified":
            for name in ("content-type", "content-length"):
                del headers[name]
            message = {**message, "status": 304}
        elif self.rewrite == "empty":
            headers["content-length"] = "0"
            headers["preference-applied"] = "return=minimal"
        elif self.rewrite in ("outcome", "lenient"):
            self.start = message  # sent with the new length once the body is known
            return
        await self._send(message)

    def _rewrite(self, status: int, headers: MutableHeaders) -> str | None:
        method, path = self.scope["method"], self.scope["path"]
        reading = method in ("GET", "HEAD") and status == 200
        if reading and _not_modified(Headers(scope=self.scope), headers):
            return "not-modified"
        # A search that ignored parameters, by GET or by POST to _search.
        if self.ignored and status == 200 and headers.get("content-type", "").startswith(FHIR_JSON):
            return "lenient"
        writes = method in ("POST", "PUT", "PATCH") and not path.endswith("/_search")
        # Not the base's transaction or batch: its entries carry the preference themselves.
        if writes and 200 <= status < 300 and path.startswith("/fhir/"):
            wanted = self.prefer.get("return")
            if wanted == "minimal":
                return "empty"
            if wanted == "operationoutcome":
                return "outcome"
        return None

    async def _send_replaced(self, body: bytes) -> None:
        assert self.start is not None
        headers = MutableHeaders(scope=self.start)
        if self.rewrite == "outcome":
            headers["preference-applied"] = "return=OperationOutcome"
            replaced = _done_outcome(self.start["status"])
        else:
            replaced = _with_ignored_noted(body, self.ignored or [])
        headers["content-length"] = str(len(replaced))
        await self._send(self.start)
        await self._send({"type": "http.response.body", "body": b"" if self.head else replaced})


def _done_outcome(status: int) -> bytes:
    outcome = operation_outcome(
        "informational", f"done ({status}); see Location and ETag", severity="information"
    )
    return json.dumps(outcome, ensure_ascii=False).encode("utf-8")


def _with_ignored_noted(body: bytes, ignored: list[str]) -> bytes:
    """A searchset with an outcome entry naming the parameters it ignored (R4 search.html:
    a server that ignores parameters says so in an OperationOutcome, mode `outcome`)."""
    bundle: dict[str, Any] = json.loads(body)
    if bundle.get("resourceType") != "Bundle":
        return body
    outcome = operation_outcome(
        "not-supported",
        f"ignored unknown search parameter(s) under Prefer: handling=lenient: "
        f"{', '.join(sorted(set(ignored)))}",
        severity="warning",
    )
    bundle.setdefault("entry", []).append({"resource": outcome, "search": {"mode": "outcome"}})
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
