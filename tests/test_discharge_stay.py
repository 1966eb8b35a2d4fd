"""The stay aggregate (LSU 2017:612): a whole stay, each rule refusing, nothing made on refusal,
and a replay from the stored events giving the same stay."""

from copy import deepcopy
from datetime import datetime, timedelta

import pytest

from services.common.domain import InvalidCommand, RuleViolation
from services.sip.discharge.stay import Stay
from tests.discharge_data import (
    ALE,
    ALE_SOCIAL,
    CONSENT,
    HEALTH,
    HOSPITAL,
    JUDGEMENT,
    KUNGALV,
    KUNGALV_SOCIAL,
    NURSE_VC,
    OUTSIDER,
    PERSON,
    PHYSICIAN,
    SOCIAL,
    WARD,
    actor,
    admitted,
    local,
    noticed,
    recipients,
)

ADMITTED = local("2026-03-02", "08:00")


def refused(rule: str, command, *args, **kwargs) -> RuleViolation:
    with pytest.raises(RuleViolation) as raised:
        command(*args, **kwargs)
    assert raised.value.rule == rule, raised.value.message
    return raised.value


def test_a_whole_stay_records_who_from_which_unit_when_and_on_what_basis():
    stay = noticed(ADMITTED)
    stay.confirm_receipt(at=ADMITTED + timedelta(hours=3), by=NURSE_VC)
    stay.confirm_receipt(at=ADMITTED + timedelta(hours=5), by=SOCIAL)
    stay.name_care_contact(
        name="Sköterska Svensson", already_existed=False, legal_basis=CONSENT,
        at=ADMITTED + timedelta(hours=6), by=NURSE_VC,
    )  # fmt: skip
    ready_at = local("2026-03-05", "09:00")
    stay.notify_ready(legal_basis=CONSENT, at=ready_at, by=PHYSICIAN)
    stay.call_sip(plan_id="plan-7", legal_basis=JUDGEMENT, at=ready_at + timedelta(days=1),
                  by=NURSE_VC)  # fmt: skip
    stay.transfer_information(legal_basis=CONSENT, at=local("2026-03-07", "09:00"), by=PHYSICIAN)
    stay.discharge(at=local("2026-03-07", "11:00"), by=PHYSICIAN)

    assert stay.status == "discharged"
    assert stay.organization == HOSPITAL and stay.ward == WARD and stay.subject == PERSON
    assert stay.care_needed == ("municipality", "region") and stay.needs_both_principals
    assert stay.municipality == ALE and stay.primary_care.unit == "SE2321000131-P1-VC"
    assert all(r.received is not None for r in stay.recipients.values())
    assert stay.recipients[ALE_SOCIAL].received.by["unit"] == ALE_SOCIAL
    assert stay.care_contact.name == "Sköterska Svensson"
    assert stay.sip_plan_id == "plan-7"
    assert stay.sip_called.legal_basis == JUDGEMENT
    assert stay.admission_notice.legal_basis == CONSENT
    assert stay.ready_periods[0].notified.at == ready_at
    assert stay.concerns(ALE) and stay.concerns(HOSPITAL) and not stay.concerns(OUTSIDER)
    events = stay.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Admitted", "CareNeedJudged", "AdmissionNoticeSent", "ReceiptConfirmed",
        "ReceiptConfirmed", "CareContactNamed", "ReadyNotified", "SipCalled",
        "InformationTransferred", "Discharged",
    ]  # fmt: skip
    replayed = None
    for stored in events:
        replayed = stored.mutate(replayed)
    assert replayed.__dict__ == stay.__dict__


def test_a_refused_command_makes_no_event_and_changes_nothing():
    stay = noticed(ADMITTED)
    stay.collect_events()
    before = deepcopy(stay.__dict__)
    refused("by-the-hospital", stay.notify_ready, legal_basis=CONSENT,
            at=ADMITTED + timedelta(days=1), by=NURSE_VC)  # fmt: skip
    with pytest.raises(InvalidCommand):
        stay.notify_ready(legal_basis=None, at=ADMITTED + timedelta(days=1), by=PHYSICIAN)
    assert stay.collect_events() == [] and stay.__dict__ == before


def test_admission_names_a_person_a_ward_a_time_and_an_actor_of_the_hospital():
    with pytest.raises(InvalidCommand) as raised:
        Stay.admit(subject={"system": "x"}, ward=WARD, admitted_at=ADMITTED, by=PHYSICIAN)
    assert raised.value.element == "subject.value"
    with pytest.raises(InvalidCommand):
        Stay.admit(subject=PERSON, ward=" ", admitted_at=ADMITTED, by=PHYSICIAN)
    with pytest.raises(InvalidCommand):
        Stay.admit(subject=PERSON, ward=WARD, admitted_at="2026-03-02", by=PHYSICIAN)
    with pytest.raises(InvalidCommand) as raised:
        Stay.admit(subject=PERSON, ward=WARD, admitted_at=ADMITTED, by=actor(HOSPITAL, None))
    assert raised.value.element == "by.unit"
    with pytest.raises(RuleViolation):
        Stay(subject=PERSON, organization=HOSPITAL, ward=WARD, admitted_at=ADMITTED, by=SOCIAL)


def test_nothing_is_dated_before_admission_and_nothing_follows_discharge():
    stay = admitted(ADMITTED)
    refused("after-admission", stay.judge_care_needed, principals=["region"],
            at=ADMITTED - timedelta(minutes=1), by=PHYSICIAN)  # fmt: skip
    refused("after-admission", stay.discharge, at=ADMITTED - timedelta(days=1), by=PHYSICIAN)
    stay.discharge(at=ADMITTED + timedelta(days=1), by=PHYSICIAN)
    refused("discharged-stay-unchanged", stay.judge_care_needed, principals=["region"],
            at=ADMITTED + timedelta(days=2), by=PHYSICIAN)  # fmt: skip
    refused("discharged-stay-unchanged", stay.discharge, at=ADMITTED + timedelta(days=2),
            by=PHYSICIAN)  # fmt: skip


def test_a_ready_notice_needs_the_admission_notice_and_not_after_discharge():
    stay = admitted(ADMITTED)
    refused("after-admission-notice", stay.notify_ready, legal_basis=CONSENT,
            at=ADMITTED + timedelta(days=1), by=PHYSICIAN)  # fmt: skip
    stay = noticed(ADMITTED)
    stay.discharge(at=ADMITTED + timedelta(days=1), by=PHYSICIAN)
    refused("discharged-stay-unchanged", stay.notify_ready, legal_basis=CONSENT,
            at=ADMITTED + timedelta(days=2), by=PHYSICIAN)  # fmt: skip


def test_the_notice_follows_the_judgement_goes_once_and_reaches_every_principal_needed():
    stay = admitted(ADMITTED)
    notice = {
        "recipients": recipients(),
        "estimated_discharge": ADMITTED + timedelta(days=3),
        "legal_basis": CONSENT,
        "at": ADMITTED + timedelta(hours=1),
        "by": PHYSICIAN,
    }
    refused("notice-after-judgement", stay.send_admission_notice, **notice)
    stay.judge_care_needed(principals=["region", "municipality"], at=ADMITTED, by=PHYSICIAN)
    refused("care-need-judged-once", stay.judge_care_needed, principals=["region"],
            at=ADMITTED, by=PHYSICIAN)  # fmt: skip
    refused("notice-to-units-concerned", stay.send_admission_notice,
            **notice | {"recipients": recipients()[:1]})  # fmt: skip
    for bad in (
        [],
        [{"organization": ALE, "unit": ALE_SOCIAL, "kind": "hospital"}],
        [*recipients(), {"organization": KUNGALV, "unit": KUNGALV_SOCIAL, "kind": "home-care"}],
        [*recipients(), recipients()[0]],
        [*recipients(), {**recipients()[1], "organization": KUNGALV, "unit": KUNGALV_SOCIAL}],
    ):
        with pytest.raises(InvalidCommand):
            stay.send_admission_notice(**notice | {"recipients": bad})
    with pytest.raises(InvalidCommand) as raised:
        stay.send_admission_notice(**notice | {"estimated_discharge": ADMITTED - timedelta(days=1)})
    assert raised.value.element == "estimated_discharge"
    stay.send_admission_notice(**notice)
    refused("admission-notice-sent-once", stay.send_admission_notice, **notice)


def test_each_disclosing_step_names_a_legal_basis():
    stay = admitted(ADMITTED)
    stay.judge_care_needed(principals=["municipality"], at=ADMITTED, by=PHYSICIAN)
    notice = {"recipients": recipients()[1:], "estimated_discharge": ADMITTED + timedelta(days=3),
              "at": ADMITTED, "by": PHYSICIAN}  # fmt: skip
    for basis, element in (
        (None, "legal_basis"),
        ({"basis": "consent", "consents": []}, "legal_basis.consents"),
        ({"basis": "secrecy-judgement", "judgement": ""}, "legal_basis.judgement"),
        ({"basis": "because"}, "legal_basis.basis"),
    ):
        with pytest.raises(InvalidCommand) as raised:
            stay.send_admission_notice(**notice, legal_basis=basis)
        assert raised.value.element == element
    stay.send_admission_notice(**notice, legal_basis=JUDGEMENT)
    assert stay.admission_notice.legal_basis == JUDGEMENT


def test_only_a_unit_the_notice_went_to_confirms_receipt_and_only_once():
    stay = noticed(ADMITTED)
    later = ADMITTED + timedelta(hours=3)
    refused("receipt-by-recipient", stay.confirm_receipt, at=later, by=HEALTH)  # not notified
    refused(
        "receipt-by-recipient", stay.confirm_receipt, at=later, by=actor(OUTSIDER, ALE_SOCIAL)
    )  # fmt: skip  (another organisation naming Ale's unit)
    refused("steps-in-time-order", stay.confirm_receipt, at=ADMITTED, by=SOCIAL)
    stay.confirm_receipt(at=later, by=SOCIAL)
    refused("receipt-once", stay.confirm_receipt, at=later, by=SOCIAL)


def test_the_care_contact_is_named_by_the_primary_care_notified_and_calls_the_sip():
    stay = noticed(ADMITTED)
    later = ADMITTED + timedelta(hours=4)
    contact = {"name": "Svensson", "already_existed": True, "legal_basis": CONSENT, "at": later}
    refused("care-contact-by-primary-care", stay.name_care_contact, **contact, by=SOCIAL)
    refused("sip-called-by-care-contact", stay.call_sip, plan_id="p", legal_basis=CONSENT,
            at=later, by=NURSE_VC)  # fmt: skip
    stay.name_care_contact(**contact, by=NURSE_VC)
    refused("care-contact-named-once", stay.name_care_contact, **contact, by=NURSE_VC)
    refused("sip-called-by-care-contact", stay.call_sip, plan_id="p", legal_basis=CONSENT,
            at=later, by=SOCIAL)  # fmt: skip
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=later, by=NURSE_VC)
    refused("sip-called-once", stay.call_sip, plan_id="q", legal_basis=CONSENT, at=later,
            by=NURSE_VC)  # fmt: skip


def test_no_sip_is_called_when_only_one_principal_is_needed():
    stay = noticed(ADMITTED, principals=("region",))
    stay.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT,
                           at=ADMITTED + timedelta(hours=4), by=NURSE_VC)  # fmt: skip
    refused("sip-needs-both-principals", stay.call_sip, plan_id="p", legal_basis=CONSENT,
            at=ADMITTED + timedelta(hours=5), by=NURSE_VC)  # fmt: skip


def test_a_ready_notice_is_withdrawn_only_while_in_force_and_may_be_given_again():
    stay = noticed(ADMITTED)
    first, withdrawn, again = (ADMITTED + timedelta(days=d) for d in (2, 3, 5))
    refused("withdraw-when-ready", stay.withdraw_ready, reason="fever", legal_basis=CONSENT,
            at=first, by=PHYSICIAN)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=first, by=PHYSICIAN)
    refused("ready-once", stay.notify_ready, legal_basis=CONSENT, at=first, by=PHYSICIAN)
    with pytest.raises(InvalidCommand):
        stay.withdraw_ready(reason="", legal_basis=CONSENT, at=withdrawn, by=PHYSICIAN)
    refused("steps-in-time-order", stay.withdraw_ready, reason="fever", legal_basis=CONSENT,
            at=first - timedelta(hours=1), by=PHYSICIAN)  # fmt: skip
    stay.withdraw_ready(reason="fever", legal_basis=CONSENT, at=withdrawn, by=PHYSICIAN)
    assert stay.ready is None and stay.status == "admitted"
    refused("steps-in-time-order", stay.notify_ready, legal_basis=CONSENT,
            at=withdrawn - timedelta(hours=1), by=PHYSICIAN)  # fmt: skip
    stay.notify_ready(legal_basis=CONSENT, at=again, by=PHYSICIAN)
    assert stay.status == "ready" and len(stay.ready_periods) == 2
    assert stay.ready_periods[0].withdrawal_reason == "fever"
    refused("steps-in-time-order", stay.discharge, at=again - timedelta(hours=1), by=PHYSICIAN)


def test_outpatient_care_unavailable_is_the_regions_to_record():
    stay = noticed(ADMITTED)
    later = ADMITTED + timedelta(days=1)
    refused("outpatient-unavailable-by-region", stay.record_outpatient_care_unavailable,
            reason="no home care nurse", at=later, by=SOCIAL)  # fmt: skip
    stay.record_outpatient_care_unavailable(reason="no district nurse", at=later, by=NURSE_VC)
    refused("outpatient-unavailable-once", stay.record_outpatient_care_unavailable,
            reason="again", at=later, by=PHYSICIAN)  # fmt: skip
    assert stay.outpatient_care_unavailable_reason == "no district nurse"


def test_information_is_transferred_by_the_ward_after_the_notice():
    stay = admitted(ADMITTED)
    refused("after-admission-notice", stay.transfer_information, legal_basis=CONSENT,
            at=ADMITTED, by=PHYSICIAN)  # fmt: skip
    stay = noticed(ADMITTED)
    refused("by-the-hospital", stay.transfer_information, legal_basis=CONSENT, at=ADMITTED,
            by=SOCIAL)  # fmt: skip
    stay.transfer_information(legal_basis=CONSENT, at=ADMITTED + timedelta(hours=3), by=PHYSICIAN)
    stay.transfer_information(legal_basis=CONSENT, at=ADMITTED + timedelta(hours=4), by=PHYSICIAN)
    assert len(stay.information_transfers) == 2


def test_the_duties_that_outlive_the_stay_are_still_recorded_after_discharge():
    """The SIP meeting may be called, and a late information transfer recorded, after the person
    went home; the ward's own steps end with the discharge."""
    stay = noticed(ADMITTED)
    stay.notify_ready(legal_basis=CONSENT, at=ADMITTED + timedelta(days=1), by=PHYSICIAN)
    stay.discharge(at=ADMITTED + timedelta(days=1, hours=2), by=PHYSICIAN)
    later = ADMITTED + timedelta(days=2)
    stay.confirm_receipt(at=later, by=NURSE_VC)
    stay.name_care_contact(name="S", already_existed=True, legal_basis=CONSENT, at=later,
                           by=NURSE_VC)  # fmt: skip
    stay.call_sip(plan_id="p", legal_basis=CONSENT, at=later, by=NURSE_VC)
    stay.transfer_information(legal_basis=CONSENT, at=later, by=PHYSICIAN)
    refused("discharged-stay-unchanged", stay.withdraw_ready, reason="r", legal_basis=CONSENT,
            at=later, by=PHYSICIAN)  # fmt: skip
    refused("discharged-stay-unchanged", stay.record_outpatient_care_unavailable, reason="r",
            at=later, by=PHYSICIAN)  # fmt: skip
    assert stay.status == "discharged" and stay.sip_plan_id == "p"


def test_a_time_without_a_time_zone_is_refused_naming_the_element_not_a_crash():
    """Steps are compared with each other and counted in Swedish days: a naive time can be
    neither (comparing it with an aware one would raise TypeError, a 500 at the API)."""
    naive = datetime(2026, 3, 2, 9, 0)
    with pytest.raises(InvalidCommand) as raised:
        Stay.admit(subject=PERSON, ward=WARD, admitted_at=naive, by=PHYSICIAN)
    assert raised.value.element == "admitted_at"
    stay = admitted(ADMITTED)
    with pytest.raises(InvalidCommand) as raised:
        stay.judge_care_needed(principals=["region"], at=naive, by=PHYSICIAN)
    assert raised.value.element == "at"
    stay.judge_care_needed(principals=["municipality"], at=ADMITTED, by=PHYSICIAN)
    with pytest.raises(InvalidCommand) as raised:
        stay.send_admission_notice(recipients=recipients()[1:], estimated_discharge=naive,
                                   legal_basis=CONSENT, at=ADMITTED, by=PHYSICIAN)  # fmt: skip
    assert raised.value.element == "estimated_discharge"


def test_values_of_the_wrong_kind_are_refused_naming_the_element():
    stay = admitted(ADMITTED)
    for principals in (None, [], ["county"], [{"x": 1}]):
        with pytest.raises(InvalidCommand):
            stay.judge_care_needed(principals=principals, at=ADMITTED, by=PHYSICIAN)
    for by in (None, "doctor", {"organization": HOSPITAL, "unit": 7}):
        with pytest.raises(InvalidCommand):
            stay.judge_care_needed(principals=["region"], at=ADMITTED, by=by)
    stay = noticed(ADMITTED)
    stay.name_care_contact(name="S", already_existed=False, legal_basis=CONSENT, at=ADMITTED
                           + timedelta(hours=4), by=NURSE_VC)  # fmt: skip
    with pytest.raises(InvalidCommand) as raised:
        stay.call_sip(plan_id=None, legal_basis=CONSENT, at=ADMITTED + timedelta(hours=5),
                      by=NURSE_VC)  # fmt: skip
    assert raised.value.element == "plan_id"
    with pytest.raises(InvalidCommand) as raised:
        stay.call_sip(plan_id="p", legal_basis={"basis": "consent", "consents": [None]},
                      at=ADMITTED + timedelta(hours=5), by=NURSE_VC)  # fmt: skip
    assert raised.value.element == "legal_basis.consents"
    assert stay.collect_events()[-1].__class__.__name__ == "CareContactNamed"
