"""The legal clock of a stay (LSU 2017:612), computed from its events at an injected instant.

Three deadlines, each owned by the organisation that must meet it:

- the admission notice, within 24 hours of admission, or of the judgement that care will be
  needed when that comes later: the hospital;
- the SIP call, within 3 days of the ready-for-discharge notice, when both the region and the
  municipality are needed: the primary care the notice went to (the fixed care contact's).
  A ready notice withdrawn before its deadline stops that clock: it sets no deadline, and a
  new ready notice starts a new one;
- the information transfer, no later than the day of discharge (Swedish calendar day): the
  hospital. Until the discharge, the estimated discharge day is shown as a provisional due
  date that is never overdue: the day that counts has not come.

Pure: no clock of its own, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.common.fhir_time import SWEDEN
from services.sip.discharge.stay import ADMISSION_NOTICE, INFORMATION_TRANSFER, SIP_CALL, Stay

MET, LATE, OPEN, OVERDUE = "met", "late", "open", "overdue"


@dataclass(frozen=True)
class ClockRules:
    """The law's periods. "Within 3 days" is read as 72 hours from the notice; a county that
    reads it as calendar days sets another period here (docs/decisions/0008-discharge-stay.md)."""

    admission_notice_within: timedelta = timedelta(hours=24)
    sip_call_within: timedelta = timedelta(days=3)
    # Whose calendar day "the day of discharge" is.
    zone: ZoneInfo = SWEDEN

    def end_of_day(self, instant: datetime) -> datetime:
        """The first instant after the local calendar day `instant` falls on."""
        day = instant.astimezone(self.zone).date() + timedelta(days=1)
        return datetime.combine(day, time(), tzinfo=self.zone)


@dataclass(frozen=True)
class Deadline:
    duty: str
    owner: str | None  # the organisation that must meet it (None: no one was notified)
    due: datetime
    done_at: datetime | None
    provisional: bool = False  # due on the estimated discharge day, not the real one

    def state(self, now: datetime) -> str:
        if self.done_at is not None:
            return MET if self.done_at <= self.due else LATE
        return OVERDUE if now > self.due and not self.provisional else OPEN

    def missed(self, now: datetime) -> bool:
        return self.state(now) in (LATE, OVERDUE)

    def time_left(self, now: datetime) -> timedelta | None:
        """Until due, while it is open; negative once overdue; None once done."""
        return None if self.done_at is not None else self.due - now


def deadlines(stay: Stay, rules: ClockRules = ClockRules()) -> list[Deadline]:
    """Every deadline the stay's events have set so far, in the order they were set."""
    return [
        *_admission_notice(stay, rules),
        *sip_call_deadlines(stay, rules),
        *_information_transfer(stay, rules),
    ]


def missed(stay: Stay, now: datetime, rules: ClockRules = ClockRules()) -> list[Deadline]:
    """The deadlines missed at `now` (done late, or not done and past due), each naming the
    organisation that missed it."""
    return [deadline for deadline in deadlines(stay, rules) if deadline.missed(now)]


def _admission_notice(stay: Stay, rules: ClockRules) -> list[Deadline]:
    if stay.care_need_judged is None:
        return []  # no one judged that care is needed: no notice is owed
    since = max(stay.admitted.at, stay.care_need_judged.at)
    notice = stay.admission_notice
    return [
        Deadline(
            duty=ADMISSION_NOTICE,
            owner=stay.organization,
            due=since + rules.admission_notice_within,
            done_at=notice.at if notice else None,
        )
    ]


def sip_call_deadlines(stay: Stay, rules: ClockRules = ClockRules()) -> list[Deadline]:
    """One per ready notice whose clock ran to its end (not withdrawn before it), in order."""
    if not stay.needs_both_principals:
        return []
    primary_care = stay.primary_care
    owner = (
        stay.care_contact.organization
        if stay.care_contact
        else primary_care.organization
        if primary_care
        else None
    )
    called = stay.sip_called.at if stay.sip_called else None
    found = []
    for period in stay.ready_periods:
        due = period.notified.at + rules.sip_call_within
        # A SIP called while the clock still ran meets it; a withdrawal first stops the clock.
        stopped = period.withdrawn is not None and period.withdrawn.at < due
        if stopped and (called is None or called > period.withdrawn.at):
            continue
        found.append(Deadline(duty=SIP_CALL, owner=owner, due=due, done_at=called))
    return found


def _information_transfer(stay: Stay, rules: ClockRules) -> list[Deadline]:
    if stay.admission_notice is None:
        return []  # no unit was told of the stay: there is no one to transfer to
    day_of = stay.discharged.at if stay.discharged else stay.estimated_discharge
    if day_of is None:
        return []
    transfers = stay.information_transfers
    return [
        Deadline(
            duty=INFORMATION_TRANSFER,
            owner=stay.organization,
            due=rules.end_of_day(day_of),
            done_at=transfers[0].at if transfers else None,
            provisional=stay.discharged is None,
        )
    ]
