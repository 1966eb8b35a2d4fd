"""A transaction or batch Bundle read into its entries, each checked on its own so that a batch
can answer a malformed entry by itself and a transaction refuses the whole Bundle for it.

What an entry may be: a `request` with a `method` FHIR names and a `url` relative to the base
(no scheme or host, no `.` or `..`, not the base itself, so a Bundle cannot post a Bundle),
the conditional headers FHIR gives an entry, and a `resource` where the method sends one. At
most MAX_ENTRIES entries: each runs the whole pipeline of a single request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from services.common.fhir_api import FhirError

MAX_ENTRIES = 100
KINDS = ("transaction", "batch")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
MAX_URL = 2048
URN_UUID = "urn:uuid:"
# Bundle.entry.request's conditional elements, sent as the single request's headers.
REQUEST_HEADERS = {
    "ifMatch": "If-Match",
    "ifNoneExist": "If-None-Exist",
    "ifNoneMatch": "If-None-Match",
    "ifModifiedSince": "If-Modified-Since",
}
_ENTRY_ELEMENTS = {"fullUrl", "resource", "request", "link"}
_PRINTABLE = re.compile(r"^[ -~]*$")


@dataclass(frozen=True)
class BundleEntry:
    index: int
    method: str
    url: str  # relative to the base, path and query as sent
    full_url: str | None = None
    resource: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def expression(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def path(self) -> str:
        return self.url.partition("?")[0]


def invalid(expression: str, message: str, status: int = 400) -> FhirError:
    code = "too-costly" if status == 413 else "invalid"
    return FhirError(status, code, f"{expression}: {message}", expression=expression)


def bundle_kind(body: dict[str, Any]) -> str:
    """`transaction` or `batch`, or a 400 naming what the body is instead."""
    if body.get("resourceType") != "Bundle":
        raise invalid("Bundle.resourceType", "POST to the base takes a Bundle")
    kind = body.get("type")
    if kind not in KINDS:
        raise invalid("Bundle.type", "transaction or batch")
    return kind


def bundle_entries(body: dict[str, Any], base: str) -> list[BundleEntry | FhirError]:
    """Each entry, or the refusal of it; a Bundle with too many is refused whole (413)."""
    raw = body.get("entry", [])
    if not isinstance(raw, list):
        raise invalid("Bundle.entry", "a list of entries")
    if len(raw) > MAX_ENTRIES:
        raise invalid("Bundle.entry", f"at most {MAX_ENTRIES} entries in one Bundle", 413)
    entries: list[BundleEntry | FhirError] = []
    full_urls: set[str] = set()
    for index, element in enumerate(raw):
        try:
            entry = _entry(index, element, base)
            if entry.full_url is not None and entry.full_url in full_urls:
                raise invalid(f"{entry.expression}.fullUrl", "an earlier entry has it already")
        except FhirError as refused:
            entries.append(refused)
            continue
        if entry.full_url is not None:
            full_urls.add(entry.full_url)
        entries.append(entry)
    return entries


def _entry(index: int, element: Any, base: str) -> BundleEntry:
    at = f"Bundle.entry[{index}]"
    if not isinstance(element, dict):
        raise invalid(at, "an entry is an object")
    unknown = set(element) - _ENTRY_ELEMENTS
    if unknown:
        raise invalid(f"{at}.{sorted(unknown)[0]}", "not an element of a request entry")
    request = element.get("request")
    if not isinstance(request, dict):
        raise invalid(f"{at}.request", "every entry has a request (method and url)")
    unknown = set(request) - {"method", "url", *REQUEST_HEADERS}
    if unknown:
        raise invalid(f"{at}.request.{sorted(unknown)[0]}", "not an element of a request")
    method = request.get("method")
    if method not in METHODS:
        raise invalid(f"{at}.request.method", " | ".join(METHODS))
    return BundleEntry(
        index,
        method,
        _url(request.get("url"), base, f"{at}.request.url"),
        _full_url(element.get("fullUrl"), f"{at}.fullUrl"),
        _resource(element.get("resource"), method, f"{at}.resource"),
        _headers(request, f"{at}.request"),
    )


def _url(url: Any, base: str, at: str) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL or not _PRINTABLE.match(url):
        raise invalid(at, f"a URL of 1-{MAX_URL} printable ASCII characters")
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    path = url.partition("?")[0]
    if "://" in url or url.startswith("/") or "#" in url or "\\" in url:
        raise invalid(at, "relative to the base, as `CarePlan` or `CarePlan/{id}/$operation`")
    segments = unquote(path).split("/")
    if any(segment in ("", ".", "..") for segment in segments) or " " in path:
        raise invalid(at, "a path of non-empty segments, not the base itself")
    return url


def _full_url(full_url: Any, at: str) -> str | None:
    if full_url is None:
        return None
    if not isinstance(full_url, str) or not 0 < len(full_url) <= MAX_URL:
        raise invalid(at, f"a URI of 1-{MAX_URL} characters")
    if full_url.startswith(URN_UUID):
        try:
            UUID(full_url[len(URN_UUID) :])
        except ValueError:
            raise invalid(at, "urn:uuid: followed by a UUID") from None
    return full_url


def _resource(resource: Any, method: str, at: str) -> dict[str, Any] | None:
    if resource is None:
        return None
    if method not in ("POST", "PUT", "PATCH"):
        raise invalid(at, f"a {method} entry sends no resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise invalid(at, "a FHIR resource with its resourceType")
    return resource


def _headers(request: dict[str, Any], at: str) -> dict[str, str]:
    headers = {}
    for element, header in REQUEST_HEADERS.items():
        value = request.get(element)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_URL or not _PRINTABLE.match(value):
            raise invalid(f"{at}.{element}", "printable ASCII text")
        headers[header] = value
    return headers
