"""A plan's timeline: one row per version, from the plan's `_history` (what each version was)
and the SIP service's Provenance (who made it, from which organisation and unit, by which
command, on which consents). Only what the API gave this user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.canonical import EXT_RECORDED_BY
from services.web.fhir_client import FhirClient, Refused, ServiceUnavailable
from services.web.plan_view import extension, part
from services.web.texts import COMMAND

WITHDRAWN_NOTE = "consent-withdrawn"


@dataclass(frozen=True)
class TimelineRow:
    version: int
    at: str | None  # the version's lastUpdated (UTC instant): `_at` of it finds this version
    command: str  # the operation's or event's name as Provenance gives it (see `COMMAND`)
    user: str | None
    role: str | None
    organization: str | None
    unit: str | None
    consents: list[str] = field(default_factory=list)
    status: str | None = None  # the plan's status in this version
    created: bool = False

    @property
    def what(self) -> str:
        return COMMAND.get(self.command, self.command)

    @property
    def by_the_service(self) -> bool:
        return self.user == "sip-service" and not self.organization


def command_of(activity_text: str) -> tuple[str, list[str]]:
    """Provenance.activity.text → (command, consents it names): the consent feed's note of a
    consent that ended reads `consent <id> withdrawn`."""
    words = activity_text.split()
    if len(words) == 3 and words[0] == "consent" and words[2] == "withdrawn":
        return WITHDRAWN_NOTE, [words[1]]
    return activity_text, []


def _version_of(reference: str) -> int | None:
    tail = reference.rsplit("/_history/", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def timeline_rows(history: dict[str, Any], provenance: dict[str, Any]) -> list[TimelineRow]:
    """Newest first. A version without a Provenance (none should be) still has its row, from
    the version's own `recorded-by`."""
    made: dict[int, dict[str, Any]] = {}
    for entry in provenance.get("entry", []):
        resource = entry.get("resource", {})
        for target in resource.get("target", []):
            version = _version_of(target.get("reference", ""))
            if version is not None:
                made[version] = resource
    rows = []
    for entry in history.get("entry", []):
        plan = entry.get("resource") or {}
        meta = plan.get("meta", {})
        if not str(meta.get("versionId", "")).isdigit():
            continue
        version = int(meta["versionId"])
        recorded = extension(plan, EXT_RECORDED_BY)
        source = made.get(version)
        if source is not None:
            agent = (source.get("agent") or [{}])[0]
            command, named = command_of((source.get("activity") or {}).get("text") or "")
            relied_on = [
                (e.get("what", {}).get("identifier", {}).get("value") or "").removeprefix(
                    "urn:uuid:"
                )
                for e in source.get("entity", [])
                if e.get("what", {}).get("type") == "Consent"
            ]
            row = TimelineRow(
                version=version,
                at=meta.get("lastUpdated") or source.get("recorded"),
                command=command,
                user=(agent.get("who") or {}).get("identifier", {}).get("value"),
                role=(agent.get("role") or [{}])[0].get("text"),
                organization=(agent.get("onBehalfOf") or {}).get("identifier", {}).get("value"),
                unit=(source.get("location") or {}).get("identifier", {}).get("value"),
                consents=[c for c in [*relied_on, *named] if c],
                status=plan.get("status"),
                created=version == 1,
            )
        else:
            row = TimelineRow(
                version=version,
                at=meta.get("lastUpdated"),
                command="Started" if version == 1 else "",
                user=part(recorded, "subject"),
                role=part(recorded, "role"),
                organization=(part(recorded, "organization") or {}).get("value"),
                unit=(part(recorded, "unit") or {}).get("value"),
                status=plan.get("status"),
                created=version == 1,
            )
        rows.append(row)
    rows.sort(key=lambda row: row.version, reverse=True)
    return rows


async def read_timeline(fhir: FhirClient, plan_id: str) -> list[TimelineRow]:
    # One after the other: each read is also a write (its access record), and the embedded
    # SQLite store has one writer; a page's reads need not queue up for it at once.
    history = await fhir.read("sip", f"CarePlan/{plan_id}/_history")
    provenance = await fhir.read("sip", "Provenance", {"target": f"CarePlan/{plan_id}"})
    return timeline_rows(history.body, provenance.body)


async def changes_since(fhir: FhirClient, plan_id: str, version: str | None) -> list[TimelineRow]:
    """The versions someone else made after the one the user saw (for a 412 notice)."""
    try:
        rows = await read_timeline(fhir, plan_id)
    except (Refused, ServiceUnavailable):
        return []
    seen = int(version) if version and version.isdigit() else 0
    return [row for row in rows if row.version > seen]
