"""Who pays for waiting days: each example worked by hand from seed 002, 5.1–5.2, in its
docstring, then computed by the model from real stays.

The daily amount is the government's each year; the tests configure a figure of their own
(8 000 kr for 2026, 8 500 kr for 2027), not a real one. Dates are Swedish; the day of the ready
notice is day 0 (see services/sip/discharge/payment.py)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.sip.discharge.payment import (
    AVERAGE,
    EXCLUDED,
    INDIVIDUAL,
    NO_READY_NOTICE,
    NOTICE_MISSED,
    OUTPATIENT_UNAVAILABLE,
    SIP_MISSED,
    DailyAmountMissing,
    PaymentModel,
    monthly_report,
)
from tests.discharge_data import (
    ALE,
    CONSENT,
    KUNGALV,
    KUNGALV_SOCIAL,
    NURSE_VC,
    PHYSICIAN,
    SOCIAL,
    local,
    noticed,
    waited,
)

MODEL = PaymentModel(daily_amounts={2026: Decimal("8000"), 2027: Decimal("8500")})
AFTER = local("2027-06-01")  # reports made once every deadline has run out


def report(stays, year=2026, month=3, model=MODEL, municipality=ALE, as_of=AFTER):
    return monthly_report(stays, municipality, year, month, model, as_of=as_of)


def test_an_average_over_3_0_is_paid_as_the_difference_times_people_times_the_amount():
    """Ale, March 2026, four people, the region did its part for each:
      ready 2 Mar 14:00, discharged 5 Mar 09:00: 5 − 2 = 3 days
      ready 3 Mar,       discharged 9 Mar:       6 days
      ready 10 Mar 09:00, discharged 10 Mar 15:00: 0 days
      ready 16 Mar,      discharged 21 Mar:      5 days
    Average (3 + 6 + 0 + 5) / 4 = 14 / 4 = 3.5 > 3.0.
    Pays (3.5 − 3.0) × 4 people × 8 000 kr = 0.5 × 4 × 8 000 = 16 000 kr."""
    stays = [
        waited(local("2026-03-02", "14:00"), local("2026-03-05", "09:00")),
        waited(local("2026-03-03"), local("2026-03-09")),
        waited(local("2026-03-10", "09:00"), local("2026-03-10", "15:00")),
        waited(local("2026-03-16"), local("2026-03-21")),
    ]
    month = report(stays)
    assert [line.days for line in month.lines] == [3, 6, 0, 5]
    assert {line.counted for line in month.lines} == {AVERAGE}
    assert (month.people_in_average, month.days_in_average) == (4, 14)
    assert month.average == Decimal("3.50")
    assert month.average_payable_days == Decimal("2.0")
    assert month.average_amount == Decimal("16000.00") and month.total == Decimal("16000.00")


def test_an_average_of_exactly_3_0_pays_nothing():
    """Three people waiting 2, 3 and 4 days: average 9 / 3 = 3.0, which does not exceed 3.0:
    0 kr. One more day for one of them (2, 3, 5): 10 / 3 = 3.33 > 3.0, pays
    (10/3 − 3) × 3 × 8 000 = (10 − 9) × 8 000 = 8 000 kr."""
    exact = [waited(local("2026-03-02"), local(f"2026-03-{2 + d:02}")) for d in (2, 3, 4)]
    month = report(exact)
    assert month.average == Decimal("3.00") and month.total == 0
    over = [waited(local("2026-03-02"), local(f"2026-03-{2 + d:02}")) for d in (2, 3, 5)]
    month = report(over)
    assert month.average == Decimal("3.33") and month.total == Decimal("8000.00")


def test_day_7_stays_in_the_average_and_day_8_is_counted_alone_from_day_4():
    """Ale, March 2026:
      A ready 2 Mar, discharged 9 Mar:  7 days, not more than 7: in the average
      B ready 2 Mar, discharged 10 Mar: 8 days, more than 7: alone, pays days 4..8 =
        8 − 3 = 5 days × 8 000 = 40 000 kr; not in the average
      C ready 11 Mar, discharged 12 Mar: 1 day: in the average
    Average (7 + 1) / 2 = 4.0 > 3.0: (4.0 − 3.0) × 2 × 8 000 = 16 000 kr.
    Total 40 000 + 16 000 = 56 000 kr. (Had B stayed in the average: 16 / 3 = 5.33.)"""
    a = waited(local("2026-03-02"), local("2026-03-09"))
    b = waited(local("2026-03-02"), local("2026-03-10"))
    c = waited(local("2026-03-11"), local("2026-03-12"))
    month = report([a, b, c])
    lines = {line.stay_id: line for line in month.lines}
    assert (lines[str(a.id)].days, lines[str(a.id)].counted) == (7, AVERAGE)
    assert (lines[str(b.id)].days, lines[str(b.id)].counted) == (8, INDIVIDUAL)
    assert lines[str(b.id)].payable_days == 5 and lines[str(b.id)].amount == Decimal("40000.00")
    assert (month.people_in_average, month.days_in_average, month.average) == (
        2,
        8,
        Decimal("4.00"),
    )
    assert month.average_amount == Decimal("16000.00")
    assert month.individual_amount == Decimal("40000.00") and month.total == Decimal("56000.00")


def withdrawn_and_ready_again():
    """Ready 2 Mar, no longer ready 4 Mar, ready again 9 Mar 10:00, discharged 11 Mar."""
    stay = noticed(local("2026-02-27"))
    stay.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT,
                           at=local("2026-02-27", "12:00"), by=NURSE_VC)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-02"), by=PHYSICIAN)
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-03"), by=NURSE_VC)
    stay.withdraw_ready(reason="pneumonia", legal_basis=CONSENT, at=local("2026-03-04"),
                        by=PHYSICIAN)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-09", "10:00"), by=PHYSICIAN)
    stay.transfer_information(legal_basis=CONSENT, at=local("2026-03-11"), by=PHYSICIAN)
    stay.discharge(at=local("2026-03-11", "14:00"), by=PHYSICIAN)
    return stay


def test_a_withdrawn_ready_notice_counts_no_days():
    """W: ready 2 Mar, withdrawn 4 Mar (not ready after all), ready again 9 Mar, discharged
    11 Mar: counted from the notice in force, 11 − 9 = 2 days (not 11 − 2 = 9, which would be
    counted alone). The SIP called on 3 Mar was called before the new notice's deadline
    (12 Mar 10:00): on time. X: ready 16 Mar, discharged 21 Mar: 5 days.
    Average (2 + 5) / 2 = 3.5: (3.5 − 3.0) × 2 × 8 000 = 8 000 kr.
    V: ready 2 Mar, withdrawn 3 Mar, discharged 6 Mar with no notice in force: not counted."""
    w = withdrawn_and_ready_again()
    x = waited(local("2026-03-16"), local("2026-03-21"))
    v = noticed(local("2026-02-27"))
    v.notify_ready(legal_basis=CONSENT, at=local("2026-03-02"), by=PHYSICIAN)
    v.withdraw_ready(reason="fall", legal_basis=CONSENT, at=local("2026-03-03"), by=PHYSICIAN)
    v.discharge(at=local("2026-03-06"), by=PHYSICIAN)
    month = report([w, x, v])
    assert [(line.days, line.counted, line.reason) for line in month.lines] == [
        (2, AVERAGE, None),
        (5, AVERAGE, None),
        (0, EXCLUDED, NO_READY_NOTICE),
    ]
    assert month.average == Decimal("3.50") and month.total == Decimal("8000.00")


def test_a_person_counts_in_the_month_of_discharge_by_the_swedish_calendar():
    """M: ready 29 Mar 2026 (the night clocks go forward), discharged 2 Apr: 4 days, counted in
    April, not in March. N: ready 29 Mar 20:00, discharged 31 Mar 22:30 UTC, which is 1 Apr
    00:30 in Sweden: April, 1 Apr − 29 Mar = 3 days (by the UTC date it would be March, 2 days).
    April: (4 + 3) / 2 = 3.5: (3.5 − 3.0) × 2 × 8 000 = 8 000 kr; March: nobody, 0 kr.
    Y: ready 28 Dec 2026, discharged 5 Jan 2027: 8 days, alone in January 2027 at 2027's
    amount: (8 − 3) × 8 500 = 42 500 kr."""
    m = waited(local("2026-03-29"), local("2026-04-02"))
    n = waited(local("2026-03-29", "20:00"), datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    march, april = report([m, n]), report([m, n], month=4)
    assert march.lines == () and march.average is None and march.total == 0
    assert [line.days for line in april.lines] == [4, 3]
    assert april.total == Decimal("8000.00")
    y = waited(local("2026-12-28"), local("2027-01-05"))
    january = report([y], year=2027, month=1)
    assert january.daily_amount == Decimal("8500")
    assert january.lines[0].days == 8 and january.total == Decimal("42500.00")
    assert report([y], year=2026, month=12).lines == ()


def late_notice(ready_at, discharged_at):
    """Admitted 4 days before ready; the notice sent 25 hours after admission (due at 24)."""
    stay = noticed(ready_at - timedelta(days=4), notice_after=timedelta(hours=25))
    stay.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT,
                           at=ready_at - timedelta(days=2), by=NURSE_VC)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=ready_at, by=PHYSICIAN)
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=ready_at, by=NURSE_VC)
    stay.discharge(at=discharged_at, by=PHYSICIAN)
    return stay


def test_nothing_is_paid_for_a_person_where_the_region_did_not_do_its_part():
    """Ale, March 2026, each of the first three waited 10 days (alone they would cost
    (10 − 3) × 8 000 = 56 000 kr each):
      late notice (25 h after admission): excluded
      SIP called 3 days and 1 minute after the ready notice: excluded
      outpatient care not available: excluded
      a fourth person, 4 days, region did its part: average 4 / 1 = 4.0:
        (4.0 − 3.0) × 1 × 8 000 = 8 000 kr
    Kungälv's person is not in Ale's report. Total 8 000 kr."""
    notice = late_notice(local("2026-03-02"), local("2026-03-12"))
    sip = waited(local("2026-03-02"), local("2026-03-12"), sip_after=timedelta(days=3, minutes=1))
    unavailable = noticed(local("2026-02-26"))
    unavailable.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT,
                                  at=local("2026-02-26", "12:00"), by=NURSE_VC)  # fmt: skip
    unavailable.notify_ready(legal_basis=CONSENT, at=local("2026-03-02"), by=PHYSICIAN)
    unavailable.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-02"), by=NURSE_VC)
    unavailable.record_outpatient_care_unavailable(reason="no district nurse",
                                                   at=local("2026-03-03"), by=NURSE_VC)  # fmt: skip
    unavailable.discharge(at=local("2026-03-12"), by=PHYSICIAN)
    fourth = waited(local("2026-03-16"), local("2026-03-20"))
    elsewhere = waited(local("2026-03-02"), local("2026-03-20"), municipality=KUNGALV,
                       social=KUNGALV_SOCIAL)  # fmt: skip
    month = report([notice, sip, unavailable, fourth, elsewhere])
    assert [(line.days, line.counted, line.reason) for line in month.lines] == [
        (10, EXCLUDED, NOTICE_MISSED),
        (10, EXCLUDED, SIP_MISSED),
        (10, EXCLUDED, OUTPATIENT_UNAVAILABLE),
        (4, AVERAGE, None),
    ]
    assert month.total == Decimal("8000.00")
    kungalv = report([notice, sip, unavailable, fourth, elsewhere], municipality=KUNGALV)
    assert [line.days for line in kungalv.lines] == [18]
    assert kungalv.total == Decimal("120000.00")  # (18 − 3) × 8 000, alone


def test_a_sip_still_due_after_an_early_discharge_is_not_held_against_the_region_yet():
    """Ready 2 Mar 09:00, discharged 4 Mar (2 days), no SIP called yet: its deadline is
    5 Mar 09:00. A report made on 4 Mar counts the person (2 / 1 = 2.0: 0 kr); one made after
    the deadline passed with no call excludes them."""
    stay = waited(local("2026-03-02", "09:00"), local("2026-03-04"), sip_after=None)
    early = report([stay], as_of=local("2026-03-04", "18:00"))
    assert early.lines[0].counted == AVERAGE and early.total == 0
    assert report([stay], as_of=local("2026-03-05", "09:01")).lines[0].reason == SIP_MISSED
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-05", "08:00"), by=NURSE_VC)
    assert report([stay]).lines[0].counted == AVERAGE


def test_the_rules_are_configuration():
    """Another county: average over 2.0, alone after 5 days from day 3, the notice's day as
    day 1. P: ready 2 Mar, discharged 4 Mar: 4 − 2 + 1 = 3 days, average 3 / 1 = 3.0 > 2.0:
    (3.0 − 2.0) × 1 × 1 000 = 1 000 kr. Q: ready 2 Mar, discharged 7 Mar: 6 days > 5: alone,
    6 − 2 = 4 days × 1 000 = 4 000 kr. Total 5 000 kr."""
    model = PaymentModel(
        average_over_days=Decimal("2.0"),
        individual_after_days=5,
        individual_pays_after_days=2,
        daily_amounts={2026: Decimal("1000")},
        count_ready_day=True,
    )
    p = waited(local("2026-03-02"), local("2026-03-04"))
    q = waited(local("2026-03-02"), local("2026-03-07"))
    month = report([p, q], model=model)
    assert [(line.days, line.counted) for line in month.lines] == [(3, AVERAGE), (6, INDIVIDUAL)]
    assert month.average_amount == Decimal("1000.00") and month.individual_amount == Decimal(
        "4000.00"
    )


def test_a_year_without_a_configured_daily_amount_is_refused_not_priced_at_zero():
    with pytest.raises(DailyAmountMissing) as raised:
        report([], year=2028, month=1)
    assert raised.value.year == 2028


def test_a_stay_not_yet_discharged_is_not_in_any_month():
    stay = noticed(local("2026-03-01"))
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-02"), by=PHYSICIAN)
    stay.confirm_receipt(at=local("2026-03-03"), by=SOCIAL)
    assert report([stay]).lines == ()


def test_only_the_sip_deadline_of_the_notice_in_force_decides():
    """Ready 2 Mar, no SIP by its deadline 5 Mar (missed, and shown so by the clock), no
    longer ready 6 Mar; ready again 9 Mar, SIP called 10 Mar (within 3 days of that notice),
    discharged 12 Mar: the days paid for are those after the notice in force, 12 − 9 = 3, and
    the region did its part for them: counted. Average 3 / 1 = 3.0: 0 kr. With a second person
    waiting 5 days: (3 + 5) / 2 = 4.0: (4.0 − 3.0) × 2 × 8 000 = 16 000 kr."""
    stay = noticed(local("2026-02-27"))
    stay.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT,
                           at=local("2026-02-27", "12:00"), by=NURSE_VC)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-02"), by=PHYSICIAN)
    stay.withdraw_ready(reason="fall", legal_basis=CONSENT, at=local("2026-03-06"), by=PHYSICIAN)
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-09"), by=PHYSICIAN)
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-10"), by=NURSE_VC)
    stay.discharge(at=local("2026-03-12"), by=PHYSICIAN)
    month = report([stay])
    assert [(line.days, line.counted) for line in month.lines] == [(3, AVERAGE)]
    assert month.total == 0
    other = waited(local("2026-03-16"), local("2026-03-21"))
    assert report([stay, other]).total == Decimal("16000.00")
