"""Task (the stay's duties, services/sip/discharge/tasks.py): read, vread, `_history` and
search, through the stays' one way out (`ResourceAccess` over `StayDisclosure` and
`redact_stay`): a stay the caller may not see has no Task for it (404, and no match), every
read, history and search that shows a Task is an access record of the person, as for the
Encounter.

A Task is a view of one part of the stay, as a Goal is of the plan: its versions are the
stay's versions at which it first appeared or looked different (`PlanViewResource`, the
common version routes), each judged by the legal clock at the request's instant
(docs/decisions/0008-discharge-stay.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Request

from contracts.actor import Actor
from services.common import fhir_time
from services.common.domain import NotFound
from services.common.fhir_api import FhirError, FhirResponse, fhir_base, searchset
from services.common.paging import keyset_page, opened_query, page_links
from services.common.resource_routes import (
    ResourceAccess,
    add_search_routes,
    add_version_routes,
    resource_id,
)
from services.common.result_parameters import MAX_COUNT, ResultParameters
from services.common.search import organization_token, token_code
from services.common.search_declarations import AskedSearch, SearchDeclarations, SearchParameter
from services.sip.discharge.application import STAY_RESOURCE_TYPE
from services.sip.discharge.projections import StayIndex
from services.sip.discharge.stay import Stay
from services.sip.discharge.tasks import (
    TASK_RESOURCE_TYPE,
    TASK_STATUSES,
    Duty,
    duties,
    split_task_id,
    task_to_fhir,
)
from services.sip.plan_views import PlanView

_R4 = "http://hl7.org/fhir/SearchParameter/"


def _owner(value: str) -> dict[str, Any]:
    """`Organization/<HSA-id>` or a bare HSA-id: the owner's organisation or unit."""
    hsa_id = organization_token("owner", value.removeprefix("Organization/"))
    return {"owner": hsa_id}


def _stay(name: str) -> Callable[[str], dict[str, Any]]:
    def read(value: str) -> dict[str, Any]:
        reference = value.removeprefix(f"{STAY_RESOURCE_TYPE}/")
        try:
            return {"stay": resource_id(reference)}
        except FhirError:
            raise FhirError(
                400, "invalid", f"{name} is Encounter/<id> of a stay", expression=name
            ) from None

    return read


SEARCH = SearchDeclarations(
    TASK_RESOURCE_TYPE,
    (
        SearchParameter(
            "owner", "reference", "Task.owner",
            "The organisation or unit that owns the duty: Organization/<HSA-id> or the HSA-id",
            index=_owner, definition=_R4 + "Task-owner",
        ),
        SearchParameter(
            "status", "token", "Task.status", " | ".join(TASK_STATUSES),
            index=lambda value: {"status": token_code("status", value, TASK_STATUSES)},
            definition=_R4 + "Task-status",
        ),
        SearchParameter(
            "encounter", "reference", "Task.encounter", "The stay: Encounter/<id>",
            index=_stay("encounter"), definition=_R4 + "Task-encounter",
        ),
        SearchParameter(
            "focus", "reference", "Task.focus", "The stay: Encounter/<id>",
            index=_stay("focus"), definition=_R4 + "Task-focus",
        ),
        SearchParameter(
            "overdue", "token", "Task.extension",
            "true: duties past their due time and not done, at the search's instant (a "
            "provisional due date, the estimated discharge day, is never overdue); false: "
            "the others",
            index=lambda value: {
                "overdue": token_code("overdue", value, ("true", "false")) == "true"
            },
        ),
    ),
)  # fmt: skip


def _holds(duty: Duty, arguments: dict[str, Any]) -> bool:
    for name, value in arguments.items():
        if name == "owner" and value not in (duty.organization, duty.unit):
            return False
        if name == "status" and duty.status != value:
            return False
        if name == "stay" and duty.stay.id != value:
            return False
        if name == "overdue" and duty.overdue != value:
            return False
    return True


def matching(duty: Duty, asked: AskedSearch) -> bool:
    """Every condition holds for the duty: one of its values (comma: OR) does."""
    return all(
        any(_holds(duty, alternative.arguments) for alternative in condition.alternatives)
        for condition in asked.conditions
    )


def _stay_ids(index: StayIndex, actor: Actor, asked: AskedSearch) -> list[UUID]:
    """The stays to look in: those the read model names for the caller (`candidates_for`), and of
    them the one a condition names, if all of its values name one, or the owner's, if all of
    a condition's values name an owner. Only a narrowing: the disclosure rule decides."""
    candidates = set(index.candidates_for(actor))
    for condition in asked.conditions:
        values = [a.arguments for a in condition.alternatives]
        if all("stay" in v for v in values):
            candidates &= {v["stay"] for v in values}
        elif all("owner" in v for v in values) and actor.role != "patient":
            owned: set[UUID] = set()
            for owner in {v["owner"] for v in values}:
                owned |= set(index.concerning(owner))
            candidates &= owned
    return sorted(candidates, key=str)


router = APIRouter(prefix="/fhir")


def _access(request: Request) -> ResourceAccess:
    access: ResourceAccess = request.app.state.resources[STAY_RESOURCE_TYPE].access
    return access


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    """Every Task of the stays the caller may see, matching, a page of `_count` of them by
    id (`next` and `previous` links as cursors); the total counts them all. One access record
    per person and custodian shown."""
    access = _access(request)
    kind = f"search:{TASK_RESOURCE_TYPE}"
    query, position = opened_query(request, kind, query)
    result = ResultParameters.of(query, MAX_COUNT)
    result.check_elements(TASK_RESOURCE_TYPE)
    asked = SEARCH.asked(query)
    now: datetime = fhir_time.now()
    stays = []
    for stay_id in _stay_ids(request.app.state.stay_index, actor, asked):
        try:
            stays.append(access.aggregate(stay_id))
        except NotFound:  # a stay named that is none: no match
            continue
    found: list[tuple[Any, Any, list[Duty]]] = []
    for stay, disclosed in access.disclosed_matches(actor, stays, None):
        matched = [d for d in duties(disclosed.current, now) if matching(d, asked)]
        if matched:
            found.append((stay, disclosed, matched))
    everything = sorted((d for _, _, ds in found for d in ds), key=lambda d: d.id)
    paged = keyset_page(everything, lambda d: d.id, position, result.count)
    page = paged.items
    shown_ids = {d.id for d in page}
    shown = [(s, disclosed) for s, disclosed, ds in found if {d.id for d in ds} & shown_ids]
    # The query asked (a next page's from its cursor, which the log could not read).
    _log(access, actor, shown, page, urlencode(query))
    links = page_links(request, kind, TASK_RESOURCE_TYPE, asked.used, paged, result.count)
    bundle = searchset(fhir_base(request), [task_to_fhir(d) for d in page], "",
                       total=paged.total, links=links)  # fmt: skip
    return FhirResponse(result.finish(bundle))


def _log(
    access: ResourceAccess, actor: Actor, shown: list[Any], page: list[Duty], query: str
) -> None:
    """One record per person and custodian shown, naming the Tasks shown of them."""
    if not shown:
        access.log(actor, "search-type", query=query, detail="no Task the caller may see shown")
        return
    records = []
    for stay, disclosed in shown:
        tasks = " ".join(f"{TASK_RESOURCE_TYPE}/{d.id}" for d in page if d.stay.id == stay.id)
        for custodian in access.logged_custodians(disclosed.current):
            records.append(
                access.record(
                    actor, "search-type", patient=stay.person_identifier, custodian=custodian,
                    entity=tasks, consents=disclosed.disclosure.consents, query=query,
                )
            )  # fmt: skip
    access.log_all(records)


class TaskView(PlanView):
    """The stay's duties as a view of the stay, for the common version routes."""

    def split_id(self, resource_id: str) -> tuple[str, str]:
        return split_task_id(resource_id)


def _duty_keys(stay: Stay) -> list[str]:
    return [duty.key for duty in duties(stay, fhir_time.now())]


def _render(stay: Stay, key: str) -> dict[str, Any]:
    return task_to_fhir(next(d for d in duties(stay, fhir_time.now()) if d.key == key))


TASK_VIEW = TaskView(TASK_RESOURCE_TYPE, _duty_keys, _render)  # type: ignore[arg-type]

add_search_routes(router, search, SEARCH)
add_version_routes(router, TASK_RESOURCE_TYPE)
