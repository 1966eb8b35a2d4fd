"""Who may see a plan, and whose entries in it: the plan's disclosure rule.

The person sees their whole plan. An organisation not taking part sees nothing (404). An
organisation taking part sees the frame, its own entries, the person's, and each other
custodian's where the consent service permits disclosure from that custodian to it (which
also answers for the person's blocks). The starting organisation is no exception.
services/sip/redaction.py applies the answer; docs/disclosure.md says it in words.
"""

from __future__ import annotations

from contracts.actor import Actor
from services.common.disclosure import PERSON, Disclosure
from services.common.domain import NotFound
from services.common.fhir_api import FhirError, unavailable
from services.sip.application import disclosure_request
from services.sip.consent_gate import ConsentGate, ConsentServiceUnavailable
from services.sip.domain import PRINCIPALS, Plan
from services.sip.redaction import COST_ALLOCATION, custodians_of_entries


def consent_service_down(error: ConsentServiceUnavailable) -> FhirError:
    return unavailable(
        f"the consent service could not be asked ({error}); nothing was disclosed or changed"
    )


class PlanDisclosure:
    """Decides, for one reader and one plan, whose entries they see and on which consents."""

    def __init__(self, consent_gate: ConsentGate) -> None:
        self.consent_gate = consent_gate

    def __call__(self, plan: Plan, actor: Actor) -> Disclosure:
        if actor.role == "patient":
            if actor.patient == plan.subject["value"]:
                # The cost shares are a dialogue between the principals only.
                return Disclosure(withheld_kinds=frozenset({COST_ALLOCATION}))
            raise NotFound(f"CarePlan/{plan.id}")
        reader = actor.organization
        if not reader or not plan.takes_part(reader):
            raise NotFound(f"CarePlan/{plan.id}")
        seen, consents = {reader, PERSON}, []
        # Asked only for the organisations whose entries the plan holds: a custodian with
        # nothing in the plan has nothing to disclose (and no answer to wait for).
        for custodian in sorted(custodians_of_entries(plan) - seen):
            if not plan.takes_part(custodian):
                continue  # never disclosed: it does not take part
            try:
                decision = self.consent_gate.check(
                    disclosure_request(plan.subject, reader, custodian, "sip-disclosure")
                )
            except ConsentServiceUnavailable as error:
                raise consent_service_down(error) from None
            if decision.permitted:
                seen.add(custodian)
                consents += [c for c in decision.consents if c not in consents]
        withheld_kinds = (
            frozenset() if plan.kind_of(reader) in PRINCIPALS else frozenset({COST_ALLOCATION})
        )
        return Disclosure(tuple(consents), frozenset(seen), withheld_kinds)
