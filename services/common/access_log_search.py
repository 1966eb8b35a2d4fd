"""The search parameters of the access log's AuditEvent and Provenance, and of the served
OperationDefinitions: declared once, read by their routes, listed by the
CapabilityStatement. An AuditEvent value is read into conditions on the access-log table's
columns (`AccessLogIndex.page`), so the log is filtered and paged in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.common.search import date_bounds, person_reference, person_token, token_code
from services.common.search_declarations import Arguments, SearchDeclarations, SearchParameter

_R4 = "http://hl7.org/fhir/SearchParameter/"
ACTIONS = ("C", "R", "U", "D", "E")


def _recorded(name: str) -> SearchParameter:
    def bounds(value: str) -> Arguments:
        since, until = date_bounds(name, value)
        return {key: moment for key, moment in (("since", since), ("until", until)) if moment}

    return SearchParameter(
        name,
        "date",
        "AuditEvent.recorded" if name == "date" else "Resource.meta.lastUpdated",
        "when it was recorded: eq/ge/gt/le/lt prefixed, repeatable (AND)",
        index=bounds,
        definition=_R4 + ("AuditEvent-date" if name == "date" else "Resource-lastUpdated"),
    )


def _code(value: str) -> str:
    """A token's code, with or without its system."""
    return value.rpartition("|")[2]


def _recorded_at(row: dict[str, Any]) -> datetime:
    return row["recorded_at"]


AUDIT_SEARCH = SearchDeclarations(
    "AuditEvent",
    (
        SearchParameter(
            "_id", "token", "Resource.id", "the record's id",
            index=lambda value: {"record_id": value},
            definition=_R4 + "Resource-id",
        ),
        _recorded("_lastUpdated"),
        _recorded("date"),
        SearchParameter(
            "patient", "reference", "AuditEvent.entity.what.where(resolve() is Patient)",
            "whose data: patient=Patient/<personnummer>, or patient:identifier=system|number "
            "(by POST to _search, to keep the number out of URLs)",
            index=lambda value: {"patient_value": person_reference("patient", value)[1]},
            modifiers={"identifier": lambda value: {"patient_value": person_token(value)[1]}},
            definition=_R4 + "AuditEvent-patient",
        ),
        SearchParameter(
            "agent", "token", "AuditEvent.agent.who.identifier",
            "the user or system id",
            index=lambda value: {"user_id": _code(value)},
        ),
        SearchParameter(
            "organization", "token", "AuditEvent.agent.who.identifier",
            "HSA-id of the organisation the access was made from",
            index=lambda value: {"organization": _code(value)},
        ),
        SearchParameter(
            "action", "token", "AuditEvent.action", " | ".join(ACTIONS),
            index=lambda value: {"action": token_code("action", value, ACTIONS)},
            definition=_R4 + "AuditEvent-action",
        ),
        SearchParameter(
            "subtype", "token", "AuditEvent.subtype",
            "the kind of access: a restful interaction (read, create, operation, ...) or an "
            "access-interaction code (disclosure-decision, block-override, ...)",
            index=lambda value: {"interaction": _code(value)},
            definition=_R4 + "AuditEvent-subtype",
        ),
    ),
    # Both sort by when a record was recorded, which never changes: paged in SQL by
    # (recorded_at, record_id), no snapshot is needed.
    sort_keys={"date": _recorded_at, "_lastUpdated": _recorded_at},
)  # fmt: skip


def _target(value: str) -> Arguments:
    return {"target": value}


PROVENANCE_SEARCH = SearchDeclarations(
    "Provenance",
    (
        SearchParameter(
            "target", "reference", "Provenance.target",
            "the resource whose versions' provenance is wanted: <type>/<id>",
            index=_target, definition=_R4 + "Provenance-target",
        ),
    ),
)  # fmt: skip
OPERATION_DEFINITION_SEARCH = SearchDeclarations(
    "OperationDefinition",
    (
        SearchParameter(
            "url", "uri", "OperationDefinition.url",
            "the canonical URL, or this server's URL, of a definition",
            index=lambda value: {"url": value},
            definition=_R4 + "conformance-url",
        ),
    ),
)  # fmt: skip
