"""read, vread, _history and search for an event-sourced resource type.

Every route authenticates the caller, checks the resource's disclosure rule (a resource the
caller may not see is 404, so its existence does not leak) and logs the access before the
answer leaves.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from contracts.actor import Actor
from services.common.access_log import ACTION_OF_INTERACTION, REFUSED, SUCCESS
from services.common.application import VersionedApplication
from services.common.auth.dependency import authorize
from services.common.disclosure import Discloser
from services.common.domain import NotFound
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    access_log_unwritable,
    fhir_base,
    history_bundle,
    resource_response,
    whole_number,
)
from services.common.fhir_time import InvalidDateTime, now, parse_fhir_datetime, published


def resource_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise FhirError(404, "not-found", f"no resource with id '{value}'") from None


_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def storable_text(text: str | None) -> str | None:
    """Text from a request as an access record may hold it: control characters and lone
    surrogates escaped (\\u0000). The requests are checked before this; it is the second line
    of defence, as one NUL in PostgreSQL's text columns breaks the log for every reader."""
    if text is None:
        return None
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


class ResourceAccess:
    """Disclosure-checked, logged access to one application's resources."""

    def __init__(self, application: VersionedApplication, disclose: Discloser) -> None:
        self.application = application
        self.disclose = disclose
        self.resource_type = application.resource_type

    def log(
        self,
        actor: Actor,
        interaction: str,
        *,
        outcome: str = SUCCESS,
        patient: dict[str, str] | None = None,
        custodian: str | None = None,
        entity: str | None = None,
        consents: Iterable[str] = (),
        query: str | None = None,
        detail: str | None = None,
    ) -> None:
        try:
            self.application.record_access(
                interaction=interaction,
                action=ACTION_OF_INTERACTION.get(interaction, "E"),
                outcome=outcome,
                actor=actor.as_event_data(),
                patient=patient,
                custodian=custodian,
                entity=storable_text(entity),
                consents=list(consents),
                query=storable_text(query),
                detail=storable_text(detail),
                recorded_at=now(),
            )
        except Exception as error:
            raise access_log_unwritable(error) from None

    def open(self, actor: Actor, aggregate_id: UUID, interaction: str, entity: str) -> Any:
        """The aggregate, if the caller may see it; the access is logged either way."""
        aggregate = self.application.aggregate(aggregate_id)
        disclosure = self._disclosure(actor, aggregate, interaction, entity)
        self.log(
            actor,
            interaction,
            patient=aggregate.person_identifier,
            custodian=aggregate.custodian,
            entity=entity,
            consents=disclosure.consents,
        )
        return aggregate

    def for_change(self, actor: Actor, aggregate_id: UUID, interaction: str) -> Any:
        """The aggregate, if the caller may see it; a refusal is logged, the write logs itself."""
        aggregate = self.application.aggregate(aggregate_id)
        self._disclosure(actor, aggregate, interaction, f"{self.resource_type}/{aggregate_id}")
        return aggregate

    def _disclosure(self, actor: Actor, aggregate: Any, interaction: str, entity: str) -> Any:
        try:
            return self.disclose(aggregate, actor)
        except NotFound:
            self.log(
                actor,
                interaction,
                outcome=REFUSED,
                patient=aggregate.person_identifier,
                custodian=aggregate.custodian,
                entity=entity,
                detail="not disclosed to the caller",
            )
            raise

    def visible(
        self,
        actor: Actor,
        aggregates: Iterable[Any],
        query: str,
        interaction: str = "search-type",
        limit: int | None = None,
    ) -> list[Any]:
        """The search matches the caller may see (the first `limit` of them); one log record
        per person and custodian."""
        shown: list[Any] = []
        entities: dict[tuple[str, str, str | None], list[str]] = {}
        consents: dict[tuple[str, str, str | None], set[str]] = {}
        for aggregate in aggregates:
            if limit is not None and len(shown) >= limit:
                break
            try:
                disclosure = self.disclose(aggregate, actor)
            except NotFound:
                continue
            shown.append(aggregate)
            person = aggregate.person_identifier
            key = (person["system"], person["value"], aggregate.custodian)
            entities.setdefault(key, []).append(f"{self.resource_type}/{aggregate.id}")
            consents.setdefault(key, set()).update(disclosure.consents)
        for key, matched in entities.items():
            system, value, custodian = key
            self.log(
                actor,
                interaction,
                patient={"system": system, "value": value},
                custodian=custodian,
                entity=" ".join(matched),
                consents=sorted(consents[key]),
                query=query,
            )
        if not entities:
            self.log(actor, interaction, query=query, detail="no match the caller may see")
        return shown


def instant_parameter(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_fhir_datetime(value)
    except InvalidDateTime as error:
        raise FhirError(400, "invalid", f"{name}: {error}") from None


T = TypeVar("T")


def history_window(
    versions: list[T],
    moment: Callable[[T], datetime],
    since: datetime | None,
    at: datetime | None,
) -> list[T]:
    """The versions (oldest first) from `_since` on, and with `_at` those current at some
    time from that instant on: the one in force then and every later one."""
    if since is not None:
        versions = [v for v in versions if moment(v) >= since]
    if at is not None:
        current = [v for v in versions if moment(v) <= at][-1:]
        versions = current + [v for v in versions if moment(v) > at]
    return versions


Since = Annotated[str | None, Query(alias="_since", description="versions from this instant")]
At = Annotated[str | None, Query(alias="_at", description="as the resource stood at this instant")]
Count = Annotated[int, Query(alias="_count", ge=1, le=1000)]


@dataclass(frozen=True)
class ResourceVersion:
    """One version of a resource as its history lists it; rendered only when shown."""

    at: datetime
    version_id: str
    created: bool  # the version that created the resource
    render: Callable[[], dict[str, Any]]


class VersionedResource(Protocol):
    """A resource type whose versions are read from event-sourced aggregates: the aggregate's
    own type, or a view of one part of it (a plan's goals, meetings, care team)."""

    resource_type: str
    access: ResourceAccess

    def locate(self, id: str) -> tuple[UUID, str]:
        """(aggregate id, part) of a resource id."""
        ...

    def render(self, aggregate: Any, part: str) -> dict[str, Any] | None:
        """The resource of `part` in this version of the aggregate; None if it has none."""
        ...

    def versions(self, aggregate_id: UUID) -> dict[str, list[ResourceVersion]]:
        """Every part's versions, oldest first."""
        ...


class AggregateResource:
    """The aggregates of an application, each one resource."""

    def __init__(self, access: ResourceAccess, to_fhir: Callable[[Any], dict[str, Any]]) -> None:
        self.access = access
        self.to_fhir = to_fhir
        self.application = access.application
        self.resource_type = access.resource_type

    def locate(self, id: str) -> tuple[UUID, str]:
        return resource_id(id), ""

    def render(self, aggregate: Any, part: str) -> dict[str, Any] | None:
        return self.to_fhir(aggregate)

    def versions(self, aggregate_id: UUID) -> dict[str, list[ResourceVersion]]:
        return {
            "": [
                ResourceVersion(
                    published(version.modified_on),
                    str(version.version),
                    version.version == 1,
                    lambda version=version: self.to_fhir(version),
                )
                for version in self.application.versions(aggregate_id)
            ]
        }


def versioned_resource(resource_type: str) -> Callable[[Request], VersionedResource]:
    def dependency(request: Request) -> VersionedResource:
        return request.app.state.resources[resource_type]

    return dependency


def _missing(resource_type: str, id: str, detail: str = "") -> FhirError:
    return FhirError(404, "not-found", f"no {resource_type} with id '{id}'{detail}")


def history_response(request: Request, versions: list[ResourceVersion]) -> FhirResponse:
    rendered = [(version.render(), version.created) for version in versions]
    created = {id(resource) for resource, first in rendered if first}
    bundle = history_bundle(
        fhir_base(request),
        [resource for resource, _ in rendered],
        created=lambda resource: id(resource) in created,
    )
    return FhirResponse(bundle)


def add_version_routes(router: APIRouter, resource_type: str) -> None:
    """read (with `_at` for time travel), vread, instance and type `_history` (with `_since`
    and `_at`). A caller sees the history of what it may see now, nothing else."""
    Reader = Annotated[Actor, Depends(authorize(resource_type, "r"))]
    Resource = Annotated[VersionedResource, Depends(versioned_resource(resource_type))]

    @router.get(f"/{resource_type}/_history", name=f"type history {resource_type}")
    def type_history(
        request: Request, actor: Reader, resource: Resource, since: Since = None, count: Count = 100
    ) -> FhirResponse:
        since_instant = instant_parameter("_since", since)
        application = resource.access.application
        aggregates = (application.aggregate(i) for i in application.aggregate_ids())
        query = urlencode(dict(request.query_params))
        versions = [
            version
            for aggregate in resource.access.visible(actor, aggregates, query, "history-type")
            for part_versions in resource.versions(aggregate.id).values()
            for version in part_versions
            if since_instant is None or version.at >= since_instant
        ]
        versions.sort(key=lambda version: version.at)
        return history_response(request, versions[-count:])

    @router.get(f"/{resource_type}/{{id}}", name=f"read {resource_type}")
    def read(id: str, actor: Reader, resource: Resource, at: At = None) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        instant = instant_parameter("_at", at)
        entity = f"{resource_type}/{id}" + (f"?_at={at}" if at else "")
        aggregate = resource.access.open(actor, aggregate_id, "read", entity)
        if instant is not None:
            aggregate = resource.access.application.version_at(aggregate.id, instant)
        rendered = resource.render(aggregate, part)
        if rendered is None:
            raise _missing(resource_type, id, f" at {at}" if at else "")
        return resource_response(rendered)

    @router.get(f"/{resource_type}/{{id}}/_history", name=f"history {resource_type}")
    def history(
        id: str,
        request: Request,
        actor: Reader,
        resource: Resource,
        since: Since = None,
        at: At = None,
    ) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        since_instant, at_instant = instant_parameter("_since", since), instant_parameter("_at", at)
        entity = f"{resource_type}/{id}/_history"
        resource.access.open(actor, aggregate_id, "history-instance", entity)
        versions = resource.versions(aggregate_id).get(part)
        if not versions:
            raise _missing(resource_type, id)
        window = history_window(versions, lambda v: v.at, since_instant, at_instant)
        return history_response(request, window)

    @router.get(f"/{resource_type}/{{id}}/_history/{{vid}}", name=f"vread {resource_type}")
    def vread(id: str, vid: str, actor: Reader, resource: Resource) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        entity = f"{resource_type}/{id}/_history/{vid}"
        aggregate = resource.access.open(actor, aggregate_id, "vread", entity)
        version = whole_number(vid)
        if version is None or not 1 <= version <= aggregate.version:
            raise _missing(resource_type, id, f" version {vid}")
        then = resource.access.application.aggregate(aggregate.id, version=version)
        rendered = resource.render(then, part)
        if rendered is None:
            raise _missing(resource_type, id, f" version {vid}")
        return resource_response(rendered)


def form_body(search_parameters: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI request body of a `_search` form post."""
    properties = {
        name: {"type": "string", "description": description}
        for name, description in search_parameters.items()
    }
    schema = {"type": "object", "properties": properties}
    return {
        "requestBody": {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


def add_search_routes(
    router: APIRouter,
    resource_type: str,
    search: Callable[[Request, dict[str, str], Actor], FhirResponse],
    search_parameters: dict[str, str],
) -> None:
    """GET /{type}?... and POST /{type}/_search (form-encoded, keeps identifiers out of URLs)."""
    Searcher = Annotated[Actor, Depends(authorize(resource_type, "s"))]

    @router.get(f"/{resource_type}", name=f"search {resource_type}")
    def search_by_get(request: Request, actor: Searcher) -> FhirResponse:
        return search(request, dict(request.query_params), actor)

    @router.post(
        f"/{resource_type}/_search",
        name=f"search {resource_type} by post",
        openapi_extra=form_body(search_parameters),
    )
    async def search_by_post(request: Request, actor: Searcher) -> FhirResponse:
        form = await request.form()
        query = {key: value for key, value in form.items() if isinstance(value, str)}
        return await run_in_threadpool(search, request, query, actor)
