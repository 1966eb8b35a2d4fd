"""The stay's commands over the SIP service's event store: the legal basis asked of the consent
service (or a recorded secrecy judgement), the SIP call storing the draft plan and its link
together, refusals writing nothing, and plans and stays never mistaken for each other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from contracts.consent_decision import ConsentDecision
from services.common.domain import NotFound, RuleViolation, VersionMismatch
from services.common.persistence import storage_for
from services.sip.application import DisclosureNotPermitted, SipPlans
from services.sip.consent_gate import ConsentServiceUnavailable
from services.sip.discharge.application import Stays
from services.sip.discharge.stay import Stay
from services.sip.domain import Plan
from tests.discharge_data import (
    ALE,
    HOSPITAL,
    NURSE_VC,
    PERSON,
    PHYSICIAN,
    PRIMARY_CARE_ORG,
    SOCIAL,
    WARD,
    local,
    recipients,
)
from tests.fhir_data import started_by_region

ADMITTED = local("2026-03-02", "08:00")


class Gate:
    """A consent service permitting every disclosure except those listed, naming one consent."""

    def __init__(self) -> None:
        self.denied: set[tuple[str, str]] = set()  # (source, recipient)
        self.asked: list[Any] = []
        self.down = False

    def check(self, request: Any) -> ConsentDecision:
        if self.down:
            raise ConsentServiceUnavailable("timeout")
        self.asked.append(request)
        if (request.source, request.actor) in self.denied:
            return ConsentDecision(decision="deny", reason="no consent")
        return ConsentDecision(decision="permit", reason="permitted", consents=("Consent/c1",))


@pytest.fixture
def stays(backend: Any) -> Iterator[tuple[Stays, Gate]]:
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    gate = Gate()
    try:
        yield Stays(plans, gate), gate
    finally:
        plans.close()


def noticed(stays: Stays) -> Stay:
    stay = stays.admit(subject=PERSON, ward=WARD, admitted_at=ADMITTED, by=PHYSICIAN)
    stays.judge_care_needed(stay.id, principals=["region", "municipality"], at=ADMITTED,
                            by=PHYSICIAN)  # fmt: skip
    return stays.send_admission_notice(
        stay.id, recipients=recipients(), estimated_discharge=ADMITTED + timedelta(days=4),
        at=ADMITTED + timedelta(hours=1), by=PHYSICIAN,
    )  # fmt: skip


def stored_events(stays: Stays, aggregate_id) -> list[str]:
    return [type(e).__name__ for e in stays.plans.events.get(aggregate_id)]


def test_a_notice_on_consent_records_the_consents_the_consent_service_named(stays):
    stays, gate = stays
    stay = noticed(stays)
    assert stays.stay(stay.id).admission_notice.legal_basis == {
        "basis": "consent",
        "consents": ["Consent/c1"],
    }
    asked = {(r.source, r.actor, r.patient_value) for r in gate.asked}
    assert asked == {
        (HOSPITAL, PRIMARY_CARE_ORG, PERSON["value"]),
        (HOSPITAL, ALE, PERSON["value"]),
    }


def test_a_disclosure_no_consent_covers_is_refused_and_writes_nothing(stays):
    stays, gate = stays
    stay = stays.admit(subject=PERSON, ward=WARD, admitted_at=ADMITTED, by=PHYSICIAN)
    stays.judge_care_needed(stay.id, principals=["municipality"], at=ADMITTED, by=PHYSICIAN)
    gate.denied.add((HOSPITAL, ALE))
    notice = {"recipients": recipients()[1:], "estimated_discharge": ADMITTED,
              "at": ADMITTED, "by": PHYSICIAN}  # fmt: skip
    with pytest.raises(DisclosureNotPermitted) as raised:
        stays.send_admission_notice(stay.id, **notice)
    assert ALE in raised.value.message
    gate.down = True
    with pytest.raises(ConsentServiceUnavailable):
        stays.send_admission_notice(stay.id, **notice)
    assert stored_events(stays, stay.id) == ["Admitted", "CareNeedJudged"]
    # A recorded judgement that secrecy does not prevent it needs no consent.
    stays.send_admission_notice(stay.id, **notice, judgement="LSU: needed for the care")
    assert stays.stay(stay.id).admission_notice.legal_basis["basis"] == "secrecy-judgement"


def test_a_domain_refusal_and_a_stale_version_write_nothing(stays):
    stays, _ = stays
    stay = noticed(stays)
    with pytest.raises(RuleViolation) as raised:
        stays.discharge(stay.id, at=ADMITTED - timedelta(days=1), by=PHYSICIAN)
    assert raised.value.rule == "after-admission"
    with pytest.raises(VersionMismatch):
        stays.notify_ready(stay.id, at=ADMITTED + timedelta(days=1), by=PHYSICIAN,
                           expected_version=1)  # fmt: skip
    assert stored_events(stays, stay.id) == ["Admitted", "CareNeedJudged", "AdmissionNoticeSent"]


def test_calling_the_sip_stores_a_draft_plan_for_the_stays_organisations_linked_to_it(stays):
    stays, gate = stays
    stay = noticed(stays)
    stays.confirm_receipt(stay.id, at=ADMITTED + timedelta(hours=2), by=NURSE_VC)
    stays.confirm_receipt(stay.id, at=ADMITTED + timedelta(hours=2), by=SOCIAL)
    stays.name_care_contact(stay.id, name="Svensson", already_existed=False,
                            at=ADMITTED + timedelta(hours=3), by=NURSE_VC)  # fmt: skip
    stays.notify_ready(stay.id, at=local("2026-03-04"), by=PHYSICIAN)
    stay, plan_id = stays.call_sip(stay.id, title="SIP inför utskrivning",
                                   at=local("2026-03-05"), by=NURSE_VC)  # fmt: skip
    assert stays.stay(stay.id).sip_plan_id == str(plan_id)
    plan = stays.plans.aggregate(plan_id)
    assert plan.status == "draft" and plan.subject == PERSON
    assert plan.starting_organization == PRIMARY_CARE_ORG
    assert {o: t.kind for o, t in plan.organizations.items()} == {
        PRIMARY_CARE_ORG: "region", HOSPITAL: "region", ALE: "municipality",
    }  # fmt: skip
    # The care contact's disclosure is asked for towards the hospital and the municipality.
    assert {(r.source, r.actor) for r in gate.asked[-2:]} == {
        (PRIMARY_CARE_ORG, HOSPITAL), (PRIMARY_CARE_ORG, ALE),
    }  # fmt: skip
    with pytest.raises(RuleViolation):
        stays.call_sip(stay.id, title=None, at=local("2026-03-05"), by=NURSE_VC)
    assert stays.plans.aggregate_ids().__next__() == plan_id  # no second plan was stored
    assert len(list(stays.plans.aggregate_ids())) == 1


def test_a_refused_sip_call_stores_no_plan(stays):
    stays, _ = stays
    stay = noticed(stays)
    with pytest.raises(RuleViolation) as raised:  # no care contact named yet
        stays.call_sip(stay.id, title=None, at=local("2026-03-05"), by=NURSE_VC)
    assert raised.value.rule == "sip-called-by-care-contact"
    assert list(stays.plans.aggregate_ids()) == []


def test_a_stay_is_not_a_plan_and_a_plan_is_not_a_stay(stays):
    stays, _ = stays
    stay = noticed(stays)
    with pytest.raises(NotFound, match="CarePlan"):
        stays.plans.aggregate(stay.id)
    plan = stays.plans.start(
        **started_by_region(PERSON["value"], at=ADMITTED, by=PHYSICIAN, title=None, region=HOSPITAL)
    )
    assert isinstance(stays.plans.aggregate(plan.id), Plan)
    with pytest.raises(NotFound, match="Encounter"):
        stays.stay(plan.id)
    with pytest.raises(NotFound):
        stays.discharge(plan.id, at=ADMITTED, by=PHYSICIAN)


def test_a_sip_call_that_loses_a_race_for_the_stay_stores_neither_the_plan_nor_the_link(
    stays, monkeypatch
):
    """Another write to the stay lands between the call's read and its save: the stay's event
    conflicts, and the plan saved in the same transaction is not stored either."""
    from eventsourcing.persistence import IntegrityError

    stays, _ = stays
    stay = noticed(stays)
    stays.name_care_contact(stay.id, name="Svensson", already_existed=False,
                            at=ADMITTED + timedelta(hours=3), by=NURSE_VC)  # fmt: skip
    stale = stays.stay(stay.id)
    stays.notify_ready(stay.id, at=local("2026-03-04"), by=PHYSICIAN)
    monkeypatch.setattr(stays, "stay", lambda stay_id, version=None: stale)
    with pytest.raises(IntegrityError):
        stays.call_sip(stay.id, title=None, at=local("2026-03-05"), by=NURSE_VC)
    assert list(stays.plans.aggregate_ids()) == []
    monkeypatch.undo()
    assert stays.stay(stay.id).sip_called is None
