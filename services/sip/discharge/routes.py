"""Encounter (the stay): read, vread, `_history` and search through the stays' one way out
(`ResourceAccess` over `StayDisclosure` and `redact_stay`), with the CarePlan's rules for
401/403/404, history and the access log (services/common/resource_routes.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, Request

from contracts.actor import Actor
from services.common.domain import NotFound
from services.common.fhir_api import FhirResponse
from services.common.resource_routes import (
    ResourceAccess,
    add_search_routes,
    add_version_routes,
)
from services.common.search import person_reference, person_token, token_code
from services.common.search_answer import SearchService, search_answer
from services.common.search_declarations import (
    COMMON_PARAMETERS,
    SearchDeclarations,
    SearchParameter,
)
from services.sip.discharge.application import STAY_RESOURCE_TYPE
from services.sip.discharge.clock import missed
from services.sip.discharge.fhir import ENCOUNTER_STATUS, ENCOUNTER_STATUSES, stay_to_fhir
from services.sip.discharge.projections import StayIndex
from services.sip.discharge.stay import Stay

_R4 = "http://hl7.org/fhir/SearchParameter/"


def _person(name: str) -> SearchParameter:
    return SearchParameter(
        name,
        "reference",
        "Encounter.subject.where(resolve() is Patient)",
        f"Whose stay: {name}=Patient/<personnummer>, or {name}:identifier=system|personnummer "
        "(by POST to _search, to keep the number out of URLs)",
        index=lambda value: {"subject": person_reference(name, value)},
        modifiers={"identifier": lambda value: {"subject": person_token(value)}},
        definition=_R4 + ("Encounter-subject" if name == "subject" else "clinical-patient"),
    )


SEARCH = SearchDeclarations(
    STAY_RESOURCE_TYPE,
    (
        *COMMON_PARAMETERS,
        _person("subject"),
        _person("patient"),
        SearchParameter(
            "status", "token", "Encounter.status",
            " | ".join(ENCOUNTER_STATUSES) + " (in-progress until the discharge)",
            index=lambda value: {"status": {token_code("status", value, ENCOUNTER_STATUSES)}},
            definition=_R4 + "Encounter-status",
        ),
        SearchParameter(
            "deadline-missed", "token", "Encounter.extension",
            "true: stays with a deadline of the legal clock missed now (done late, or not done "
            "and past due: admission notice, SIP call, information transfer); false: the others",
            index=lambda value: {
                "deadline_missed": token_code("deadline-missed", value, ("true", "false"))
                == "true"
            },
        ),
    ),
)  # fmt: skip


class StayScan:
    """The stays' search: the candidates the read model names for the caller
    are read and tested; the disclosure rule then keeps what the caller may see."""

    def __init__(
        self,
        access: ResourceAccess,
        candidates: Callable[[], Iterable[UUID]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.access = access
        self.candidates = candidates
        self.now = now  # the clock's instant, injected in tests

    def __call__(
        self,
        *,
        subject: tuple[str | None, str] | None = None,
        status: set[str] | None = None,
        deadline_missed: bool | None = None,
    ) -> list[UUID]:
        now = self.now()
        found = []
        for stay_id in self.candidates():
            try:
                stay: Stay = self.access.aggregate(stay_id)
            except NotFound:
                continue
            if subject is not None:
                system, value = subject
                if stay.subject["value"] != value or system not in (None, stay.subject["system"]):
                    continue
            if status is not None and ENCOUNTER_STATUS[stay.status] not in status:
                continue
            if deadline_missed is not None and bool(missed(stay, now)) != deadline_missed:
                continue
            found.append(stay_id)
        return found


router = APIRouter(prefix="/fhir")


def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    access = request.app.state.resources[STAY_RESOURCE_TYPE].access
    index: StayIndex = request.app.state.stay_index
    scan = StayScan(access, lambda: index.candidates_for(actor))
    service = SearchService(SEARCH, access, scan, stay_to_fhir)
    return search_answer(request, query, actor, service)


add_search_routes(router, search, SEARCH)
add_version_routes(router, STAY_RESOURCE_TYPE)
