"""The stay's legal clock: each deadline met on the minute, missed a minute later, and the
organisation that missed it; the clock stopped by a withdrawn ready notice; the discharge day
as the Swedish calendar has it."""

from datetime import UTC, datetime, timedelta

from services.sip.discharge.clock import (
    ADMISSION_NOTICE,
    INFORMATION_TRANSFER,
    LATE,
    MET,
    OPEN,
    OVERDUE,
    SIP_CALL,
    ClockRules,
    deadlines,
    missed,
)
from tests.discharge_data import (
    CONSENT,
    HOSPITAL,
    NURSE_VC,
    PHYSICIAN,
    PRIMARY_CARE_ORG,
    admitted,
    local,
    noticed,
    recipients,
)

ADMITTED = local("2026-03-02", "08:00")  # a Monday
MINUTE = timedelta(minutes=1)


def of(stay, duty):
    return [d for d in deadlines(stay) if d.duty == duty]


def test_the_admission_notice_is_due_24_hours_after_admission_and_missed_by_the_hospital():
    stay = admitted(ADMITTED)
    assert deadlines(stay) == []  # no judgement that care is needed: no notice owed
    stay.judge_care_needed(principals=["municipality"], at=ADMITTED, by=PHYSICIAN)
    (notice,) = of(stay, ADMISSION_NOTICE)
    assert notice.due == local("2026-03-03", "08:00") and notice.owner == HOSPITAL
    assert notice.state(notice.due) == OPEN and notice.time_left(ADMITTED) == timedelta(hours=24)
    assert notice.state(notice.due + MINUTE) == OVERDUE
    assert missed(stay, notice.due + MINUTE) == [notice] and missed(stay, notice.due) == []

    on_time, late = (noticed(ADMITTED, ("municipality",), notice_after=after)
                     for after in (timedelta(hours=24), timedelta(hours=24) + MINUTE))  # fmt: skip
    assert of(on_time, ADMISSION_NOTICE)[0].state(local("2026-04-01")) == MET
    (late_notice,) = of(late, ADMISSION_NOTICE)
    assert late_notice.state(local("2026-04-01")) == LATE
    assert [d.owner for d in missed(late, local("2026-04-01"))] == [HOSPITAL]


def test_a_later_judgement_starts_the_24_hours_from_itself():
    """Admitted Monday 08:00, judged Wednesday 14:00: the notice is due Thursday 14:00, so one
    sent Thursday 10:00 (50 hours after admission) is on time."""
    stay = admitted(ADMITTED)
    stay.judge_care_needed(principals=["municipality"], at=local("2026-03-04", "14:00"),
                           by=PHYSICIAN)  # fmt: skip
    stay.send_admission_notice(recipients=recipients()[1:], estimated_discharge=ADMITTED,
                               legal_basis=CONSENT, at=local("2026-03-05", "10:00"),
                               by=PHYSICIAN)  # fmt: skip
    (notice,) = of(stay, ADMISSION_NOTICE)
    assert notice.due == local("2026-03-05", "14:00") and notice.state(notice.due) == MET


def ready_stay(ready_at, principals=("region", "municipality")):
    stay = noticed(ADMITTED, principals)
    stay.name_care_contact(name="Svensson", already_existed=False, legal_basis=CONSENT,
                           at=ADMITTED + timedelta(hours=5), by=NURSE_VC)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=ready_at, by=PHYSICIAN)
    return stay


def test_the_sip_call_is_due_3_days_after_the_ready_notice_and_missed_by_primary_care():
    ready_at = local("2026-03-05", "09:00")  # Thursday: due Sunday 09:00
    on_time, late, never = (ready_stay(ready_at) for _ in range(3))
    on_time.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-08", "09:00"),
                     by=NURSE_VC)  # fmt: skip
    late.call_sip(plan_id="p", legal_basis=CONSENT, at=local("2026-03-08", "09:01"), by=NURSE_VC)
    (due,) = of(never, SIP_CALL)
    assert due.due == local("2026-03-08", "09:00") and due.owner == PRIMARY_CARE_ORG
    assert of(on_time, SIP_CALL)[0].state(local("2026-04-01")) == MET
    assert of(late, SIP_CALL)[0].state(local("2026-04-01")) == LATE
    assert due.state(local("2026-03-08", "09:00")) == OPEN
    assert [(d.duty, d.owner) for d in missed(never, local("2026-03-08", "09:01"))] == [
        (SIP_CALL, PRIMARY_CARE_ORG)
    ]


def test_no_sip_deadline_when_only_one_principal_is_needed():
    stay = ready_stay(local("2026-03-05"), principals=("region",))
    assert of(stay, SIP_CALL) == []


def test_a_withdrawn_ready_notice_stops_the_clock_and_a_new_one_starts_it_again():
    """Ready Tuesday 09:00 (due Friday 09:00), withdrawn Wednesday: no deadline from it. Ready
    again Friday 12:00: due Monday 12:00. A withdrawal after the due date stops nothing."""
    stay = ready_stay(local("2026-03-03", "09:00"))
    stay.withdraw_ready(reason="fever", legal_basis=CONSENT, at=local("2026-03-04"), by=PHYSICIAN)
    assert of(stay, SIP_CALL) == []
    assert missed(stay, local("2026-03-20")) == []
    stay.notify_ready(legal_basis=CONSENT, at=local("2026-03-06", "12:00"), by=PHYSICIAN)
    (due,) = of(stay, SIP_CALL)
    assert (
        due.due == local("2026-03-09", "12:00")
        and due.state(local("2026-03-09", "12:01")) == OVERDUE
    )

    overran = ready_stay(local("2026-03-03", "09:00"))
    overran.withdraw_ready(reason="fever", legal_basis=CONSENT, at=local("2026-03-07"),
                           by=PHYSICIAN)  # fmt: skip
    (due,) = of(overran, SIP_CALL)
    assert due.due == local("2026-03-06", "09:00") and due.missed(local("2026-03-07"))


def test_information_is_due_by_the_end_of_the_swedish_discharge_day():
    """Discharged 2026-03-06 23:30 UTC, which is 00:30 on 7 March in Sweden: the transfer is due
    before midnight ending 7 March, Swedish time."""
    stay = noticed(ADMITTED, ("municipality",))
    (provisional,) = of(stay, INFORMATION_TRANSFER)
    assert provisional.provisional and provisional.due == local("2026-03-08", "00:00")
    assert provisional.state(local("2026-05-01")) == OPEN  # the real day has not come
    stay.discharge(at=datetime(2026, 3, 6, 23, 30, tzinfo=UTC), by=PHYSICIAN)
    (due,) = of(stay, INFORMATION_TRANSFER)
    assert due.due == local("2026-03-08", "00:00") and not due.provisional
    assert due.state(local("2026-03-07", "23:59")) == OPEN
    assert [(d.duty, d.owner) for d in missed(stay, local("2026-03-08", "00:01"))] == [
        (INFORMATION_TRANSFER, HOSPITAL)
    ]
    stay.transfer_information(legal_basis=CONSENT, at=local("2026-03-08", "08:00"), by=PHYSICIAN)
    assert of(stay, INFORMATION_TRANSFER)[0].state(local("2026-03-09")) == LATE


def test_information_transferred_on_the_day_of_discharge_is_on_time():
    stay = noticed(ADMITTED, ("municipality",))
    stay.transfer_information(legal_basis=CONSENT, at=local("2026-03-06", "09:00"), by=PHYSICIAN)
    stay.discharge(at=local("2026-03-06", "15:00"), by=PHYSICIAN)
    assert [d.state(local("2026-04-01")) for d in deadlines(stay)] == [MET, MET]


def test_the_periods_are_configuration():
    stay = ready_stay(local("2026-03-05", "09:00"))
    rules = ClockRules(
        sip_call_within=timedelta(days=2), admission_notice_within=timedelta(hours=1)
    )
    notice, sip, _ = deadlines(stay, rules)
    assert notice.due == ADMITTED + timedelta(hours=1) and notice.state(ADMITTED) == LATE
    assert sip.due == local("2026-03-07", "09:00")
