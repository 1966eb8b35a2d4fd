"""`GET /fhir/AuditEvent` for auditors and `GET /fhir/Patient/{id}/$access-log`, the
patient's log extract. Reading the log is itself logged."""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from contracts.actor import Actor
from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidIdentifier,
    parse_person_identifier,
)
from services.common.access_log_search import AUDIT_SEARCH, PROVENANCE_SEARCH
from services.common.access_log_views import (
    AccessLogIndex,
    audit_event_to_fhir,
    extract_entry,
    extract_html,
    provenance_to_fhir,
    record_uuid,
    row_key,
)
from services.common.auth.dependency import authorize
from services.common.capability import ACCESS_LOG_OPERATIONS
from services.common.fhir_api import FhirError, FhirResponse, fhir_base, searchset, unavailable
from services.common.fhir_time import fhir_instant, now
from services.common.operations.definition import operation_request_body
from services.common.paging import Page, keyset_page, opened_query, page_links
from services.common.resource_routes import ResourceAccess, add_search_routes, resource_id
from services.common.result_parameters import MAX_COUNT, ResultParameters

EXTRACT_ENTITY = "Patient/$access-log"
AUDIT_KIND, PROVENANCE_KIND = "search:AuditEvent", "search:Provenance"


@dataclass(frozen=True)
class AccessLogReading:
    """What the access-log routes read: the service's resources and its access-log index.
    `peer_extract_url`: the other service's base URL, whose extract is merged in. An app serves
    them by `app.state.access_log_reading = AccessLogReading(...)` and including `router`
    in its `/fhir` router."""

    access: ResourceAccess
    index: AccessLogIndex
    observer: str
    peer_extract_url: str | None = None


def served_access_log(request: Request) -> AccessLogReading:
    return request.app.state.access_log_reading


Reading = Annotated[AccessLogReading, Depends(served_access_log)]
AuditReader = Annotated[Actor, Depends(authorize("AuditEvent", "s"))]
ExtractReader = Annotated[Actor, Depends(authorize("Patient", "r"))]
ProvenanceReader = Annotated[Actor, Depends(authorize("Provenance", "s"))]
router = APIRouter()


def search_audit_events(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    """The auditor's organisation's share of the log, filtered and paged in SQL."""
    _require_auditor(actor)
    log: AccessLogReading = request.app.state.access_log_reading
    query, position = opened_query(request, AUDIT_KIND, query)
    result = ResultParameters.of(query, MAX_COUNT, AUDIT_SEARCH.sort_keys)
    result.check_elements("AuditEvent")
    asked = AUDIT_SEARCH.asked(query)
    conditions = [[a.arguments for a in c.alternatives] for c in asked.conditions]
    descending = bool(result.sort) and result.sort[0].descending
    found = log.index.page(
        actor.organization, conditions, position, result.count, descending,
        with_total=result.total != "none" or result.only_total,
    )  # fmt: skip
    names_person = any(name.startswith("patient") for name in query)
    log.access.log(
        actor,
        "search-type",
        entity="AuditEvent",
        query=urlencode({k: "(given)" if k.startswith("patient") else v for k, v in query.items()}),
        detail=f"audit log search, {len(found.rows)} of {found.total or 'uncounted'} record(s)"
        + (" about a person" if names_person else ""),
    )
    keys = [row_key(row) for row in found.rows]
    page = Page(found.rows, found.total or 0, keys[0] if keys else None, keys[-1] if keys else None,
                found.more_after, found.more_before)  # fmt: skip
    links = page_links(request, AUDIT_KIND, "AuditEvent", asked.used, page, result.count)
    events = [audit_event_to_fhir(row, log.observer) for row in found.rows]
    base = fhir_base(request)
    bundle = searchset(base, events, "", total=found.total or 0, links=links)
    return FhirResponse(result.finish(bundle))


@router.get("/AuditEvent/{record_id}", name="read AuditEvent")
def read_audit_event(record_id: str, actor: AuditReader, log: Reading) -> FhirResponse:
    _require_auditor(actor)
    wanted = record_uuid(record_id)
    found = log.index.page(actor.organization, [[{"record_id": str(wanted)}]], {}, 1)
    if wanted is None or not found.rows:
        raise FhirError(404, "not-found", f"no AuditEvent with id '{record_id}'")
    log.access.log(actor, "read", entity=f"AuditEvent/{record_id}")
    return FhirResponse(audit_event_to_fhir(found.rows[0], log.observer))


def search_provenance(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
    """One Provenance per version of the target: who made it, when, how, on which consent."""
    log: AccessLogReading = request.app.state.access_log_reading
    query, position = opened_query(request, PROVENANCE_KIND, query)
    result = ResultParameters.of(query, MAX_COUNT)
    result.check_elements("Provenance")
    asked = PROVENANCE_SEARCH.asked(query)
    targets = {a.arguments["target"] for c in asked.conditions for a in c.alternatives}
    if len(targets) != 1:
        raise FhirError(
            400, "required", "Provenance is searched by one target", expression="target"
        )
    rows = _provenance_rows(log, actor, targets.pop())
    page = keyset_page(rows, lambda row: tuple(row_key(row)), position, result.count)
    links = page_links(request, PROVENANCE_KIND, "Provenance", asked.used, page, result.count)
    provenances = [provenance_to_fhir(row) for row in page.items]
    bundle = searchset(fhir_base(request), provenances, "", total=page.total, links=links)
    return FhirResponse(result.finish(bundle))


def _provenance_rows(log: AccessLogReading, actor: Actor, target: str) -> list[dict[str, Any]]:
    access = log.access
    resource_type, _, target_id = target.partition("/")
    if resource_type != access.resource_type or not target_id:
        raise FhirError(
            400, "invalid", f"target is {access.resource_type}/<id> on this service",
            expression="target",
        )  # fmt: skip
    aggregate = access.open(
        actor, resource_id(target_id), "search-type", f"Provenance?target={target}"
    )
    rows = log.index.search(entity_prefix=f"{resource_type}/{aggregate.id}/_history/")
    return [row for row in rows if row["action"] != "R"]


add_search_routes(router, search_audit_events, AUDIT_SEARCH)
add_search_routes(router, search_provenance, PROVENANCE_SEARCH)


@router.get("/Patient/{personnummer}/$access-log", name="patient log extract")
# R4 (operations.html): every operation is invoked by POST too; it takes no parameters.
@router.post(
    "/Patient/{personnummer}/$access-log",
    name="patient log extract by post",
    openapi_extra=operation_request_body(ACCESS_LOG_OPERATIONS[0]),
)
def access_log_extract(
    personnummer: str, request: Request, actor: ExtractReader, log: Reading
) -> Response:
    person = _person(personnummer)
    rows = log.index.search(
        auditor_organization=_extract_scope(actor, person),
        patient_value=person["value"],
        successful_only=True,
    )
    # Reading the extract is logged too, but it is no access to the plan or consents.
    entries = [extract_entry(row, log.observer) for row in rows if row["entity"] != EXTRACT_ENTITY]
    if log.peer_extract_url and not request.query_params.get("_local"):
        entries += _peer_entries(log.peer_extract_url, person["value"], request)
    entries.sort(key=lambda entry: (entry["time"], entry["id"]))
    log.access.log(
        actor,
        "operation",
        patient=person,
        entity=EXTRACT_ENTITY,
        detail=f"log extract (loggutdrag), {len(entries)} entries",
    )
    generated = fhir_instant(now())
    wants_html = request.query_params.get("_format") == "html" or (
        "text/html" in request.headers.get("accept", "")
    )
    if wants_html:
        return HTMLResponse(extract_html(_masked(person["value"]), entries, generated))
    if _wants_fhir(request):
        return FhirResponse(extract_parameters(person, generated, entries))
    return FhirResponse(
        {"patient": person, "generated": generated, "entries": entries},
        media_type="application/json",
    )


def _wants_fhir(request: Request) -> bool:
    asked = request.query_params.get("_format", "")
    return "fhir" in asked or asked == "json" or "fhir" in request.headers.get("accept", "")


def extract_parameters(
    person: dict[str, str], generated: str, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The log extract as a FHIR `Parameters`: the person, when it was made, and one `entry`
    per access with its parts (an organisation or unit as its HSA-id)."""
    kinds = {"time": "valueInstant", "organization": "valueIdentifier", "unit": "valueIdentifier",
             "role": "valueCode"}  # fmt: skip
    parameters: list[dict[str, Any]] = [
        {"name": "patient", "valueIdentifier": person},
        {"name": "generated", "valueInstant": generated},
    ]
    for entry in entries:
        parts = []
        for name, value in entry.items():
            if value is None:
                continue
            kind = kinds.get(name, "valueString")
            if kind == "valueIdentifier":
                value = {"system": HSA_ID_SYSTEM, "value": value}
            parts.append({"name": name, kind: value})
        parameters.append({"name": "entry", "part": parts})
    return {"resourceType": "Parameters", "parameter": parameters}


def _extract_scope(actor: Actor, person: dict[str, str]) -> str | None:
    """Whose records of the person the caller may read: all of them for the person, their
    own organisation's for an auditor (None: no organisation limit)."""
    if actor.role == "patient":
        if actor.patient != person["value"]:
            raise FhirError(403, "forbidden", "a person may read their own log extract only")
        return None
    if actor.role == "auditor":
        return actor.organization
    raise FhirError(403, "forbidden", "the log extract is for the person or an auditor")


def _code(token: str | None) -> str | None:
    """A token parameter's code, with or without its system."""
    return None if token is None else token.rpartition("|")[2]


def _require_auditor(actor: Actor) -> None:
    if actor.role != "auditor":
        raise FhirError(403, "forbidden", "the access log is read by auditors")


def _person(value: str) -> dict[str, str]:
    system = (
        SAMORDNINGSNUMMER_SYSTEM if len(value) == 12 and value[6:8] > "60" else PERSONNUMMER_SYSTEM
    )
    try:
        return parse_person_identifier(system, value).as_fhir()
    except InvalidIdentifier as error:
        # Never echo the value: it may be a personnummer with a typo.
        raise FhirError(400, "invalid", f"the path names no valid person: {error}") from None


def _masked(value: str) -> str:
    return f"{value[:8]}-****"


def _peer_entries(peer_url: str, personnummer: str, request: Request) -> list[dict[str, Any]]:
    """The other service's extract, asked with the caller's own token (both services share an
    audience), so the peer applies its own rules to the same caller."""
    try:
        response = httpx.get(
            f"{peer_url}/fhir/Patient/{personnummer}/$access-log",
            params={"_local": "1"},
            headers={
                "Authorization": request.headers.get("authorization", ""),
                "Accept": "application/json",  # the entries as this service merges them
            },
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["entries"]
    except (httpx.HTTPError, ValueError, KeyError):
        raise unavailable(
            "the consent service's part of the log extract could not be fetched; "
            "an incomplete extract is not given"
        ) from None
