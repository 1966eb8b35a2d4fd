"""Who may see a stay, and which of its steps: the stay's disclosure rule, of the plan's family
(`services/common/disclosure.py`; docs/disclosure.md says it in words).

The person sees their whole stay. An organisation the stay does not concern (neither the
hospital's nor one the admission notice went to) sees nothing: 404, as for an unknown id. An
organisation it concerns sees the stay's frame (the person, the ward, the units told, the
receipts, the judgement that care is needed, the discharge: the steps that name no legal basis
of their own), its own steps, every step disclosed on a recorded judgement that secrecy does
not prevent it, and another organisation's steps disclosed on consent only while the consent
service still permits disclosure from that organisation to it: asked at each read, so a
withdrawn consent hides what rested on it, as for a plan's entries.
`redact_stay` applies the answer: every way a stay leaves the service renders it, never the
stay itself.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from contracts.actor import Actor
from services.common.disclosure import PERSON, Disclosure, custodian_of
from services.common.domain import NotFound
from services.sip.consent_gate import ConsentGate, ConsentServiceUnavailable
from services.sip.discharge.application import STAY_RESOURCE_TYPE, stay_disclosure_request
from services.sip.discharge.stay import CONSENT, SECRECY_JUDGEMENT, Stay, Step
from services.sip.discharge.stay import SIP_CALL as SIP_CALL_DUTY
from services.sip.disclosure import consent_service_down
from services.sip.redaction import Withheld

# What a step that a reader may not see is called in the marks a redacted stay keeps.
ADMISSION_NOTICE = "admission-notice"
READY_NOTICE = "ready-notice"
READY_WITHDRAWAL = "ready-withdrawal"
CARE_CONTACT = "care-contact"
SIP_CALL = "sip-call"
INFORMATION_TRANSFER = "information-transfer"
# Shown to every reader the stay concerns, whoever recorded them (None: a step naming no
# basis of its own is part of the stay's frame).
OPEN_BASES: frozenset[str | None] = frozenset({SECRECY_JUDGEMENT, None})


def _basis(step: Step | None) -> str | None:
    return step.legal_basis.get("basis") if step and step.legal_basis else None


def consent_custodians(stay: Stay) -> set[str]:
    """The organisations whose steps in the stay rest on consent."""
    steps = [
        stay.admission_notice,
        *(p.notified for p in stay.ready_periods),
        *(p.withdrawn for p in stay.ready_periods),
        stay.care_contact.named if stay.care_contact else None,
        stay.sip_called,
        *stay.information_transfers,
    ]
    return {
        custodian
        for step in steps
        if _basis(step) == CONSENT and (custodian := custodian_of(step.by)) is not None
    }


class StayDisclosure:
    """Decides, for one reader and one stay, whose steps they see and on which consents."""

    def __init__(self, consent_gate: ConsentGate) -> None:
        self.consent_gate = consent_gate

    def __call__(self, stay: Stay, actor: Actor) -> Disclosure:
        if actor.role == "patient":
            if actor.patient == stay.subject["value"]:
                return Disclosure()
            raise NotFound(f"{STAY_RESOURCE_TYPE}/{stay.id}")
        reader = actor.organization
        if not reader or not stay.concerns(reader):
            raise NotFound(f"{STAY_RESOURCE_TYPE}/{stay.id}")
        seen, consents = {reader, PERSON}, []
        for custodian in sorted(consent_custodians(stay) - seen):
            try:
                decision = self.consent_gate.check(stay_disclosure_request(stay, reader, custodian))
            except ConsentServiceUnavailable as error:
                raise consent_service_down(error) from None
            if decision.permitted:
                seen.add(custodian)
                consents += [c for c in decision.consents if c not in consents]
        return Disclosure(tuple(consents), frozenset(seen), open_bases=OPEN_BASES)


def _sees(disclosure: Disclosure, step: Step | None) -> bool:
    return step is None or disclosure.sees_entry(None, custodian_of(step.by), _basis(step))


def redact_stay(stay: Stay, disclosure: Disclosure) -> Stay:
    """A copy of the stay with the steps the reader may not see left out, and marks of them
    in its `withheld` (the plan's `Withheld`: custodian and kind, never content). The frame
    stays: who is concerned, the receipts, the status the units are told."""
    if disclosure.complete:
        return stay
    seen = copy.copy(stay)
    withheld: list[Withheld] = []

    def hide(step: Step, kind: str) -> None:
        withheld.append(Withheld(custodian_of(step.by), kind))

    if stay.admission_notice and not _sees(disclosure, stay.admission_notice):
        hide(stay.admission_notice, ADMISSION_NOTICE)
        seen.estimated_discharge = None
        seen.admission_notice = replace(stay.admission_notice, legal_basis=None)
    periods = []
    for period in stay.ready_periods:
        # A notice without its withdrawal would tell the reader the person is ready when
        # they are not: the period is shown whole or not at all.
        if _sees(disclosure, period.notified) and _sees(disclosure, period.withdrawn):
            periods.append(period)
            continue
        hide(period.notified, READY_NOTICE)
        if period.withdrawn:
            hide(period.withdrawn, READY_WITHDRAWAL)
    seen.ready_periods = periods
    if stay.care_contact and not _sees(disclosure, stay.care_contact.named):
        hide(stay.care_contact.named, CARE_CONTACT)
        seen.care_contact = None
    if stay.sip_called and not _sees(disclosure, stay.sip_called):
        hide(stay.sip_called, SIP_CALL)
        seen.sip_called, seen.sip_plan_id = None, None
    transfers = []
    for transfer in stay.information_transfers:
        if _sees(disclosure, transfer):
            transfers.append(transfer)
        else:
            hide(transfer, INFORMATION_TRANSFER)
    seen.information_transfers = transfers
    if periods != stay.ready_periods:
        # A missed SIP call counts from a ready notice: shown with a notice hidden, it would
        # tell the reader that the person was ready.
        seen.deadlines_missed = [m for m in stay.deadlines_missed if m.duty != SIP_CALL_DUTY]
    seen.withheld = tuple(withheld)
    return seen
