"""A consent (or block) as the pages summarise it: status, which organisations, the period,
who gave it in what capacity and how, who registered it, and a withdrawal. Read from the
R4 Consent the consent service gave this user (docs/fhir-extensions.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts.canonical import (
    CONSENT_CATEGORY_SYSTEM,
    EXT_CONSENT_FORM,
    EXT_CONSENT_GIVER_ROLE,
    EXT_CONSENT_WITHDRAWAL,
    EXT_ENTERED_IN_ERROR,
    EXT_RECORDED_BY,
)
from services.web.plan_view import extension, hsa_of, part
from services.web.times import parse_instant


@dataclass(frozen=True)
class Giver:
    role: str
    name: str | None
    identifier: str | None  # a personnummer: shown only on pages about that person
    sole_custody: bool = False
    judged_mature: bool = False


@dataclass(frozen=True)
class ConsentSummary:
    id: str
    kind: str  # permit | block
    status: str  # active | inactive | entered-in-error | ...
    organizations: list[str]
    recipients: list[str]
    sources: list[str]
    categories: list[str]
    period_start: str | None
    period_end: str | None
    given_at: str | None
    form: str | None
    givers: list[Giver] = field(default_factory=list)
    recorded_by_organization: str | None = None
    recorded_by_role: str | None = None
    withdrawn_at: str | None = None
    withdrawn_reason: str | None = None

    @property
    def expired(self) -> bool:
        end = parse_instant(self.period_end)
        return bool(end and end < datetime.now(UTC))

    @property
    def in_force(self) -> bool:
        return self.status == "active" and not self.expired and not self.not_yet

    @property
    def not_yet(self) -> bool:
        start = parse_instant(self.period_start)
        return bool(start and start > datetime.now(UTC))

    @property
    def state(self) -> str:
        """One Swedish word for where the consent stands now (texts.CONSENT_STATE)."""
        if self.status == "entered-in-error":
            return "entered-in-error"
        if self.withdrawn_at or self.status == "inactive":
            return "withdrawn"
        if self.expired:
            return "expired"
        if self.not_yet:
            return "not-yet"
        return "active" if self.status == "active" else self.status


def consent_summary(resource: dict[str, Any]) -> ConsentSummary:
    provision = resource.get("provision") or {}
    period = provision.get("period") or {}
    recipients, sources = [], []
    for actor in provision.get("actor") or []:
        code = next((c.get("code") for c in (actor.get("role") or {}).get("coding", [])), None)
        hsa = hsa_of(actor.get("reference"))
        if hsa:
            (recipients if code == "IRCP" else sources).append(hsa)
    recorded = extension(resource, EXT_RECORDED_BY)
    withdrawal = extension(resource, EXT_CONSENT_WITHDRAWAL) or extension(
        resource, EXT_ENTERED_IN_ERROR
    )
    recorded_org = part(recorded, "organization")
    return ConsentSummary(
        id=resource.get("id", ""),
        kind="block" if provision.get("type") == "deny" else "permit",
        status=resource.get("status", ""),
        organizations=[h for h in (hsa_of(o) for o in resource.get("organization", [])) if h],
        recipients=recipients,
        sources=sources,
        categories=[
            c.get("code")
            for concept in resource.get("category", [])
            for c in concept.get("coding", [])
            if c.get("system") == CONSENT_CATEGORY_SYSTEM and c.get("code")
        ],
        period_start=period.get("start"),
        period_end=period.get("end"),
        given_at=resource.get("dateTime"),
        form=(extension(resource, EXT_CONSENT_FORM) or {}).get("valueCode"),
        givers=[_giver(p) for p in resource.get("performer", [])],
        recorded_by_organization=recorded_org.get("value")
        if isinstance(recorded_org, dict)
        else None,
        recorded_by_role=part(recorded, "role"),
        withdrawn_at=part(withdrawal, "time"),
        withdrawn_reason=part(withdrawal, "reason"),
    )


def _giver(performer: dict[str, Any]) -> Giver:
    role_extension = extension(performer, EXT_CONSENT_GIVER_ROLE) or {}
    role = role_extension.get("valueCode") or part(role_extension, "role") or "person"
    return Giver(
        role=str(role),
        name=performer.get("display"),
        identifier=(performer.get("identifier") or {}).get("value"),
        sole_custody=bool(part(role_extension, "soleCustody")),
        judged_mature=bool(part(role_extension, "mature")),
    )


def consents_in(bundle: dict[str, Any]) -> list[ConsentSummary]:
    return [
        consent_summary(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "Consent"
    ]
