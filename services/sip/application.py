"""SIP plan commands and queries over the SIP event store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from contracts.canonical import CONSENT_CATEGORY_SIP_PLAN
from contracts.consent_decision import ConsentCheckRequest
from services.common.application import Result, VersionedApplication
from services.common.business_identifiers import IdentifierClaims
from services.common.domain import RuleViolation, required_text
from services.sip.consent_gate import ConsentGate
from services.sip.discharge.stay import CONSENT, SECRECY_JUDGEMENT, WITHIN_ORGANIZATION, Stay
from services.sip.domain import PRINCIPALS, Plan
from services.sip.messages.message import Message
from services.sip.parts import EventActor


def disclosure_request(
    subject: dict[str, str], organization: str, source: str, purpose: str
) -> ConsentCheckRequest:
    """May `organization` see the entries about the person (`subject`: a plan's or a stay's)
    whose custodian is `source`?"""
    return ConsentCheckRequest(
        patient_system=subject["system"],
        patient_value=subject["value"],
        actor=organization,
        source=source,
        category=CONSENT_CATEGORY_SIP_PLAN,
        purpose=purpose,
    )


class DisclosureNotPermitted(RuleViolation):
    def __init__(self, refused: list[str]) -> None:
        super().__init__(
            "disclosure-requires-consent-or-judgement",
            "no consent allows this disclosure, and no secrecy judgement was recorded: "
            + "; ".join(refused),
        )


def consent_or_judgement(
    consent_gate: ConsentGate,
    subject: dict[str, str],
    purpose: str,
    by: EventActor,
    recipients: set[str],
    judgement: str | None,
) -> dict[str, Any]:
    """The legal basis of a disclosure about the person from the actor's organisation to
    `recipients` (a stay's step, a message): a recorded judgement that secrecy does not
    prevent it, or the consents that permit disclosure to every recipient of another
    organisation; refuses naming each recipient not covered. Recipients of the actor's own
    organisation are told, not disclosed to: with no other recipient the basis is that it
    stays within the organisation, and nobody is asked. The consent service being unreachable raises
    ConsentServiceUnavailable (nothing is written; the API answers 503)."""
    if judgement is not None:
        return {"basis": SECRECY_JUDGEMENT, "judgement": required_text(judgement, "judgement")}
    source = by.get("organization") if isinstance(by, dict) else None
    if not isinstance(source, str) or not source:
        raise RuleViolation("by-organization", "the actor acts for an organisation")
    outside = recipients - {source}
    if not outside:
        return {"basis": WITHIN_ORGANIZATION}
    consents: list[str] = []
    refused = []
    for recipient in sorted(outside):
        decision = consent_gate.check(disclosure_request(subject, recipient, source, purpose))
        if decision.permitted:
            consents += [c for c in decision.consents if c not in consents]
        else:
            refused.append(f"disclosure from {source} to {recipient} is not permitted")
    if refused:
        raise DisclosureNotPermitted(refused)
    if not consents:
        # Permitted without a consent named: nothing to record as the basis.
        raise DisclosureNotPermitted(["the consent service named no consent"])
    return {"basis": CONSENT, "consents": consents}


class ConsentRefused(RuleViolation):
    def __init__(self, reason: str) -> None:
        super().__init__("activation-requires-consent", f"no consent allows this plan: {reason}")


def principal_pairs(plan: Plan) -> list[tuple[str, str]]:
    """(source, recipient): every ordered pair of principals taking part in the plan."""
    principals = sorted(o.hsa_id for o in plan.organizations.values() if o.kind in PRINCIPALS)
    return [(source, to) for source in principals for to in principals if source != to]


def activate_if_permitted(
    plan: Plan, consent_gate: ConsentGate, *, at: datetime, by: EventActor
) -> None:
    """Activates the plan when consent covers disclosure between every pair of principals
    taking part, both ways, on the consents the consent service names; or refuses, naming
    the direction that is not covered (never the consents or blocks behind the answer)."""
    plan.ensure_can_activate()
    consents: list[str] = []
    refused = []
    for source, recipient in principal_pairs(plan):
        decision = consent_gate.check(
            disclosure_request(plan.subject, recipient, source, "sip-activation")
        )
        if decision.permitted:
            consents += [c for c in decision.consents if c not in consents]
        else:
            refused.append(
                f"disclosure from {source} ({plan.kind_of(source)}) to {recipient} "
                f"({plan.kind_of(recipient)}) is not permitted"
            )
    if refused:
        raise ConsentRefused("; ".join(refused))
    plan.activate(consents=consents, at=at, by=by)


class SipPlans(VersionedApplication):
    name = "SipPlans"
    resource_type = "CarePlan"
    aggregate_class = Plan
    other_aggregates = MappingProxyType({"Encounter": Stay, "Communication": Message})

    def start(self, claims: IdentifierClaims | None = None, **started: Any) -> Plan:
        """Starts a plan; with `claims`, raises IdentifierTaken (writing nothing) where the
        creator gave one of its identifiers to a plan before."""
        plan = Plan(**started)
        if claims is None:
            self.save(plan)
        else:
            claims.save(self, plan)
        return plan

    def activate(
        self,
        plan_id: UUID,
        *,
        consent_gate: ConsentGate,
        at: datetime,
        by: EventActor,
        expected_version: int | None = None,
    ) -> Plan:
        """Activates a draft plan when the consent service permits it; writes nothing else."""
        plan, _ = self.change(
            plan_id,
            lambda plan: activate_if_permitted(plan, consent_gate, at=at, by=by),
            expected_version=expected_version,
        )
        return plan

    def change(
        self,
        aggregate_id: UUID,
        command: Callable[[Plan], Result],
        *,
        expected_version: int | None = None,
    ) -> tuple[Plan, Result]:
        """Runs one command on the plan and saves its events; a refused command writes nothing."""
        return super().change(aggregate_id, command, expected_version=expected_version)
