"""What a transaction-response or batch-response Bundle says of each entry, and the refusal
of a whole transaction that names the entry refused."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from services.common.bundles.dispatch import EntryAnswer
from services.common.bundles.entries import REQUEST_HEADERS, BundleEntry
from services.common.fhir_api import FhirError, FhirResponse, operation_outcome

_ELEMENT_OF_HEADER = {header: element for element, header in REQUEST_HEADERS.items()}


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def response_entry(answer: EntryAnswer) -> dict[str, Any]:
    """One entry of a response Bundle: status, location, etag, lastModified, and the resource
    the single request answered with (an OperationOutcome as `response.outcome`)."""
    response: dict[str, Any] = {"status": status_line(answer.status)}
    if "location" in answer.headers:
        response["location"] = answer.headers["location"]
    if "etag" in answer.headers:
        response["etag"] = answer.headers["etag"]
    resource = answer.resource
    meta = resource.get("meta", {}) if resource else {}
    if isinstance(meta, dict) and isinstance(meta.get("lastUpdated"), str):
        response["lastModified"] = meta["lastUpdated"]
    if resource is not None and resource.get("resourceType") == "OperationOutcome":
        response["outcome"] = resource
        return {"response": response}
    entry: dict[str, Any] = {"response": response}
    if resource is not None:
        entry["resource"] = resource
    return entry


def refused_entry(error: FhirError) -> dict[str, Any]:
    """A batch entry refused before it ran (malformed, or naming another entry)."""
    outcome = operation_outcome(
        error.code, error.diagnostics, rule=error.rule, expression=error.expression
    )
    return {"response": {"status": status_line(error.status), "outcome": outcome}}


def response_bundle(kind: str, entries: list[dict[str, Any]]) -> FhirResponse:
    return FhirResponse({"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries})


def _expression(entry: BundleEntry, expression: str) -> str:
    """An element of the entry's single request, as an element of the Bundle."""
    at = entry.expression
    if expression in _ELEMENT_OF_HEADER:
        return f"{at}.request.{_ELEMENT_OF_HEADER[expression]}"
    kind = entry.resource.get("resourceType") if entry.resource else None
    if kind and expression.startswith(f"{kind}."):
        return f"{at}.resource{expression[len(kind) :]}"
    return f"{at}: {expression}"


def transaction_refusal(entry: BundleEntry, answer: EntryAnswer) -> FhirResponse:
    """The refused entry's own answer (its status, its issues), each issue naming the entry;
    nothing of the transaction was written."""
    said = answer.resource if answer.resource else {}
    issues = said.get("issue") if said.get("resourceType") == "OperationOutcome" else None
    if not isinstance(issues, list) or not issues:
        issues = [{"severity": "error", "code": "processing", "diagnostics": "refused"}]
    named = []
    for issue in issues:
        issue = dict(issue)
        where = [_expression(entry, e) for e in issue.get("expression", [])]
        issue["expression"] = where or [entry.expression]
        issue["diagnostics"] = (
            f"{entry.expression} ({entry.method} {entry.url}): {issue.get('diagnostics', '')}"
            " (the transaction was not made: nothing was written)"
        )
        named.append(issue)
    # What tells the client how to go on: when to try again, how to authenticate.
    headers = {
        name: answer.headers[name.lower()]
        for name in ("Retry-After", "WWW-Authenticate")
        if name.lower() in answer.headers
    }
    return FhirResponse(
        {"resourceType": "OperationOutcome", "issue": named},
        status_code=answer.status,
        headers=headers,
    )
