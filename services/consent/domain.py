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

from contracts.canonical import CONSENT_FORMS
from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.consent_events import (
    CONSENT_ENTERED_IN_ERROR,
    CONSENT_WITHDRAWN,
)
from contracts.identifiers import PersonIdentifier, age_on
from services.common.domain import (
    InvalidCommand,
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
# What lets an organisation past a block: the person's consent given at that moment, or an
# emergency declared by the professional who needs the information.
OVERRIDE_BASES = ("consent", "emergency")


class Consent(Aggregate):
    class Given(Aggregate.Created):
        class_version = 3
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
        identifiers: list[dict[str, str]] | None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # Consents given before business identifiers were kept have none.
            state["identifiers"] = []

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
        # Before the `*`: the library takes every keyword-only argument as required, and
        # callers from before identifiers existed give none.
        identifiers: list[dict[str, str]] | None = None,
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
        # The recording system's names for the consent (system, value); unique per organisation.
        self.identifiers = [dict(identifier) for identifier in identifiers or []]
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
        if kwargs.get("form") not in CONSENT_FORMS:
            raise InvalidCommand("form", f"one of {', '.join(CONSENT_FORMS)}")
        _children_judged_mature(kwargs.get("givers") or [])
        return super()._create(event_class, **kwargs)

    def read_copy(self) -> Consent:
        """A copy to read (decide on) while the kept one is brought up to date: a fraction of
        a deep copy's cost. Enough because an event changes a consent only by setting its
        attributes or appending to `overrides`, never by changing a value in place; an event
        that did would have to be copied here too."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.overrides = list(self.overrides)
        copied._pending_events = []  # a command on the copy would not touch the kept one
        return copied

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

    class BlockOverridden(Aggregate.Event):
        class_version = 2
        organization: str
        reason: str
        until: datetime
        by: dict[str, Any]
        at: datetime
        basis: str
        form: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Overrides recorded before the basis was asked for: nobody said on what ground.
            state.update(basis="unrecorded", form=None)

    def override_block(
        self,
        *,
        organization: str,
        reason: str,
        until: datetime,
        basis: str,
        form: str | None,
        by: dict[str, Any],
        at: datetime,
    ) -> None:
        """Lets `organization` past this block until `until`: on the person's consent given
        now (in `form`) or in a declared emergency."""
        required_text(organization, "organization")
        required_text(reason, "reason")
        required_instant(until, "until")
        if basis not in OVERRIDE_BASES:
            raise InvalidCommand("basis", f"one of {', '.join(OVERRIDE_BASES)}")
        if basis == "consent" and form not in CONSENT_FORMS:
            raise InvalidCommand("form", f"the consent's form: {', '.join(CONSENT_FORMS)}")
        if self.kind != "block":
            raise RuleViolation("override-only-blocks", "only a block (spärr) is overridden")
        if not self.in_force_at(at):
            raise RuleViolation("override-block-in-force", "the block is not in force")
        if until <= at:
            raise RuleViolation("override-is-temporary", "an override ends in the future")
        self._block_overridden(
            organization=organization,
            reason=reason,
            until=until,
            by=by,
            at=at,
            basis=basis,
            form=form if basis == "consent" else None,
        )

    @event(BlockOverridden)
    def _block_overridden(
        self,
        organization: str,
        reason: str,
        until: datetime,
        by: dict[str, Any],
        at: datetime,
        basis: str,
        form: str | None,
    ) -> None:
        self.overrides.append(
            {
                "organization": organization,
                "reason": reason,
                "until": until,
                "by": by,
                "at": at,
                "basis": basis,
                "form": form,
            }
        )

    def in_force_at(self, at: datetime) -> bool:
        if self.withdrawal is not None or self.entered_in_error is not None:
            return False
        if self.period_start is not None and at < self.period_start:
            return False
        return self.period_end is None or at <= self.period_end

    def is_pending_at(self, at: datetime) -> bool:
        """Not yet in force, but will be: nothing ended it and its period starts later."""
        return (
            self.withdrawal is None
            and self.entered_in_error is None
            and self.period_start is not None
            and at < self.period_start
        )

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
            # A child consents alone only with a recorded judgement of maturity (who judged,
            # when, on what basis). The bare `mature` flag of consents recorded before that
            # was kept says nothing of who judged: it no longer counts (fail closed).
            mature_child = any(
                giver.get("role") == "child" and giver.get("maturity") for giver in self.givers
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


def _children_judged_mature(givers: list[dict[str, Any]]) -> None:
    """A child who gives consent without the guardians has been judged mature enough, and
    who judged it, when and why is recorded with the consent."""
    if any(giver.get("role") == "guardian" for giver in givers):
        return  # the guardians consent; the child's own agreement is recorded beside theirs
    for index, giver in enumerate(givers):
        if giver.get("role") != "child":
            continue
        judgement = giver.get("maturity")
        if not isinstance(judgement, dict):
            raise InvalidCommand(
                f"givers[{index}].maturity",
                "a child's own consent needs a recorded judgement of the child's maturity",
            )
        required_text(judgement.get("by"), f"givers[{index}].maturity.by")
        required_instant(judgement.get("at"), f"givers[{index}].maturity.at")
        required_text(judgement.get("basis"), f"givers[{index}].maturity.basis")


@dataclass
class _Findings:
    relied_on: list[Consent] = field(default_factory=list)
    overrides: list[tuple[Consent, datetime]] = field(default_factory=list)  # block, until
    refusals: list[str] = field(default_factory=list)
    blocks_to_come: list[datetime] = field(default_factory=list)

    def valid_until(self) -> datetime | None:
        """The first moment the permit may stop being true without any new event: a consent
        relied on ends, an override runs out, or a block of the source comes into force."""
        moments = [c.period_end for c in self.relied_on if c.period_end is not None]
        moments += [until for _, until in self.overrides]
        moments += self.blocks_to_come
        return min(moments, default=None)


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
    person gave and that cover the category, both organisations and no exclusion. The reason
    is for the access log: it names consents and blocks, and is never the asker's answer."""
    findings = _Findings()
    for block in (c for c in consents if c.kind == "block" and request.source in c.organizations):
        if not block.in_force_at(at):
            if block.is_pending_at(at):
                findings.blocks_to_come.append(block.period_start)  # type: ignore[arg-type]
            continue
        override = block.overridden_for(request.actor, at)
        if override is None:
            return ConsentDecision(
                decision="deny",
                reason=f"blocked: Consent/{block.id} blocks disclosure of "
                f"{request.source}'s information",
            )
        findings.overrides.append((block, override["until"]))
    for consent in (c for c in consents if c.kind == "permit"):
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
            findings.refusals.append(f"Consent/{consent.id} {why}")
        else:
            findings.relied_on.append(consent)
    if findings.relied_on:
        overridden = [str(block.id) for block, _ in findings.overrides]
        reason = f"consent-in-force: {len(findings.relied_on)} consent(s) cover this disclosure"
        if overridden:
            reason += f"; block(s) overridden for {request.actor}: " + ", ".join(overridden)
        return ConsentDecision(
            decision="permit",
            reason=reason,
            consents=tuple([str(c.id) for c in findings.relied_on] + overridden),
            valid_until=findings.valid_until(),
        )
    if not findings.refusals:
        return ConsentDecision(decision="deny", reason="no-consent: the person has no consent")
    return ConsentDecision(
        decision="deny", reason="no-consent-in-force: " + "; ".join(findings.refusals)
    )
