"""`urn:uuid` references between a transaction's entries: checked before any entry runs, and
replaced with the `Type/id` each was made as before an entry that names one runs.

An entry may name only the `fullUrl` of an EARLIER entry, so the entries run in the order sent
and no set of references can form a cycle. A reference is any string in the entry's resource
that is a `urn:uuid:...`, and any segment of its URL (`CarePlan/urn:uuid:.../$record-need`);
the conditional headers hold none."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote, unquote

from services.common.bundles.entries import URN_UUID, BundleEntry, invalid
from services.common.fhir_api import FhirError


def _in_resource(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if value.startswith(URN_UUID):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _in_resource(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _in_resource(item, f"{path}[{index}]")


def references_of(entry: BundleEntry) -> Iterator[tuple[str, str]]:
    """(where, urn) of each `urn:uuid` the entry names."""
    for segment in unquote(entry.path).split("/"):
        if segment.startswith(URN_UUID):
            yield f"{entry.expression}.request.url", segment
    if entry.resource is not None:
        yield from _in_resource(entry.resource, f"{entry.expression}.resource")


def check_references(entries: list[BundleEntry]) -> None:
    """A 400 naming the first reference to no entry, or to a later entry or itself."""
    position = {e.full_url: e.index for e in entries if e.full_url is not None}
    for entry in entries:
        for where, urn in references_of(entry):
            defined = position.get(urn)
            if defined is None:
                raise invalid(where, f"{urn} is the fullUrl of no entry of the Bundle")
            if defined >= entry.index:
                raise invalid(
                    where,
                    f"{urn} is the fullUrl of Bundle.entry[{defined}]: an entry names only "
                    "earlier entries (they run in order, and no reference can go round)",
                )


def refuse_references(entry: BundleEntry) -> None:
    """A batch's entries are independent: one naming another is refused (400)."""
    for where, urn in references_of(entry):
        raise invalid(where, f"{urn}: a batch entry names no other entry; send a transaction")


def resolved(entry: BundleEntry, made: dict[str, str]) -> BundleEntry:
    """The entry with each `urn:uuid` it names replaced by the `Type/id` made for it."""
    segments = entry.path.split("/")
    for index, segment in enumerate(segments):
        urn = unquote(segment)
        if urn not in made:
            continue
        kind, _, id = made[urn].partition("/")
        if index > 0 and segments[index - 1] == kind:
            segments[index] = quote(id)
        elif index == 0:
            segments[index] = made[urn]
        else:
            raise FhirError(
                400,
                "invalid",
                f"{entry.expression}.request.url: {urn} is a {kind}, not what the URL names",
                expression=f"{entry.expression}.request.url",
            )
    _, question, query = entry.url.partition("?")
    url = "/".join(segments) + question + query
    resource = _replaced(entry.resource, made) if entry.resource is not None else None
    return replace(entry, url=url, resource=resource)


def _replaced(value: Any, made: dict[str, str]) -> Any:
    if isinstance(value, str):
        return made.get(value, value)
    if isinstance(value, dict):
        return {key: _replaced(item, made) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, made) for item in value]
    return value


def made_as(status: int, location: str | None, resource: dict[str, Any] | None) -> str | None:
    """`Type/id` of what an entry's answer made or names: its Location, else its resource."""
    if location:
        path = location.split("/fhir/", 1)[-1].split("/_history/")[0]
        kind, _, id = path.partition("/")
        if kind and id and "/" not in id:
            return f"{kind}/{id}"
    if resource and isinstance(resource.get("id"), str) and 200 <= status < 300:
        return f"{resource['resourceType']}/{resource['id']}"
    return None
