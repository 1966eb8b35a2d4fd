"""Consents and blocks (*spärrar*), and the decision on every disclosure.

A consent lets named organisations share named categories of the person's information for a
period; it can exclude organisations or categories. A block stops one organisation's
information from reaching others even where consent exists, unless an organisation gets a
temporary, logged override. Withdrawal is final and never deletes anything; a registration
made in error is marked so, with a reason, and stays in the history.

Pure domain: no I/O, no clock. Times come in with the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.consent_events import (
    CONSENT_BLOCK_OVERRIDDEN,
    CONSENT_ENTERED_IN_ERROR,
    CONSENT_WITHDRAWN,
)
from contracts.identifiers import PersonIdentifier, age_on
from services.common.domain import (
    RuleViolation,
    optional_instant,
    required_instant,
    required_person_identifier,
    required_text,
    required_texts,
)

ADULT_AGE = 18
GUARDIAN_ROLES = {"guardian"}
REPRESENTATIVE_ROLES = {"god-man", "forvaltare", "representative"}


class Consent(Aggregate):
    class Given(Aggregate.Created):
        class_version = 2
        patient: dict[str, str]
        kind: str
        scope: str
        categories: list[str]
        performer: list[dict[str, Any]]
        givers: list[dict[str, Any]]
        form: str
        organizations: list[str]
        recipients: list[str]
        sources: list[str]
        exclusions: list[dict[str, Any]]
        period_start: datetime | None
        period_end: datetime | None
        given_at: datetime
        recorded_by: dict[str, Any]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Consents recorded before these were kept were the person's own, in writing.
            state.update(
                kind="permit",
                givers=[{"role": "person"}],
                form="written",
                recipients=[],
                sources=[],
                exclusions=[],
            )

    @event(Given)
    def __init__(
        self,
        *,
        patient: dict[str, str],
        kind: str,
        scope: str,
        categories: list[str],
        performer: list[dict[str, Any]],
        givers: list[dict[str, Any]],
        form: str,
        organizations: list[str],
        recipients: list[str],
        sources: list[str],
        exclusions: list[dict[str, Any]],
        period_start: datetime | None,
        period_end: datetime | None,
        given_at: datetime,
        recorded_by: dict[str, Any],
    ) -> None:
        self.patient = patient
        self.kind = kind  # "permit", or "block" (a spärr)
        self.scope = scope
        self.categories = categories
        self.performer = performer
        self.givers = givers
        self.form = form
        self.organizations = organizations
        self.recipients = recipients
        self.sources = sources
        self.exclusions = exclusions
        self.period_start = period_start
        self.period_end = period_end
        self.given_at = given_at
        self.recorded_by = recorded_by
        self.withdrawal: dict[str, Any] | None = None
        self.entered_in_error: dict[str, Any] | None = None
        self.overrides: list[dict[str, Any]] = []

    @classmethod
    def _create(cls, event_class: Any, **kwargs: Any) -> Consent:
        """Giving a consent: the command's values are checked here, not in `__init__`, which
        also applies stored `Given` events on every replay and must take them as they are."""
        required_person_identifier(kwargs.get("patient"), "patient")
        for element in ("kind", "scope", "form"):
            required_text(kwargs.get(element), element)
        for element in ("categories", "organizations", "recipients", "sources"):
            required_texts(kwargs.get(element), element)
        optional_instant(kwargs.get("period_start"), "period_start")
        optional_instant(kwargs.get("period_end"), "period_end")
        required_instant(kwargs.get("given_at"), "given_at")
        return super()._create(event_class, **kwargs)

    @property
    def custodian(self) -> str | None:
        """The organisation whose data this is, for the access log."""
        return self.recorded_by.get("organization")

    @property
    def person_identifier(self) -> dict[str, str]:
        return self.patient

    @property
    def status(self) -> str:
        if self.entered_in_error:
            return "entered-in-error"
        return "inactive" if self.withdrawal else "active"

    def withdraw(self, *, reason: str, withdrawn_by: dict[str, Any], at: datetime) -> None:
        required_text(reason, "reason")
        if self.withdrawal is not None:
            raise RuleViolation(
                "consent-withdrawal-is-final",
                "this consent is already withdrawn; a new consent is a new record",
            )
        if self.entered_in_error is not None:
            raise RuleViolation("consent-entered-in-error", "this registration was made in error")
        self._withdrawn(reason=reason, withdrawn_by=withdrawn_by, withdrawn_at=at)

    @event(CONSENT_WITHDRAWN)
    def _withdrawn(self, reason: str, withdrawn_by: dict[str, Any], withdrawn_at: datetime) -> None:
        self.withdrawal = {"reason": reason, "by": withdrawn_by, "at": withdrawn_at}

    def mark_entered_in_error(self, *, reason: str, by: dict[str, Any], at: datetime) -> None:
        required_text(reason, "reason")
        if self.entered_in_error is not None:
            raise RuleViolation("consent-entered-in-error", "already marked as made in error")
        self._entered_in_error(reason=reason, by=by, at=at)

    @event(CONSENT_ENTERED_IN_ERROR)
    def _entered_in_error(self, reason: str, by: dict[str, Any], at: datetime) -> None:
        self.entered_in_error = {"reason": reason, "by": by, "at": at}

    def override_block(
        self, *, organization: str, reason: str, until: datetime, by: dict[str, Any], at: datetime
    ) -> None:
        required_text(organization, "organization")
        required_text(reason, "reason")
        required_instant(until, "until")
        if self.kind != "block":
            raise RuleViolation("override-only-blocks", "only a block (spärr) is overridden")
        if not self.in_force_at(at):
            raise RuleViolation("override-block-in-force", "the block is not in force")
        if until <= at:
            raise RuleViolation("override-is-temporary", "an override ends in the future")
        self._block_overridden(organization=organization, reason=reason, until=until, by=by, at=at)

    @event(CONSENT_BLOCK_OVERRIDDEN)
    def _block_overridden(
        self, organization: str, reason: str, until: datetime, by: dict[str, Any], at: datetime
    ) -> None:
        self.overrides.append(
            {"organization": organization, "reason": reason, "until": until, "by": by, "at": at}
        )

    def in_force_at(self, at: datetime) -> bool:
        if self.withdrawal is not None or self.entered_in_error is not None:
            return False
        if self.period_start is not None and at < self.period_start:
            return False
        return self.period_end is None or at <= self.period_end

    def overridden_for(self, organization: str, at: datetime) -> dict[str, Any] | None:
        return next(
            (o for o in self.overrides if o["organization"] == organization and at <= o["until"]),
            None,
        )

    def covers(self, request: ConsentCheckRequest) -> str | None:
        """Why this (permit) consent does not cover the disclosure, or None if it does."""
        if request.category not in self.categories:
            return f"does not cover '{request.category}'"
        if request.actor not in self.organizations and request.actor not in self.recipients:
            return "does not cover the requesting organisation"
        if request.source not in self.organizations and request.source not in self.sources:
            return "does not cover the source organisation"
        for exclusion in self.exclusions:
            organizations = exclusion.get("organizations") or []
            categories = exclusion.get("categories") or []
            if (not organizations or {request.actor, request.source} & set(organizations)) and (
                not categories or request.category in categories
            ):
                return "the person excluded this disclosure"
        return None

    def given_by_whoever_may(
        self, person: PersonIdentifier, at: datetime, guardians: int
    ) -> str | None:
        """Why the givers could not consent for the person at that time, or None if they could."""
        roles = [giver.get("role") for giver in self.givers]
        if age_on(person, at.date()) < ADULT_AGE:
            mature_child = any(
                giver.get("role") == "child" and giver.get("mature") for giver in self.givers
            )
            sole_custody = any(
                giver.get("role") == "guardian" and giver.get("sole_custody")
                for giver in self.givers
            )
            if mature_child or sole_custody or roles.count("guardian") >= guardians:
                return None
            return (
                f"the person is a child: {guardians} guardian(s) consent, or the child "
                "if mature enough"
            )
        if any(role == "person" or role in REPRESENTATIVE_ROLES for role in roles):
            return None
        return "an adult's consent is given by the person or their representative"


@dataclass
class _Findings:
    relied_on: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def decide(
    consents: list[Consent],
    request: ConsentCheckRequest,
    at: datetime,
    *,
    person: PersonIdentifier,
    guardians_required: int = 1,
) -> ConsentDecision:
    """Deny by default. A block of the source organisation denies unless the asking
    organisation holds an override; otherwise permit only on consents in force that the right
    person gave and that cover the category, both organisations and no exclusion."""
    findings = _Findings()
    for block in (c for c in consents if c.kind == "block" and c.in_force_at(at)):
        if request.source in block.organizations:
            override = block.overridden_for(request.actor, at)
            if override is None:
                return ConsentDecision(
                    decision="deny",
                    reason=f"blocked: Consent/{block.id} blocks disclosure of "
                    f"{request.source}'s information",
                )
            findings.overrides.append(str(block.id))
    for consent in (c for c in consents if c.kind == "permit"):
        consent_id = str(consent.id)
        if consent.entered_in_error is not None:
            continue
        why = (
            "withdrawn"
            if consent.withdrawal is not None
            else "not in force at this time"
            if not consent.in_force_at(at)
            else consent.covers(request)
            or consent.given_by_whoever_may(person, at, guardians_required)
        )
        if why:
            findings.refusals.append(f"Consent/{consent_id} {why}")
        else:
            findings.relied_on.append(consent_id)
    if findings.relied_on:
        overridden = (
            f"; block(s) overridden for {request.actor}: " + ", ".join(findings.overrides)
            if findings.overrides
            else ""
        )
        return ConsentDecision(
            decision="permit",
            reason=f"consent-in-force: {len(findings.relied_on)} consent(s) cover this "
            f"disclosure{overridden}",
            consents=tuple(findings.relied_on + findings.overrides),
        )
    if not findings.refusals:
        return ConsentDecision(decision="deny", reason="no-consent: the person has no consent")
    return ConsentDecision(
        decision="deny", reason="no-consent-in-force: " + "; ".join(findings.refusals)
    )
