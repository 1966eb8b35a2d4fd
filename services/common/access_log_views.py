"""Reading the access log: AuditEvent search for auditors, and the patient's log extract
(*loggutdrag*), both from a projection of the AccessRecord events."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection

from contracts.canonical import CANONICAL_BASE
from contracts.identifiers import HSA_ID_SYSTEM
from services.common.access_log import AccessRecord
from services.common.fhir_time import fhir_instant
from services.common.personal_data.envelope import Erased
from services.common.personal_data.lookup import searched_persons
from services.common.personal_data.mapper import SEALED, PersonalDataMapper, SealedField
from services.common.projection import Projection

ACCESS_INTERACTION_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/access-interaction"
# A professional let past a person's block (spärr): its own record, found by `subtype`.
BLOCK_OVERRIDE = "block-override"
RESTFUL_INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
RESTFUL_INTERACTIONS = {
    "read",
    "vread",
    "history-instance",
    "history-type",
    "search-type",
    "create",
    "operation",
}

metadata = MetaData()
access_log = Table(
    "access_log",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("interaction", String(40), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("user_id", String(200), nullable=False, index=True),
    Column("user_role", String(20), nullable=False),
    Column("organization", String(64), index=True),
    Column("unit", String(64)),
    Column("custodian", String(64), index=True),
    Column("patient_system", String(200)),
    # The person's blind index, never the number (docs/decisions/0007).
    Column("patient_value", String(64), index=True),
    Column("entity", Text),
    Column("consents", Text, nullable=False),
    # In clear only where the event stored them so (no personal number in them, or stored
    # before they were sealed); otherwise in `sealed`.
    Column("query", Text),
    Column("detail", Text),
    # The event's sealed personal fields as it stores them (JSON {field: sealed value}):
    # opened with the person's `access` key when read, so erasing the key erases them here too.
    Column("sealed", Text),
)
# Searched by prefix (a resource's versions, for Provenance): see `_entity_starts_with`.
Index("ix_access_log_entity", access_log.c.entity, postgresql_ops={"entity": "text_pattern_ops"})


def _storable(value: Any) -> Any:
    """Text PostgreSQL can store: a NUL byte that reached a record before requests were
    refused for it is shown as U+FFFD rather than breaking the log for everyone."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


RECORDED_TOPIC = get_topic(AccessRecord.Recorded)


class AccessLogIndex(Projection):
    name = "access_log"
    metadata = metadata
    aggregate_class = AccessRecord

    def __init__(self, application: Any, engine: Any) -> None:
        super().__init__(application, engine)
        self._sealed: dict[Any, dict[str, Any]] = {}

    def decode(self, notification: Any) -> Any:
        """The event, and (kept for `apply`) its personal fields as stored: sealed ones are
        copied sealed, never opened into the read model."""
        stored = json.loads(notification.state)
        self._sealed[notification.originator_id] = {
            name: value
            for name in ("patient", "query", "detail")
            if isinstance(value := stored.get(name), dict) and SEALED in value
        }
        mapper = self.application.mapper
        if isinstance(mapper, PersonalDataMapper):
            # Their sealed copies are what the row keeps: opening them would be work thrown
            # away (the patient is opened, for its blind index).
            return mapper.to_domain_event(notification, left_sealed=("query", "detail"))
        return super().decode(notification)

    def apply(self, connection: Connection, event: Any) -> None:
        sealed = self._sealed.pop(event.originator_id, {})
        patient = event.patient if isinstance(event.patient, dict) else {}
        columns = self._columns(event, patient)
        columns["patient_value"] = self.person_stored(patient or None)
        for name in ("query", "detail"):
            if name in sealed:
                columns[name] = None
        columns["sealed"] = json.dumps(sealed, sort_keys=True) if sealed else None
        connection.execute(
            access_log.insert().values(
                **{column: _storable(value) for column, value in columns.items()}
            )
        )

    def _searched(self, value: str) -> list[str]:
        return searched_persons(getattr(self.application, "personal_data", None), None, value)

    def opened(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row as the record was written: its sealed fields opened (an erased one reads as
        absent), the person's number in `patient_value` again."""
        row = dict(row)
        sealed = json.loads(row.pop("sealed") or "{}")
        mapper = self.application.mapper
        if not isinstance(mapper, PersonalDataMapper):
            return row  # no key store: the row holds the number itself
        if row["patient_value"] and "patient" not in sealed:
            # Stored in clear: the number is in the record, the row holds its index.
            row["patient_value"] = self._clear_patient(row["record_id"])
        for name, value in sealed.items():
            opened = mapper.opened_field(row["record_id"], 1, RECORDED_TOPIC, name, value)
            opened = None if isinstance(opened, (Erased, SealedField)) else opened
            if name == "patient":
                row["patient_value"] = (opened or {}).get("value")
            else:
                row[name] = opened
        return row

    def _clear_patient(self, record_id: str) -> str | None:
        record = self.application.repository.get(UUID(record_id))
        return (record.patient or {}).get("value")

    @staticmethod
    def _columns(event: Any, patient: dict[str, Any]) -> dict[str, Any]:
        return dict(
            record_id=str(event.originator_id),
            recorded_at=event.recorded_at,
            interaction=event.interaction,
            action=event.action,
            outcome=event.outcome,
            user_id=event.actor["subject"],
            user_role=event.actor["role"],
            organization=event.actor.get("organization"),
            unit=event.actor.get("unit"),
            custodian=event.custodian,
            patient_system=patient.get("system"),
            patient_value=patient.get("value"),
            entity=event.entity,
            consents=json.dumps(event.consents),
            query=event.query,
            detail=event.detail,
        )

    def _entity_starts_with(self, prefix: str) -> list[Any]:
        """`LIKE 'prefix%'`, which PostgreSQL's text_pattern_ops index serves; SQLite's LIKE
        ignores case and so no index serves it, but the same rows in binary order lie between
        the prefix and the prefix with its last character raised, a range its index serves."""
        condition = [access_log.c.entity.startswith(prefix, autoescape=True)]
        if self.reader.dialect.name == "sqlite" and prefix:
            after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            condition += [access_log.c.entity >= prefix, access_log.c.entity < after]
        return condition

    def search(
        self,
        *,
        auditor_organization: str | None = None,
        patient_value: str | None = None,
        entity_prefix: str | None = None,
        successful_only: bool = False,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        self.catch_up()
        conditions = []
        if patient_value is not None:
            conditions.append(access_log.c.patient_value.in_(self._searched(patient_value)))
        if auditor_organization is not None:
            conditions.append(_reviewable_by(auditor_organization))
        if entity_prefix is not None:
            conditions += self._entity_starts_with(entity_prefix)
        if successful_only:
            conditions.append(access_log.c.outcome == "0")
        query = select(access_log).where(and_(True, *conditions)).order_by(*_ORDER).limit(limit)
        with self.reader.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        return [self.opened(row) for row in rows]

    def page(
        self,
        auditor_organization: str,
        conditions: list[list[dict[str, Any]]],
        position: dict[str, Any],
        count: int,
        descending: bool = False,
        with_total: bool = True,
    ) -> AccessLogPage:
        """One page of the records an auditor may review that meet every condition (each
        any of its alternatives, each alternative all of its arguments), in recorded order
        (or its reverse), from the position's key on, with the total (unless not asked
        for, `_total=none`: counting is most of a page's cost in a large log): in SQL, so a log of
        millions is never read into memory. A record never changes, so the key
        (recorded_at, record_id) is stable while writes happen."""
        self.catch_up()
        conditions = [
            [
                {
                    name: self._searched(value) if name == "patient_value" else value
                    for name, value in arguments.items()
                }
                for arguments in alternatives
            ]
            for alternatives in conditions
        ]
        where = and_(_reviewable_by(auditor_organization), *map(_any_of, conditions))
        backwards = "before" in position
        key = next((position[k] for k in ("before", "after", "from") if k in position), None)
        read_descending = descending != backwards
        query = select(access_log).where(where)
        if key is not None:
            query = query.where(_beyond(key, read_descending, inclusive="from" in position))
        order = [c.desc() for c in _ORDER] if read_descending else _ORDER
        with self.reader.connect() as connection:
            total = (
                connection.execute(
                    select(func.count()).select_from(access_log).where(where)
                ).scalar_one()
                if with_total
                else None
            )
            rows = [] if count == 0 else [
                dict(row._mapping)
                for row in connection.execute(query.order_by(*order).limit(count + 1))
            ]  # fmt: skip
            more_ahead = len(rows) > count
            rows = rows[:count]
            # A record is never removed: the one a next or previous link names is still
            # there, behind this page; only a page opened `from` a key must look.
            behind = key is not None and "from" not in position
            if rows and "from" in position:
                behind = _exists(connection, where, _key(rows[0]), not read_descending)
        if backwards:
            rows.reverse()
        return AccessLogPage(
            [self.opened(row) for row in rows],
            total,
            more_before=more_ahead if backwards else behind,
            more_after=behind if backwards else more_ahead,
        )


@dataclass(frozen=True)
class AccessLogPage:
    rows: list[dict[str, Any]]
    total: int | None
    more_before: bool
    more_after: bool


_ORDER = [access_log.c.recorded_at, access_log.c.record_id]


def row_key(row: dict[str, Any]) -> list[str]:
    """A record's key as a cursor holds it."""
    return [row["recorded_at"].isoformat(), row["record_id"]]


def _key(row: dict[str, Any]) -> list[str]:
    return row_key(row)


def _beyond(key: list[str], descending: bool, *, inclusive: bool = False) -> Any:
    """The records after `key` in recorded order (before it, if `descending`)."""
    moment, record_id = datetime.fromisoformat(key[0]), key[1]
    at, id_ = access_log.c.recorded_at, access_log.c.record_id
    if descending:
        later = id_ <= record_id if inclusive else id_ < record_id
        return or_(at < moment, and_(at == moment, later))
    later = id_ >= record_id if inclusive else id_ > record_id
    return or_(at > moment, and_(at == moment, later))


def _exists(connection: Connection, where: Any, key: list[str], descending: bool) -> bool:
    """Whether a record meeting `where` lies beyond `key` (before it, if `descending`)."""
    query = select(access_log.c.record_id).where(where, _beyond(key, descending)).limit(1)
    return connection.execute(query).first() is not None


# A condition's argument -> how a record meets it.
_ARGUMENTS: dict[str, Callable[[Any], Any]] = {
    "record_id": lambda value: access_log.c.record_id == value,
    "patient_value": lambda indexes: access_log.c.patient_value.in_(indexes),
    "user_id": lambda value: access_log.c.user_id == value,
    "organization": lambda value: access_log.c.organization == value,
    "action": lambda value: access_log.c.action == value,
    "interaction": lambda value: access_log.c.interaction == value,
    "since": lambda value: access_log.c.recorded_at >= value,
    "until": lambda value: access_log.c.recorded_at <= value,
}


def _any_of(alternatives: list[dict[str, Any]]) -> Any:
    return or_(
        *(
            and_(True, *(_ARGUMENTS[k](v) for k, v in arguments.items()))
            for arguments in alternatives
        )
    )


def _reviewable_by(auditor_organization: str) -> Any:
    """A care provider's log reviewer sees what was done to its own data, and what its own
    users read elsewhere. Their refused attempts on others' data stay with the custodian:
    the record names a person the reviewer's organisation may not know of."""
    return or_(
        and_(access_log.c.organization == auditor_organization, access_log.c.outcome == "0"),
        access_log.c.custodian == auditor_organization,
    )


def audit_event_to_fhir(row: dict[str, Any], observer: str) -> dict[str, Any]:
    """An AuditEvent following IHE BALP's shape for RESTful access and disclosures."""
    interaction = row["interaction"]
    subtype_system = (
        RESTFUL_INTERACTION_SYSTEM
        if interaction in RESTFUL_INTERACTIONS
        else ACCESS_INTERACTION_SYSTEM
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": row["record_id"],
        "meta": {"versionId": "1", "lastUpdated": fhir_instant(row["recorded_at"])},
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": subtype_system, "code": interaction}],
        "action": row["action"],
        "recorded": fhir_instant(row["recorded_at"]),
        "outcome": row["outcome"],
        "agent": _audit_agents(row),
        "source": {"observer": {"display": observer}},
    }
    if row["detail"]:
        event["outcomeDesc"] = row["detail"]
    entities = _audit_entities(row)
    if entities:
        event["entity"] = entities
    return event


AUDIT_ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
PERSON, SYSTEM_OBJECT = "1", "2"  # audit-entity-type codes


def _audit_agents(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The user or system that made the access, and the organisation (and unit) it acted from."""
    user = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                    "code": "AGNT" if row["user_role"] == "integration" else "PROV",
                }
            ]
        },
        "who": {"identifier": {"value": row["user_id"]}},
        "role": [{"text": row["user_role"]}],
        "requestor": True,
    }
    if not row["organization"]:
        return [user]
    organization: dict[str, Any] = {
        "type": {"text": "organisation and unit the access was made from"},
        "who": {
            "type": "Organization",
            "identifier": {"system": HSA_ID_SYSTEM, "value": row["organization"]},
        },
    }
    if row["unit"]:
        organization["location"] = {"identifier": {"system": HSA_ID_SYSTEM, "value": row["unit"]}}
    organization["requestor"] = False
    return [user, organization]


def _audit_entities(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Whose data it was, what was accessed, the consents a disclosure relied on, and the
    query as it was asked."""
    entities: list[dict[str, Any]] = []
    if row["patient_value"]:
        entities.append(
            {
                "what": {
                    "type": "Patient",
                    "identifier": {"system": row["patient_system"], "value": row["patient_value"]},
                },
                "type": _coding(AUDIT_ENTITY_TYPE_SYSTEM, PERSON),
                "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "1"),
            }
        )
    for reference in (row["entity"] or "").split():
        entities.append(
            {
                "what": {"reference": reference},
                "type": _coding(AUDIT_ENTITY_TYPE_SYSTEM, SYSTEM_OBJECT),
            }
        )
    entities += [_relied_on_consent(consent_id) for consent_id in json.loads(row["consents"])]
    if row["query"]:
        entities.append(
            {
                "type": _coding(AUDIT_ENTITY_TYPE_SYSTEM, SYSTEM_OBJECT),
                "query": base64.b64encode(row["query"].encode()).decode(),
            }
        )
    return entities


def _relied_on_consent(consent_id: str) -> dict[str, Any]:
    return {
        "what": {
            "type": "Consent",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{consent_id}"},
        },
        "description": "consent the disclosure relied on",
    }


def _coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


ACTION_WORDS = {"C": "created", "R": "read", "U": "changed", "D": "deleted", "E": "acted on"}


def extract_entry(row: dict[str, Any], service: str) -> dict[str, Any]:
    """One line of a log extract, in words a person understands."""
    what = f"{ACTION_WORDS.get(row['action'], 'accessed')} {_resource_words(row)}"
    if row["interaction"] == BLOCK_OVERRIDE:
        what = f"got past your block (spärr) for a limited time: {row['detail'] or ''}".strip()
    return {
        "time": fhir_instant(row["recorded_at"]),
        "organization": row["organization"],
        "unit": row["unit"],
        "role": row["user_role"],
        "what": what,
        "service": service,
        "id": row["record_id"],
    }


def _resource_words(row: dict[str, Any]) -> str:
    if row["interaction"] == "disclosure-decision":
        return "whether your consent allows a disclosure"
    entity = row["entity"] or ""
    if entity.startswith("CarePlan"):
        return "your coordinated individual plan (SIP)"
    if entity.startswith("Consent"):
        return "your consent"
    if entity.startswith("AppointmentResponse"):
        return "an answer to an invitation to your SIP meeting"
    if entity.startswith("Appointment"):
        return "your SIP meeting"
    if entity.startswith("Communication"):
        return "a message about you"
    return "your information"


def extract_html(patient_label: str, entries: list[dict[str, Any]], generated: str) -> str:
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(entry.get(key) or ''))}</td>"
            for key in ("time", "organization", "unit", "role", "what")
        )
        + "</tr>"
        for entry in entries
    )
    return f"""<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><title>Loggutdrag</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #999; padding: .3em .6em; text-align: left; }}
@media print {{ body {{ margin: 0; }} }}
</style></head>
<body>
<h1>Loggutdrag – vem har tagit del av dina uppgifter</h1>
<p>Avser: {html.escape(patient_label)}. Framtaget {html.escape(generated)}.</p>
<p>Varje rad är en åtkomst till din samordnade individuella plan (SIP) eller dina samtycken:
när, från vilken vårdgivare eller kommun och enhet, och vad som gjordes.</p>
<table><thead><tr><th>Tid</th><th>Organisation (HSA-id)</th><th>Enhet (HSA-id)</th>
<th>Roll</th><th>Vad</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def record_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


DATA_OPERATION = {"C": "CREATE", "U": "UPDATE", "E": "EXECUTE", "D": "DELETE"}


def provenance_to_fhir(row: dict[str, Any]) -> dict[str, Any]:
    """Who changed which version, when, by which command, on which consents."""
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "author",
                }
            ]
        },
        "role": [{"text": row["user_role"]}],
        "who": {"identifier": {"value": row["user_id"]}},
    }
    if row["organization"]:
        agent["onBehalfOf"] = {
            "type": "Organization",
            "identifier": {"system": HSA_ID_SYSTEM, "value": row["organization"]},
        }
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": row["record_id"],
        "target": [{"reference": row["entity"]}],
        "recorded": fhir_instant(row["recorded_at"]),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": DATA_OPERATION.get(row["action"], "EXECUTE"),
                }
            ],
            "text": row["detail"] or row["interaction"],
        },
        "agent": [agent],
    }
    if row["unit"]:
        provenance["location"] = {"identifier": {"system": HSA_ID_SYSTEM, "value": row["unit"]}}
    consents = json.loads(row["consents"])
    if consents:
        provenance["entity"] = [
            {
                "role": "source",
                "what": {
                    "type": "Consent",
                    "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{c}"},
                },
            }
            for c in consents
        ]
    return provenance
