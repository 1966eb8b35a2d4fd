"""SIP plan commands and queries over the SIP event store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.consent_decision import ConsentCheckRequest
from services.common.application import VersionedApplication
from services.common.domain import RuleViolation
from services.sip.consent_gate import ConsentGate
from services.sip.domain import Plan

SIP_CONSENT_CATEGORY = "sip-plan"


def plan_disclosure_request(plan: Plan, organization: str, purpose: str) -> ConsentCheckRequest:
    """May `organization` see the plan, which is the starting organisation's information?"""
    return ConsentCheckRequest(
        patient_system=plan.subject["system"],
        patient_value=plan.subject["value"],
        actor=organization,
        source=plan.starting_organization,
        category=SIP_CONSENT_CATEGORY,
        purpose=purpose,
    )


class ConsentRefused(RuleViolation):
    def __init__(self, reason: str) -> None:
        super().__init__("activation-requires-consent", f"no consent allows this plan: {reason}")


class SipPlans(VersionedApplication):
    name = "SipPlans"
    resource_type = "CarePlan"
    aggregate_class = Plan

    def start(self, **started: Any) -> Plan:
        plan = Plan(**started)
        self.save(plan)
        return plan

    def activate(
        self,
        plan_id: UUID,
        *,
        consent_gate: ConsentGate,
        at: datetime,
        by: dict[str, Any],
        expected_version: int | None = None,
    ) -> Plan:
        """Activates a draft plan when the consent service permits it; writes nothing else."""
        plan: Plan = self.aggregate_for_change(plan_id, expected_version)
        plan.ensure_can_activate()
        decision = consent_gate.check(
            plan_disclosure_request(plan, plan.starting_organization, "sip-activation")
        )
        if not decision.permitted:
            raise ConsentRefused(decision.reason)
        plan.activate(consents=list(decision.consents), at=at, by=by)
        self.save(plan)
        return plan

    def change(
        self,
        plan_id: UUID,
        command: Callable[[Plan], Any],
        *,
        expected_version: int | None = None,
    ) -> tuple[Plan, Any]:
        """Runs one command on the plan and saves its events; a refused command writes nothing."""
        plan: Plan = self.aggregate_for_change(plan_id, expected_version)
        result = command(plan)
        self.save(plan)
        return plan, result
