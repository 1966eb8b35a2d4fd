"""A resource type's search answered the one way: the query (or its cursor's) read through
the type's declarations and the result parameters, the index asked, every match
disclosure-checked and redacted (`ResourceAccess.visible_page`), one page of it in the asked
order, shaped as asked, with its links."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from contracts.actor import Actor
from services.common.fhir_api import FhirError, FhirResponse, fhir_base, searchset
from services.common.paging import opened_query, page_links
from services.common.resource_routes import ResourceAccess
from services.common.result_parameters import MAX_COUNT, ResultParameters
from services.common.search import all_of
from services.common.search_declarations import SearchDeclarations
from services.common.sorted_paging import SortSnapshot


@dataclass(frozen=True)
class SearchService:
    """What a resource type's search needs besides the query: its declarations, the way out
    (`access`), its index's search, its FHIR rendering, and optionally what `_include` adds
    of a match and a check of the query beyond its values (e.g. who may ask it)."""

    declarations: SearchDeclarations
    access: ResourceAccess
    index_search: Callable[..., list[Any]]
    render: Callable[[Any], dict[str, Any]]
    included: Callable[[Any, set[str]], list[dict[str, Any]]] | None = None
    check: Callable[[dict[str, str], Actor], None] | None = None


def _includes(query: dict[str, str], served: tuple[str, ...]) -> set[str]:
    asked = {name for value in all_of(query, "_include") for name in value.split(",")}
    asked.discard("")
    if asked - set(served):
        raise FhirError(
            400, "not-supported", f"_include supports {', '.join(served) or 'nothing'}",
            expression="_include",
        )  # fmt: skip
    return asked


def search_answer(
    request: Request, query: dict[str, str], actor: Actor, service: SearchService
) -> FhirResponse:
    declarations = service.declarations
    resource_type = declarations.resource_type
    kind = f"search:{resource_type}"
    query, position = opened_query(request, kind, query)
    result = ResultParameters.of(query, MAX_COUNT, declarations.sort_keys)
    result.check_elements(resource_type)
    includes = _includes(query, declarations.includes)
    asked = declarations.asked({k: v for k, v in query.items() if k != "_include"})
    if service.check is not None:
        service.check(query, actor)
    application = service.access.application
    # A sorted search's snapshot is read before anything is loaded (sorted_paging.py).
    snapshot = SortSnapshot(application, position.get("snapshot")) if result.sort else None
    matches: Iterable[Any] = (
        service.access.aggregate(found) for found in asked.matching_ids(service.index_search)
    )
    order: Callable[[Any], Any] = _by_id
    pinned = None
    if snapshot is not None:
        matches = snapshot.existing(matches)
        order = snapshot.order(result.sort, declarations.sort_keys)
        pinned = {"snapshot": snapshot.position}
    page = service.access.visible_page(
        actor, matches, urlencode(query), order, position, result.count, matches=asked.matches
    )
    used = {**asked.used, **({"_include": query["_include"]} if "_include" in query else {})}
    links = page_links(request, kind, resource_type, used, page, result.count, pinned)
    shown = [disclosed.current for disclosed in page.items]
    base = fhir_base(request)
    bundle = searchset(base, [service.render(seen) for seen in shown], "", total=page.total,
                       links=links)  # fmt: skip
    for seen in shown if includes and service.included else ():
        bundle["entry"] += [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
             "search": {"mode": "include"}}
            for r in service.included(seen, includes)  # type: ignore[misc]
        ]  # fmt: skip
    return FhirResponse(result.finish(bundle))


def _by_id(aggregate: Any) -> str:
    return str(aggregate.id)
