"""Who pays for the days a person ready for discharge stays in hospital (betalningsansvar).

The model of seed 002 (Västra Götaland, 5.1–5.2), with its figures as configuration because
other counties agree others:

- Per municipality and calendar month, over the people discharged that month after a ready
  notice, the municipality pays when the average number of calendar days between the ready
  notice and the discharge is OVER 3.0 (exactly 3.0 pays nothing): the difference × the
  number of those people × the year's daily amount (set each year by the government, so it
  is configured per year and never guessed).
- A person still in hospital more than 7 calendar days after the ready notice leaves the
  average and is counted alone: the municipality pays for that person's days over 3, that is
  from day 4.
- Nothing for a person when the region did not do its part (the admission notice late or not
  sent; where a SIP was needed, not called within its deadline), or when the person could not
  leave because the region's outpatient care was not available.

How the days are read (the seed leaves it open; these are this model's choices, configurable
where a county could read them otherwise):

- Calendar days are Swedish calendar dates. The day of the ready notice is day 0, so the
  waiting days are the number of dates from it to the discharge date: ready Monday 14:00 and
  discharged Thursday 09:00 is 3 days. `count_ready_day` makes the notice's own date day 1.
- A person counts in the month of their discharge (the seed counts "utskrivna personer"),
  with all their waiting days, also those of an earlier month.
- Only the ready notice in force at discharge counts: a notice withdrawn ("no longer ready
  after all") contributes no days, and a person discharged with no notice in force is not in
  the report's figures.
- The average's difference is taken exactly: (average − 3.0) × people equals the days in the
  average minus 3.0 × people, with no rounding of the average on the way; amounts are
  rounded to whole öre at the end.

Pure: a function of stays and the model, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

from services.sip.discharge.clock import (
    ADMISSION_NOTICE,
    ClockRules,
    deadlines,
    sip_call_deadlines,
)
from services.sip.discharge.stay import Stay

AVERAGE, INDIVIDUAL, EXCLUDED = "average", "individual", "excluded"
# Why a discharged person costs the municipality nothing.
NO_READY_NOTICE = "no-ready-notice-in-force"
NOTICE_MISSED = "admission-notice-missed"
SIP_MISSED = "sip-call-missed"
OUTPATIENT_UNAVAILABLE = "outpatient-care-unavailable"
ORE = Decimal("0.01")


class DailyAmountMissing(Exception):
    """The model has no daily amount for the year reported: a configuration gap, not zero."""

    def __init__(self, year: int) -> None:
        super().__init__(f"no daily amount is configured for {year}")
        self.year = year


@dataclass(frozen=True)
class PaymentModel:
    """The county's agreement. Defaults are the seed's (Västra Götaland); the daily amounts
    are the government's per year, configured by whoever runs the report."""

    average_over_days: Decimal = Decimal("3.0")
    individual_after_days: int = 7  # more than this: counted alone, from day 8 ...
    individual_pays_after_days: int = 3  # ... paying for each day over this, from day 4
    daily_amounts: Mapping[int, Decimal] = field(default_factory=lambda: MappingProxyType({}))
    count_ready_day: bool = False
    clock: ClockRules = field(default_factory=ClockRules)

    def daily_amount(self, year: int) -> Decimal:
        try:
            return Decimal(self.daily_amounts[year])
        except KeyError:
            raise DailyAmountMissing(year) from None


@dataclass(frozen=True)
class Line:
    """One discharged person in a municipality's month."""

    stay_id: str
    ready_on: date | None
    discharged_on: date
    days: int
    counted: str  # average, individual or excluded
    reason: str | None = None  # why excluded
    payable_days: int = 0  # for a person counted alone
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class MonthlyReport:
    municipality: str
    year: int
    month: int
    daily_amount: Decimal
    lines: tuple[Line, ...]
    people_in_average: int
    days_in_average: int
    average: Decimal | None  # None when no one is in the average
    average_payable_days: Decimal  # (average − threshold) × people, when over the threshold
    average_amount: Decimal
    individual_payable_days: int
    individual_amount: Decimal

    @property
    def total(self) -> Decimal:
        return self.average_amount + self.individual_amount


def line_for(stay: Stay, model: PaymentModel, as_of: datetime) -> Line:
    """How one discharged stay counts: its waiting days and whether the municipality pays."""
    if stay.discharged is None:
        raise ValueError("only a discharged stay is counted")
    zone = model.clock.zone
    discharged_on = stay.discharged.at.astimezone(zone).date()
    ready = stay.ready
    if ready is None:
        return Line(str(stay.id), None, discharged_on, 0, EXCLUDED, NO_READY_NOTICE)
    ready_on = ready.notified.at.astimezone(zone).date()
    days = (discharged_on - ready_on).days + (1 if model.count_ready_day else 0)
    reason = _exclusion(stay, model, as_of)
    if reason is not None:
        return Line(str(stay.id), ready_on, discharged_on, days, EXCLUDED, reason)
    if days > model.individual_after_days:
        payable = days - model.individual_pays_after_days
        return Line(str(stay.id), ready_on, discharged_on, days, INDIVIDUAL, payable_days=payable)
    return Line(str(stay.id), ready_on, discharged_on, days, AVERAGE)


def _exclusion(stay: Stay, model: PaymentModel, as_of: datetime) -> str | None:
    """The region's part not done, or its outpatient care not available: nothing is paid.
    A deadline still open at `as_of` (a SIP that may yet be called after an early discharge)
    is not held against the region; one done late is."""
    if stay.outpatient_care_unavailable is not None:
        return OUTPATIENT_UNAVAILABLE
    notice = [d for d in deadlines(stay, model.clock) if d.duty == ADMISSION_NOTICE]
    if not notice or notice[0].missed(as_of):
        return NOTICE_MISSED
    # The last SIP deadline is the one set by the ready notice in force (a stay with no
    # notice in force is not counted): a withdrawn notice's deadline is not this period's.
    sip = sip_call_deadlines(stay, model.clock)
    if stay.needs_both_principals and (not sip or sip[-1].missed(as_of)):
        return SIP_MISSED
    return None


def monthly_report(
    stays: Iterable[Stay],
    municipality: str,
    year: int,
    month: int,
    model: PaymentModel,
    *,
    as_of: datetime,
) -> MonthlyReport:
    """The municipality's month, as it stands at `as_of`: the people it was notified of and
    who were discharged in it."""
    amount = model.daily_amount(year)
    lines = tuple(
        line_for(stay, model, as_of)
        for stay in stays
        if stay.discharged is not None
        and stay.municipality == municipality
        and _month_of(stay, model) == (year, month)
    )
    averaged = [line for line in lines if line.counted == AVERAGE]
    people, days = len(averaged), sum(line.days for line in averaged)
    over = Decimal(days) - model.average_over_days * people
    average_payable = over if people and over > 0 else Decimal(0)
    priced = tuple(_priced(line, amount) if line.counted == INDIVIDUAL else line for line in lines)
    individual_days = sum(line.payable_days for line in priced)
    return MonthlyReport(
        municipality=municipality,
        year=year,
        month=month,
        daily_amount=amount,
        lines=priced,
        people_in_average=people,
        days_in_average=days,
        average=(Decimal(days) / people).quantize(ORE) if people else None,
        average_payable_days=average_payable,
        average_amount=(average_payable * amount).quantize(ORE, ROUND_HALF_UP),
        individual_payable_days=individual_days,
        individual_amount=sum((line.amount for line in priced), Decimal(0)),
    )


def _priced(line: Line, amount: Decimal) -> Line:
    return Line(
        line.stay_id, line.ready_on, line.discharged_on, line.days, line.counted, line.reason,
        line.payable_days, (line.payable_days * amount).quantize(ORE, ROUND_HALF_UP),
    )  # fmt: skip


def _month_of(stay: Stay, model: PaymentModel) -> tuple[int, int]:
    assert stay.discharged is not None
    day = stay.discharged.at.astimezone(model.clock.zone).date()
    return day.year, day.month
