"""The inpatient stay aggregate: from admission to discharge, as the units concerned tell it.

Pure domain: no I/O, no clock. Every command names who did it (`by`, the actor as the plan's
events record it, with the organisation and unit acted from) and when (`at`). Every step that
tells another organisation something about the person names its legal basis: the person's
consent (the default; the application asks the consent service and records the consents it
names) or a recorded judgement that secrecy does not prevent the disclosure.

Commands check everything before an event is made, so a refused command changes nothing and
stores nothing (a RuleViolation the API maps to 4xx, naming the rule). The aggregate stays in
this module: its path is part of every stored event's topic
(`services.sip.discharge.stay:Stay.<event>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.common.domain import (
    InvalidCommand,
    RuleViolation,
    required_instant,
    required_person_identifier,
    required_text,
)
from services.sip.domain import PRINCIPALS
from services.sip.parts import EventActor

# The units an admission notice goes to (LSU 3 kap.): the person's primary-care unit (region)
# and the municipality's social services and municipal health care.
PRIMARY_CARE = "primary-care"
MUNICIPAL_KINDS = ("social-services", "municipal-health-care")
RECIPIENT_KINDS = (PRIMARY_CARE, *MUNICIPAL_KINDS)
CONSENT = "consent"
SECRECY_JUDGEMENT = "secrecy-judgement"
# Told only within the actor's own organisation: nothing is disclosed, so nothing is asked.
WITHIN_ORGANIZATION = "within-organization"
LEGAL_BASES = (CONSENT, SECRECY_JUDGEMENT, WITHIN_ORGANIZATION)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the stay: when, by whom (the actor's organisation and unit in `by`)."""

    at: datetime
    by: EventActor
    legal_basis: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A unit an admission notice went to, and its receipt once it confirms."""

    organization: str
    unit: str
    kind: str
    received: Step | None = None

    @property
    def principal(self) -> str:
        return "region" if self.kind == PRIMARY_CARE else "municipality"


@dataclass(frozen=True, slots=True)
class ReadyPeriod:
    """From a ready-for-discharge notice to its withdrawal ("no longer ready"), if any."""

    notified: Step
    withdrawn: Step | None = None
    withdrawal_reason: str | None = None


@dataclass(frozen=True, slots=True)
class MissedDeadline:
    """A deadline of the legal clock recorded as missed on the stay (no plan to hold the
    deviation yet): which duty, when it was due, the organisation that missed it."""

    duty: str
    due: datetime
    owner: str | None
    recorded: Step


# The duties the legal clock sets (services/sip/discharge/clock.py).
ADMISSION_NOTICE = "admission-notice"
SIP_CALL = "sip-call"
INFORMATION_TRANSFER = "information-transfer"
DUTIES = (ADMISSION_NOTICE, SIP_CALL, INFORMATION_TRANSFER)


@dataclass(frozen=True, slots=True)
class CareContact:
    organization: str
    unit: str
    name: str
    already_existed: bool
    named: Step


def checked_legal_basis(value: object, element: str = "legal_basis") -> dict[str, Any]:
    """{"basis": "consent", "consents": [ids]}, {"basis": "secrecy-judgement", "judgement":
    text} or {"basis": "within-organization"}: a disclosure on consent names the consents it
    relied on, one on a secrecy judgement says what was judged; a step told only within the
    actor's own organisation discloses nothing."""
    if not isinstance(value, Mapping):
        raise InvalidCommand(element, "a legal basis is required")
    basis = value.get("basis")
    if basis == CONSENT:
        consents = value.get("consents")
        if not isinstance(consents, list | tuple) or not consents:
            raise InvalidCommand(f"{element}.consents", "a disclosure on consent names them")
        return {
            "basis": CONSENT,
            "consents": [required_text(c, f"{element}.consents") for c in consents],
        }
    if basis == SECRECY_JUDGEMENT:
        judgement = required_text(value.get("judgement"), f"{element}.judgement")
        return {"basis": SECRECY_JUDGEMENT, "judgement": judgement}
    if basis == WITHIN_ORGANIZATION:
        return {"basis": WITHIN_ORGANIZATION}
    raise InvalidCommand(f"{element}.basis", f"one of {', '.join(LEGAL_BASES)}, not {basis!r}")


def _aware_instant(value: object, element: str) -> datetime:
    """A date and time with its offset: the stay's steps are compared with each other and
    counted in Swedish calendar days, which a time without an offset cannot be."""
    instant = required_instant(value, element)
    if instant.utcoffset() is None:
        raise InvalidCommand(element, "a date and time with a time zone is required")
    return instant


def _acting(by: object) -> tuple[str, str]:
    """The organisation and unit an actor acts from: every step records both."""
    if not isinstance(by, Mapping):
        raise InvalidCommand("by", "the actor is required")
    organization = required_text(by.get("organization"), "by.organization")
    unit = required_text(by.get("unit"), "by.unit")
    return organization, unit


class Stay(Aggregate):
    class Admitted(Aggregate.Created):
        class_version = 2
        subject: dict[str, str]
        organization: str
        ward: str
        admitted_at: datetime
        by: EventActor
        identifiers: list[dict[str, str]] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Stays admitted before business identifiers were kept have none.
            state["identifiers"] = []

    @event(Admitted)
    def __init__(
        self,
        # Before the `*`: the library takes every keyword-only argument as required, and
        # callers from before identifiers existed give none.
        identifiers: list[dict[str, str]] | None = None,
        *,
        subject: dict[str, str],
        organization: str,
        ward: str,
        admitted_at: datetime,
        by: EventActor,
    ) -> None:
        self.subject = subject
        # The admission's business identifiers (the hospital's encounter number, a form's
        # submission key): what makes a repeated admission find the stay it made.
        self.identifiers = list(identifiers or [])
        self.organization = organization  # the hospital's care provider (a region)
        self.ward = ward
        self.admitted = Step(at=admitted_at, by=by)
        self.care_needed: tuple[str, ...] = ()
        self.care_need_judged: Step | None = None
        self.estimated_discharge: datetime | None = None
        self.admission_notice: Step | None = None
        self.recipients: dict[str, Recipient] = {}  # by unit
        self.care_contact: CareContact | None = None
        self.ready_periods: list[ReadyPeriod] = []
        self.sip_called: Step | None = None
        self.sip_plan_id: str | None = None
        self.information_transfers: list[Step] = []
        self.outpatient_care_unavailable: Step | None = None
        self.outpatient_care_unavailable_reason: str | None = None
        self.discharged: Step | None = None
        self.deadlines_missed: list[MissedDeadline] = []
        # Each missed deadline (duty, due time) handed to the plan as a deviation: the id of
        # the deviation raised, or None where the plan had it already or, closed, took none.
        self.deviations_raised: dict[tuple[str, datetime], str | None] = {}
        self.changed_by = by

    @classmethod
    def _create(cls, event_class: Any, **kwargs: Any) -> Stay:
        """Admission: checked here, not in `__init__`, which also applies stored events."""
        required_person_identifier(kwargs.get("subject"), "subject")
        required_text(kwargs.get("ward"), "ward")
        _aware_instant(kwargs.get("admitted_at"), "admitted_at")
        organization, _ = _acting(kwargs.get("by"))
        if kwargs.get("organization") != organization:
            raise RuleViolation(
                "admitted-by-the-hospital",
                "the stay is admitted by someone acting for the hospital's organisation",
            )
        return super()._create(event_class, **kwargs)

    @classmethod
    def admit(
        cls,
        *,
        subject: dict[str, str],
        ward: str,
        admitted_at: datetime,
        by: EventActor,
        identifiers: list[dict[str, str]] | None = None,
    ) -> Stay:
        """The ward admits the person; the stay belongs to the admitting actor's organisation."""
        organization = by.get("organization") if isinstance(by, Mapping) else None
        return cls(
            subject=subject, organization=organization, ward=ward, admitted_at=admitted_at, by=by,
            identifiers=list(identifiers or []),
        )  # fmt: skip

    # What other parts of the service ask of a stay.

    @property
    def custodian(self) -> str:
        return self.organization

    @property
    def person_identifier(self) -> dict[str, str]:
        return self.subject

    @property
    def status(self) -> str:
        if self.discharged is not None:
            return "discharged"
        return "ready" if self.ready is not None else "admitted"

    @property
    def ready(self) -> ReadyPeriod | None:
        """The ready-for-discharge notice in force, if one is."""
        latest = self.ready_periods[-1] if self.ready_periods else None
        return latest if latest is not None and latest.withdrawn is None else None

    @property
    def needs_both_principals(self) -> bool:
        return set(self.care_needed) == set(PRINCIPALS)

    @property
    def primary_care(self) -> Recipient | None:
        return next((r for r in self.recipients.values() if r.kind == PRIMARY_CARE), None)

    @property
    def municipality(self) -> str | None:
        """The municipality the notice went to: the one that may pay for waiting days."""
        return next(
            (r.organization for r in self.recipients.values() if r.kind in MUNICIPAL_KINDS), None
        )

    def kind_of(self, organization: str) -> str | None:
        """The kind of an organisation the stay concerns, a region or a municipality: the
        hospital's is a region, a recipient's its unit's principal (the fixed care contact is
        named by the primary care the notice went to)."""
        if organization == self.organization:
            return "region"
        return next(
            (r.principal for r in self.recipients.values() if r.organization == organization),
            None,
        )

    def concerns(self, organization: str | None) -> bool:
        """The hospital and every organisation the admission notice went to."""
        return organization is not None and (
            organization == self.organization
            or any(r.organization == organization for r in self.recipients.values())
        )

    def latest_step_at(self) -> datetime:
        steps = [
            self.admitted,
            self.care_need_judged,
            self.admission_notice,
            *(r.received for r in self.recipients.values()),
            self.care_contact.named if self.care_contact else None,
            *(p.notified for p in self.ready_periods),
            *(p.withdrawn for p in self.ready_periods),
            self.sip_called,
            *self.information_transfers,
            self.outpatient_care_unavailable,
        ]
        return max(step.at for step in steps if step is not None)

    # Rules every step obeys.

    def _ensure_step(
        self, at: object, by: object, *, after_discharge: bool = False
    ) -> tuple[str, str]:
        """Not before admission, nor after discharge unless `after_discharge`: the duties that
        outlive the stay (a receipt, naming the contact, calling the SIP, a late information
        transfer) are still recorded, late as they may be. Returns the actor's organisation
        and unit."""
        if self.discharged is not None and not after_discharge:
            raise RuleViolation("discharged-stay-unchanged", "the person is discharged already")
        when = _aware_instant(at, "at")
        acting = _acting(by)
        if when < self.admitted.at:
            raise RuleViolation("after-admission", "a step of the stay is not before admission")
        return acting

    def _ensure_by_hospital(self, organization: str, what: str) -> None:
        if organization != self.organization:
            raise RuleViolation("by-the-hospital", f"{what} is the hospital's to record")

    def _ensure_notice_sent(self, what: str) -> Step:
        if self.admission_notice is None:
            raise RuleViolation(
                "after-admission-notice", f"{what} follows the admission notice, not sent yet"
            )
        return self.admission_notice

    # The ward's steps.

    def judge_care_needed(self, *, principals: list[str], at: datetime, by: EventActor) -> None:
        """The treating physician judges that the person may need care after discharge from
        the region's outpatient care, the municipality, or both."""
        organization, _ = self._ensure_step(at, by)
        self._ensure_by_hospital(organization, "the judgement that care will be needed")
        if not isinstance(principals, list | tuple) or not principals:
            raise InvalidCommand("principals", "the principals whose care is needed")
        for principal in principals:
            if principal not in PRINCIPALS:
                raise InvalidCommand("principals", f"one of {', '.join(PRINCIPALS)}")
        if self.care_need_judged is not None:
            raise RuleViolation("care-need-judged-once", "the need for care is judged already")
        self._care_need_judged(principals=sorted(set(principals)), at=at, by=by)

    @event("CareNeedJudged")
    def _care_need_judged(self, principals: list[str], at: datetime, by: EventActor) -> None:
        self.care_needed = tuple(principals)
        self.care_need_judged = Step(at=at, by=by)
        self.changed_by = by

    def send_admission_notice(
        self,
        *,
        recipients: list[dict[str, str]],
        estimated_discharge: datetime,
        legal_basis: dict[str, Any],
        at: datetime,
        by: EventActor,
    ) -> None:
        """The admission notice (inskrivningsmeddelande) to the units concerned, with the
        estimated time of discharge."""
        organization, _ = self._ensure_step(at, by)
        self._ensure_by_hospital(organization, "the admission notice")
        basis = checked_legal_basis(legal_basis)
        if self.care_need_judged is None:
            raise RuleViolation(
                "notice-after-judgement",
                "an admission notice follows the judgement that care will be needed",
            )
        if self.admission_notice is not None:
            raise RuleViolation("admission-notice-sent-once", "the admission notice is sent")
        estimate = _aware_instant(estimated_discharge, "estimated_discharge")
        if estimate < self.admitted.at:
            raise InvalidCommand("estimated_discharge", "the discharge is after the admission")
        checked = _recipients(recipients)
        principals = {Recipient(**r).principal for r in checked}
        missing = [p for p in self.care_needed if p not in principals]
        if missing:
            raise RuleViolation(
                "notice-to-units-concerned",
                f"the notice goes to a unit of every principal whose care is needed: "
                f"none of {', '.join(missing)}",
            )
        self._admission_notice_sent(
            recipients=checked, estimated_discharge=estimate, legal_basis=basis, at=at, by=by
        )

    @event("AdmissionNoticeSent")
    def _admission_notice_sent(
        self,
        recipients: list[dict[str, str]],
        estimated_discharge: datetime,
        legal_basis: dict[str, Any],
        at: datetime,
        by: EventActor,
    ) -> None:
        self.recipients = {r["unit"]: Recipient(**r) for r in recipients}
        self.estimated_discharge = estimated_discharge
        self.admission_notice = Step(at=at, by=by, legal_basis=legal_basis)
        self.changed_by = by

    def notify_ready(self, *, legal_basis: dict[str, Any], at: datetime, by: EventActor) -> None:
        """The physician judges the person ready for discharge (utskrivningsklar)."""
        organization, _ = self._ensure_step(at, by)
        self._ensure_by_hospital(organization, "the ready-for-discharge notice")
        basis = checked_legal_basis(legal_basis)
        self._ensure_notice_sent("the ready-for-discharge notice")
        if self.ready is not None:
            raise RuleViolation("ready-once", "the person is notified ready already")
        self._ensure_not_before_latest(at)
        self._ready_notified(legal_basis=basis, at=at, by=by)

    @event("ReadyNotified")
    def _ready_notified(self, legal_basis: dict[str, Any], at: datetime, by: EventActor) -> None:
        self.ready_periods.append(ReadyPeriod(notified=Step(at=at, by=by, legal_basis=legal_basis)))
        self.changed_by = by

    def withdraw_ready(
        self, *, reason: str, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        """The person is no longer judged ready: the units are told at once, the clock stops."""
        organization, _ = self._ensure_step(at, by)
        self._ensure_by_hospital(organization, "withdrawing the ready notice")
        basis = checked_legal_basis(legal_basis)
        required_text(reason, "reason")
        ready = self.ready
        if ready is None:
            raise RuleViolation("withdraw-when-ready", "no ready-for-discharge notice is in force")
        if at < ready.notified.at:
            raise RuleViolation("steps-in-time-order", "a withdrawal follows its ready notice")
        self._ready_withdrawn(reason=reason, legal_basis=basis, at=at, by=by)

    @event("ReadyWithdrawn")
    def _ready_withdrawn(
        self, reason: str, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        self.ready_periods[-1] = replace(
            self.ready_periods[-1],
            withdrawn=Step(at=at, by=by, legal_basis=legal_basis),
            withdrawal_reason=reason,
        )
        self.changed_by = by

    def transfer_information(
        self, *, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        """The ward transfers what the units need (no later than the day of discharge)."""
        organization, _ = self._ensure_step(at, by, after_discharge=True)
        self._ensure_by_hospital(organization, "the information transfer")
        basis = checked_legal_basis(legal_basis)
        self._ensure_notice_sent("the information transfer")
        self._information_transferred(legal_basis=basis, at=at, by=by)

    @event("InformationTransferred")
    def _information_transferred(
        self, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        self.information_transfers.append(Step(at=at, by=by, legal_basis=legal_basis))
        self.changed_by = by

    def discharge(self, *, at: datetime, by: EventActor) -> None:
        """The stay ends; nothing is recorded on it after this."""
        organization, _ = self._ensure_step(at, by)
        self._ensure_by_hospital(organization, "the discharge")
        self._ensure_not_before_latest(at)
        self._discharged(at=at, by=by)

    @event("Discharged")
    def _discharged(self, at: datetime, by: EventActor) -> None:
        self.discharged = Step(at=at, by=by)
        self.changed_by = by

    # The units' steps.

    def confirm_receipt(self, *, at: datetime, by: EventActor) -> None:
        """A unit the notice went to confirms that it received it (from that unit)."""
        organization, unit = self._ensure_step(at, by, after_discharge=True)
        notice = self._ensure_notice_sent("a receipt")
        recipient = self.recipients.get(unit)
        if recipient is None or recipient.organization != organization:
            raise RuleViolation("receipt-by-recipient", f"the notice did not go to unit {unit}")
        if recipient.received is not None:
            raise RuleViolation("receipt-once", f"unit {unit} has confirmed its receipt already")
        if at < notice.at:
            raise RuleViolation("steps-in-time-order", "a receipt follows the notice")
        self._receipt_confirmed(unit=unit, at=at, by=by)

    @event("ReceiptConfirmed")
    def _receipt_confirmed(self, unit: str, at: datetime, by: EventActor) -> None:
        self.recipients[unit] = replace(self.recipients[unit], received=Step(at=at, by=by))
        self.changed_by = by

    def name_care_contact(
        self,
        *,
        name: str,
        already_existed: bool,
        legal_basis: dict[str, Any],
        at: datetime,
        by: EventActor,
    ) -> None:
        """The primary-care unit the notice went to names the fixed care contact (fast
        vårdkontakt), or records the one the person already has."""
        organization, unit = self._ensure_step(at, by, after_discharge=True)
        basis = checked_legal_basis(legal_basis)
        required_text(name, "name")
        if not isinstance(already_existed, bool):
            raise InvalidCommand("already_existed", "true or false")
        notice = self._ensure_notice_sent("naming the fixed care contact")
        primary_care = self.primary_care
        if primary_care is None or primary_care.organization != organization:
            raise RuleViolation(
                "care-contact-by-primary-care",
                "the fixed care contact is named by the primary care the notice went to",
            )
        if self.care_contact is not None:
            raise RuleViolation("care-contact-named-once", "the fixed care contact is named")
        if at < notice.at:
            raise RuleViolation("steps-in-time-order", "the contact is named after the notice")
        self._care_contact_named(
            unit=unit, name=name, already_existed=already_existed, legal_basis=basis, at=at, by=by
        )

    @event("CareContactNamed")
    def _care_contact_named(
        self,
        unit: str,
        name: str,
        already_existed: bool,
        legal_basis: dict[str, Any],
        at: datetime,
        by: EventActor,
    ) -> None:
        self.care_contact = CareContact(
            organization=by["organization"],
            unit=unit,
            name=name,
            already_existed=already_existed,
            named=Step(at=at, by=by, legal_basis=legal_basis),
        )
        self.changed_by = by

    def call_sip(
        self, *, plan_id: str, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        """The fixed care contact's organisation calls the SIP meeting; `plan_id` is the draft
        plan the application started for it, linked here."""
        organization, _ = self._ensure_step(at, by, after_discharge=True)
        basis = checked_legal_basis(legal_basis)
        required_text(plan_id, "plan_id")
        if not self.needs_both_principals:
            raise RuleViolation(
                "sip-needs-both-principals",
                "a SIP is called when care from both the region and the municipality is needed",
            )
        if self.care_contact is None or self.care_contact.organization != organization:
            raise RuleViolation(
                "sip-called-by-care-contact", "the SIP is called by the fixed care contact's unit"
            )
        if self.sip_called is not None:
            raise RuleViolation(
                "sip-called-once", f"the SIP is called already ({self.sip_plan_id})"
            )
        if at < self.care_contact.named.at:
            raise RuleViolation("steps-in-time-order", "the SIP is called after naming the contact")
        self._sip_called(plan_id=plan_id, legal_basis=basis, at=at, by=by)

    @event("SipCalled")
    def _sip_called(
        self, plan_id: str, legal_basis: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        self.sip_called = Step(at=at, by=by, legal_basis=legal_basis)
        self.sip_plan_id = plan_id
        self.changed_by = by

    def record_outpatient_care_unavailable(
        self, *, reason: str, at: datetime, by: EventActor
    ) -> None:
        """The region records that the person cannot leave because care the region's
        outpatient side is responsible for is not available (or not yet clarified): the
        municipality does not pay for this stay's waiting days (seed 002, 5.1)."""
        organization, _ = self._ensure_step(at, by)
        required_text(reason, "reason")
        primary_care = self.primary_care
        if organization != self.organization and (
            primary_care is None or primary_care.organization != organization
        ):
            raise RuleViolation(
                "outpatient-unavailable-by-region",
                "the hospital or the primary care the notice went to records this",
            )
        if self.outpatient_care_unavailable is not None:
            raise RuleViolation("outpatient-unavailable-once", "it is recorded already")
        self._outpatient_care_unavailable(reason=reason, at=at, by=by)

    @event("OutpatientCareUnavailable")
    def _outpatient_care_unavailable(self, reason: str, at: datetime, by: EventActor) -> None:
        self.outpatient_care_unavailable = Step(at=at, by=by)
        self.outpatient_care_unavailable_reason = reason
        self.changed_by = by

    # The legal clock's record.

    def record_deadline_missed(
        self, *, duty: str, due: datetime, owner: str | None, at: datetime, by: EventActor
    ) -> bool:
        """The clock records a deadline it found missed at `at`, once per duty and due time:
        asked again it records nothing (False), so a check that runs every few minutes, or on
        two replicas at once, raises each missed deadline once. Not a step of the stay: it
        neither moves the stay's latest step nor needs a legal basis (it tells no one)."""
        if duty not in DUTIES:
            raise InvalidCommand("duty", f"one of {', '.join(DUTIES)}, not {duty!r}")
        due = _aware_instant(due, "due")
        at = _aware_instant(at, "at")
        if not due < at:
            raise RuleViolation("missed-after-due", "a deadline is missed only after it is due")
        if self._recorded_missed(duty, due):
            return False
        self._deadline_missed(duty=duty, due=due, owner=owner, at=at, by=by)
        return True

    def _recorded_missed(self, duty: str, due: datetime) -> bool:
        return any(m.duty == duty and m.due == due for m in self.deadlines_missed)

    @event("DeadlineMissed")
    def _deadline_missed(
        self, duty: str, due: datetime, owner: str | None, at: datetime, by: EventActor
    ) -> None:
        self.deadlines_missed.append(
            MissedDeadline(duty=duty, due=due, owner=owner, recorded=Step(at=at, by=by))
        )

    def record_deviation_raised(
        self, *, duty: str, due: datetime, deviation_id: str | None, at: datetime, by: EventActor
    ) -> bool:
        """The clock records that a missed deadline of the stay was handed to its plan as a
        deviation (`deviation_id`, or None where the plan had it already or, closed, took
        none), in the same write as the plan's: so the stay itself tells whether deviations
        are still owed to the plan. Once per duty and due time (asked again: False)."""
        due = _aware_instant(due, "due")
        at = _aware_instant(at, "at")
        if self.sip_plan_id is None:
            raise RuleViolation("deviation-needs-plan", "a deviation is raised on the stay's plan")
        if not self._recorded_missed(duty, due):
            raise RuleViolation("deviation-of-missed", "only a recorded missed deadline is raised")
        if (duty, due) in self.deviations_raised:
            return False
        self._deviation_raised(duty=duty, due=due, deviation_id=deviation_id, at=at, by=by)
        return True

    @event("DeviationRaised")
    def _deviation_raised(
        self, duty: str, due: datetime, deviation_id: str | None, at: datetime, by: EventActor
    ) -> None:
        self.deviations_raised[(duty, due)] = deviation_id

    @property
    def deviations_owed(self) -> list[MissedDeadline]:
        """The missed deadlines the plan may still lack (none before the SIP is called)."""
        if self.sip_plan_id is None:
            return []
        return [m for m in self.deadlines_missed if (m.duty, m.due) not in self.deviations_raised]

    def _ensure_not_before_latest(self, at: datetime) -> None:
        # Ready notices, withdrawals and the discharge are the steps the clocks and the payment
        # count from: one dated before what the stay already records would make a period run
        # backwards.
        if at < self.latest_step_at():
            raise RuleViolation(
                "steps-in-time-order", "this step is not dated before the stay's latest step"
            )


def _recipients(values: object) -> list[dict[str, str]]:
    if not isinstance(values, list | tuple) or not values:
        raise InvalidCommand("recipients", "the units the notice goes to")
    checked: list[dict[str, str]] = []
    for index, value in enumerate(values):
        element = f"recipients[{index}]"
        if not isinstance(value, Mapping):
            raise InvalidCommand(element, "an organisation, a unit and a kind")
        kind = value.get("kind")
        if kind not in RECIPIENT_KINDS:
            raise InvalidCommand(f"{element}.kind", f"one of {', '.join(RECIPIENT_KINDS)}")
        checked.append(
            {
                "organization": required_text(value.get("organization"), f"{element}.organization"),
                "unit": required_text(value.get("unit"), f"{element}.unit"),
                "kind": kind,
            }
        )
    units = [r["unit"] for r in checked]
    if len(set(units)) != len(units):
        raise InvalidCommand("recipients", "each unit once")
    if sum(r["kind"] == PRIMARY_CARE for r in checked) > 1:
        raise InvalidCommand("recipients", "one primary-care unit: the person's own")
    municipalities = {r["organization"] for r in checked if r["kind"] in MUNICIPAL_KINDS}
    if len(municipalities) > 1:
        raise InvalidCommand("recipients", "the municipal units are of one municipality")
    return checked
