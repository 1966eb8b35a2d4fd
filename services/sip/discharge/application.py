"""Stay commands over the SIP service's event store (docs/decisions/0008-discharge-stay.md).

Each command loads the stay, checks the legal basis of the disclosure it makes, runs the
stay's command and saves its events; a refused command writes nothing. The legal basis is the
person's consent by default: the consent service is asked, as for a plan, whether the
organisation acting may disclose to each other organisation the stay concerns, and the consents
it names are recorded on the event. Instead, the actor may record a judgement that secrecy
does not prevent the disclosure (`judgement`). Calling the SIP starts the draft plan and links
it to the stay in one save: both are stored, or neither.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from contracts.consent_decision import ConsentCheckRequest
from services.common.domain import ensure_expected_version
from services.sip.application import SipPlans, consent_or_judgement, disclosure_request
from services.sip.consent_gate import ConsentGate
from services.sip.discharge.clock import ClockRules, Deadline, missed
from services.sip.discharge.projections import LAW as INDEXED_RULES
from services.sip.discharge.projections import StayIndex
from services.sip.discharge.stay import MUNICIPAL_KINDS, Stay
from services.sip.domain import Plan
from services.sip.messages.notices import confirm_receipt as notice_receipt
from services.sip.messages.notices import notice_of, send_notice
from services.sip.parts import EventActor

STAY_RESOURCE_TYPE = "Encounter"
DISCHARGE_PURPOSE = "discharge-collaboration"
Result = TypeVar("Result")
log = logging.getLogger(__name__)
LAW = ClockRules()  # the periods the law sets, unless a county reads them otherwise
# Who records what the legal clock finds: the service itself, for no organisation.
LEGAL_CLOCK: EventActor = {
    "subject": "legal-clock",
    "role": "system",
    "organization": None,
    "unit": None,
}


# What each duty of the law is called on a deviation (the plan's texts are Swedish).
DUTY_TEXT = {
    "admission-notice": "inskrivningsmeddelande inom 24 timmar",
    "sip-call": "kallelse till SIP inom 3 dagar efter meddelandet om utskrivningsklar",
    "information-transfer": "informationsöverföring senast på utskrivningsdagen",
}


def missed_deadline_text(duty: str, due: datetime) -> str:
    local = due.astimezone(LAW.zone).strftime("%Y-%m-%d %H:%M")
    return (
        f"Lagstadgad tidsfrist missad (LSU 2017:612): {DUTY_TEXT.get(duty, duty)}, senast {local}."
    )


def stay_disclosure_request(stay: Stay, recipient: str, source: str) -> ConsentCheckRequest:
    """May `source` disclose the stay's steps to `recipient`? Asked when a step is recorded
    and again when one is read (a withdrawn consent hides what rested on it)."""
    return disclosure_request(stay.subject, recipient, source, DISCHARGE_PURPOSE)


class Stays:
    """The stay's commands, on the SIP service's application and consent gate."""

    def __init__(
        self, plans: SipPlans, consent_gate: ConsentGate, index: StayIndex | None = None
    ) -> None:
        self.plans = plans
        self.consent_gate = consent_gate
        # The stays' read model: the timed check looks only at the stays it names as due.
        self.index = index

    def stay(self, stay_id: UUID, version: int | None = None) -> Stay:
        found: Stay = self.plans.aggregate_of(Stay, STAY_RESOURCE_TYPE, stay_id, version)
        return found

    def admit(
        self, *, subject: dict[str, str], ward: str, admitted_at: datetime, by: EventActor
    ) -> Stay:
        """An admission without identifiers (the API's, with them: discharge/admission.py)."""
        stay = Stay.admit(subject=subject, ward=ward, admitted_at=admitted_at, by=by)
        self.plans.save(stay)
        return stay

    def change(
        self,
        stay_id: UUID,
        command: Callable[[Stay], Result],
        *,
        expected_version: int | None = None,
    ) -> tuple[Stay, Result]:
        """Runs one command on the stay and saves its events; a refusal writes nothing."""
        stay = self.stay(stay_id)
        ensure_expected_version(stay.version, expected_version)
        result = command(stay)
        self.plans.save(stay)
        return stay, result

    def record_missed_deadlines(
        self, stay_id: UUID, *, now: datetime, rules: ClockRules = LAW
    ) -> list[Deadline]:
        """Records on the stay each deadline the clock finds missed at `now` and not recorded
        yet (the newly recorded ones are returned). Once the stay has a plan (the SIP called),
        each missed deadline recorded on it, before the plan or since, is raised as a deviation
        of the plan against the organisation that missed it, once (the plan knows each by its
        stay, duty and due time), in the same write as the stay's record. Safe to run on two
        replicas at once: the one that loses the race reads the winner's record and records
        nothing more."""

        def attempt() -> list[Deadline]:
            stay = self.stay(stay_id)
            newly = [
                deadline
                for deadline in missed(stay, now, rules)
                if stay.record_deadline_missed(
                    duty=deadline.duty,
                    due=deadline.due,
                    owner=deadline.owner,
                    at=now,
                    by=LEGAL_CLOCK,
                )
            ]
            plan = self._raise_deviations(stay, now)
            self.plans.save(stay, *([plan] if plan is not None else []))
            return newly

        try:
            return attempt()
        except IntegrityError:  # another writer saved the stay or its plan first: ask again
            return attempt()

    def _raise_deviations(self, stay: Stay, now: datetime) -> Plan | None:
        """The stay's plan with a deviation for each missed deadline the stay has not yet
        handed to it, each handing recorded on the stay (None: no plan, or the plan raised
        nothing: it had them, or is closed)."""
        owed = stay.deviations_owed
        if not owed:
            return None
        assert stay.sip_plan_id is not None
        plan: Plan = self.plans.aggregate(UUID(stay.sip_plan_id))
        raised = False
        for deadline in owed:
            deviation_id = plan.report_missed_deadline(
                reporter=stay.organization,
                against=deadline.owner,
                source={
                    "stay": str(stay.id),
                    "duty": deadline.duty,
                    "due": deadline.due.isoformat(),
                },
                text=missed_deadline_text(deadline.duty, deadline.due),
                at=now,
                by=LEGAL_CLOCK,
            )
            stay.record_deviation_raised(
                duty=deadline.duty, due=deadline.due, deviation_id=deviation_id, at=now,
                by=LEGAL_CLOCK,
            )  # fmt: skip
            raised = raised or deviation_id is not None
        return plan if raised else None

    def check_deadlines(self, *, now: datetime, rules: ClockRules = LAW) -> int:
        """The time-driven check: how many missed deadlines it recorded. It looks at the stays
        the read model names as due at `now` (a deadline not yet recorded is due, or deviations
        may be owed to the plan), or at every stay where there is no read model or the county
        reads the law's periods otherwise than the read model does."""
        if self.index is not None and rules == INDEXED_RULES:
            candidates: Iterable[UUID] = self.index.clock_due(now)
        else:
            candidates = self.plans.aggregate_ids(aggregate_class=Stay)
        return sum(
            len(self.record_missed_deadlines(stay_id, now=now, rules=rules))
            for stay_id in candidates
        )

    def judge_care_needed(
        self, stay_id: UUID, *, principals: list[str], at: datetime, by: EventActor, **options: Any
    ) -> Stay:
        return self.change(
            stay_id, lambda s: s.judge_care_needed(principals=principals, at=at, by=by), **options
        )[0]

    def send_admission_notice(
        self,
        stay_id: UUID,
        *,
        recipients: list[dict[str, str]],
        estimated_discharge: datetime,
        at: datetime,
        by: EventActor,
        judgement: str | None = None,
        expected_version: int | None = None,
    ) -> Stay:
        """The notice on the stay and as its message, saved together (or neither)."""
        stay = self.stay(stay_id)
        ensure_expected_version(stay.version, expected_version)
        # Asked of the units named in the command: the stay names none before the notice.
        told = {r.get("organization") for r in recipients if isinstance(r, dict)}
        basis = self.legal_basis(stay, by, {o for o in told if isinstance(o, str)}, judgement)
        send_notice(
            self.plans, stay, recipients=recipients, estimated_discharge=estimated_discharge,
            legal_basis=basis, at=at, by=by,
        )  # fmt: skip
        return stay

    def confirm_receipt(
        self,
        stay_id: UUID,
        *,
        at: datetime,
        by: EventActor,
        expected_version: int | None = None,
    ) -> Stay:
        """The unit's receipt on the stay and, where the notice is a message, as its read
        receipt, saved together."""
        stay = self.stay(stay_id)
        ensure_expected_version(stay.version, expected_version)
        notice_receipt(self.plans, stay, notice_of(self.plans, stay.id), at=at, by=by)
        return stay

    def notify_ready(self, stay_id: UUID, *, at: datetime, by: EventActor, **options: Any) -> Stay:
        return self._disclosing(stay_id, "notify_ready", at=at, by=by, **options)

    def withdraw_ready(
        self, stay_id: UUID, *, reason: str, at: datetime, by: EventActor, **options: Any
    ) -> Stay:
        return self._disclosing(stay_id, "withdraw_ready", reason=reason, at=at, by=by, **options)

    def name_care_contact(
        self,
        stay_id: UUID,
        *,
        name: str,
        already_existed: bool,
        at: datetime,
        by: EventActor,
        **options: Any,
    ) -> Stay:
        contact = {"name": name, "already_existed": already_existed}
        return self._disclosing(stay_id, "name_care_contact", at=at, by=by, **contact, **options)

    def transfer_information(
        self, stay_id: UUID, *, at: datetime, by: EventActor, **options: Any
    ) -> Stay:
        return self._disclosing(stay_id, "transfer_information", at=at, by=by, **options)

    def discharge(self, stay_id: UUID, *, at: datetime, by: EventActor, **options: Any) -> Stay:
        return self.change(stay_id, lambda s: s.discharge(at=at, by=by), **options)[0]

    def record_outpatient_care_unavailable(
        self, stay_id: UUID, *, reason: str, at: datetime, by: EventActor, **options: Any
    ) -> Stay:
        return self.change(
            stay_id,
            lambda s: s.record_outpatient_care_unavailable(reason=reason, at=at, by=by),
            **options,
        )[0]

    def call_sip(
        self,
        stay_id: UUID,
        *,
        title: str | None,
        at: datetime,
        by: EventActor,
        judgement: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[Stay, UUID]:
        """Starts a draft plan for the person with the stay's organisations invited, links it
        to the stay, and saves both together."""
        stay = self.stay(stay_id)
        ensure_expected_version(stay.version, expected_version)
        plan = self.sip_plan(stay, title=title, at=at, by=by, judgement=judgement)
        self.plans.save(plan, stay)  # one transaction: the plan and its link, or neither
        return stay, plan.id

    def sip_plan(
        self, stay: Stay, *, title: str | None, at: datetime, by: EventActor, judgement: str | None
    ) -> Plan:
        """Calls the SIP on the stay: the draft plan, not yet saved, linked from the stay (the
        caller saves both in one write)."""
        basis = self.legal_basis(stay, by, self.others(stay, by), judgement)
        plan = Plan(
            subject=dict(stay.subject),
            starting_organization=by.get("organization"),
            starting_organization_kind="region",
            initiative="region-unit",
            title=title,
            description=None,
            started_at=at,
            started_by=by,
        )
        for organization, kind in self._plan_organizations(stay, by):
            plan.invite_organization(hsa_id=organization, kind=kind, name=None, at=at, by=by)
        stay.call_sip(plan_id=str(plan.id), legal_basis=basis, at=at, by=by)
        return plan

    @staticmethod
    def _plan_organizations(stay: Stay, by: EventActor) -> list[tuple[str, str]]:
        """The stay's organisations other than the caller's, as the plan knows their kinds:
        the municipality, and the hospital (a region's care provider)."""
        kinds = {stay.organization: "region"}
        for recipient in stay.recipients.values():
            kinds[recipient.organization] = (
                "municipality" if recipient.kind in MUNICIPAL_KINDS else "region"
            )
        return sorted((o, k) for o, k in kinds.items() if o != by.get("organization"))

    # The legal basis of a disclosure.

    def legal_basis(
        self, stay: Stay, by: EventActor, recipients: set[str], judgement: str | None
    ) -> dict[str, Any]:
        """A recorded secrecy judgement, or the consents that permit disclosure from the
        actor's organisation to every recipient; refuses naming each recipient not covered.
        The consent service being unreachable raises ConsentServiceUnavailable (nothing is
        written; the API answers 503)."""
        return consent_or_judgement(
            self.consent_gate, stay.subject, DISCHARGE_PURPOSE, by, recipients, judgement
        )

    def _disclosing(
        self,
        stay_id: UUID,
        command_name: str,
        *,
        by: EventActor,
        judgement: str | None = None,
        expected_version: int | None = None,
        **arguments: Any,
    ) -> Stay:
        def command(stay: Stay) -> None:
            basis = self.legal_basis(stay, by, self.others(stay, by), judgement)
            getattr(stay, command_name)(legal_basis=basis, by=by, **arguments)

        return self.change(stay_id, command, expected_version=expected_version)[0]

    @staticmethod
    def others(stay: Stay, by: EventActor) -> set[str]:
        """The organisations the stay concerns other than the actor's: whom a step tells."""
        everyone = {stay.organization, *(r.organization for r in stay.recipients.values())}
        return everyone - {by.get("organization")}


def with_missed_deadlines(
    stays: Stays,
    timed_check: Callable[[], list[Any]],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], list[Any]]:
    """The subscription worker's time-driven check (every `subscription_check_seconds`), run
    after the stays' legal clock has recorded what it finds missed at `now`. A failure of the
    stays' check is logged and does not keep the plans' follow-up notices from going out; it
    is tried again at the next round, and records nothing twice."""

    def check() -> list[Any]:
        try:
            stays.check_deadlines(now=now())
        except Exception:
            log.exception("the stays' deadline check failed; tried again next round")
        return timed_check()

    return check
