"""The web client's only way to data: the two services' FHIR APIs over HTTP, with the
signed-in user's own bearer token, so a page can never show or change more than the API
allows that user. Every answer the services refuse becomes an exception a page can explain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Service = Literal["sip", "consent"]
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Issue:
    """One issue of an OperationOutcome: what was wrong and, where given, with which element."""

    message: str
    expression: str | None = None
    code: str | None = None
    rule: str | None = None


class ServiceUnavailable(Exception):
    """A service did not answer, or answered with a server error."""

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        self.service = service


class SessionEnded(Exception):
    """The token was not accepted (expired, or its issuer's key rotated away): sign in again."""


@dataclass
class Refused(Exception):
    """A 4xx answer with its OperationOutcome's issues."""

    status: int
    issues: list[Issue] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(issue.message for issue in self.issues)


class ChangedMeanwhile(Refused):
    """412: someone changed the resource since the version the user edited."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    etag: str | None

    @property
    def version(self) -> str | None:
        return self.body.get("meta", {}).get("versionId")


def issues_of(body: Any) -> list[Issue]:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    issues = []
    for issue in body.get("issue", []):
        rule = next(
            (c.get("code") for c in issue.get("details", {}).get("coding", []) if c.get("code")),
            None,
        )
        expression = (issue.get("expression") or [None])[0]
        message = issue.get("diagnostics") or issue.get("details", {}).get("text") or ""
        issues.append(Issue(message, expression, issue.get("code"), rule))
    return issues


class FhirClient:
    """One user's calls to the services, for one page."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: dict[Service, str],
        token: str,
        request_id: str | None = None,
        shown: Callable[[Any], Any] = lambda body: body,
    ) -> None:
        """`shown`: what each answer's body is read as (the erased texts put in words:
        erased_texts.py, which this module cannot import: its texts import this one)."""
        self._http = http
        self._shown = shown
        self._urls = urls
        self._headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
        if request_id:
            self._headers["X-Request-ID"] = request_id

    async def read(
        self, service: Service, path: str, params: dict[str, Any] | None = None
    ) -> Answer:
        return await self._call(service, "GET", path, params=params)

    async def search(self, service: Service, resource_type: str, form: dict[str, Any]) -> dict:
        """A search posted as a form, so a personnummer never appears in a URL."""
        answer = await self._call(service, "POST", f"{resource_type}/_search", data=form)
        return answer.body

    async def create(
        self,
        service: Service,
        resource: dict[str, Any],
        if_none_exist: str | None = None,
        if_match: str | None = None,
    ) -> Answer:
        """`if_none_exist` makes a retried create answer with what the first one made;
        `if_match` names the version of the record the new resource changes (an answer to a
        meeting invitation changes its plan)."""
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        if if_match:
            headers["If-Match"] = f'W/"{if_match}"'
        return await self._call(
            service, "POST", resource["resourceType"], json=resource, headers=headers
        )

    async def operation(
        self,
        service: Service,
        path: str,
        parameters: list[dict[str, Any]],
        if_match: str | None = None,
        if_none_exist: str | None = None,
    ) -> Answer:
        """`if_none_exist`: an operation that makes a resource, made once (`$admit`)."""
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else {}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        body = {"resourceType": "Parameters", "parameter": parameters}
        return await self._call(service, "POST", path, json=body, headers=headers)

    async def _call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **request: Any,
    ) -> Answer:
        url = f"{self._urls[service]}/fhir/{path}"
        all_headers = dict(self._headers)
        if "json" in request:
            all_headers["Content-Type"] = FHIR_JSON
        all_headers.update(headers or {})
        try:
            response = await self._http.request(method, url, headers=all_headers, **request)
        except httpx.HTTPError:
            raise ServiceUnavailable(service) from None
        if response.status_code >= 500:
            raise ServiceUnavailable(service)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code == 401:
            raise SessionEnded()
        if response.status_code == 412:
            raise ChangedMeanwhile(412, issues_of(body))
        if response.status_code >= 400:
            raise Refused(response.status_code, issues_of(body))
        etag = response.headers.get("ETag")
        return Answer(response.status_code, self._shown(body), etag)
