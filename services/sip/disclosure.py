"""Who may see a plan: the plan's disclosure rule."""

from __future__ import annotations

from contracts.actor import Actor
from services.common.disclosure import Disclosure
from services.common.domain import NotFound
from services.common.fhir_api import FhirError, unavailable
from services.sip.application import plan_disclosure_request
from services.sip.consent_gate import ConsentGate, ConsentServiceUnavailable
from services.sip.domain import Plan


def consent_service_down(error: ConsentServiceUnavailable) -> FhirError:
    return unavailable(
        f"the consent service could not be asked ({error}); nothing was disclosed or changed"
    )


class PlanDisclosure:
    """The person sees their own plan; the starting organisation its own data; any other
    organisation only when it takes part and a consent permits it (fails closed)."""

    def __init__(self, consent_gate: ConsentGate) -> None:
        self.consent_gate = consent_gate

    def __call__(self, plan: Plan, actor: Actor) -> Disclosure:
        if actor.role == "patient":
            if actor.patient == plan.subject["value"]:
                return Disclosure()
            raise NotFound(f"CarePlan/{plan.id}")
        if actor.organization == plan.starting_organization:
            return Disclosure()
        if actor.organization and plan.takes_part(actor.organization):
            try:
                decision = self.consent_gate.check(
                    plan_disclosure_request(plan, actor.organization, "sip-disclosure")
                )
            except ConsentServiceUnavailable as error:
                raise consent_service_down(error) from None
            if decision.permitted:
                return Disclosure(decision.consents)
        raise NotFound(f"CarePlan/{plan.id}")
