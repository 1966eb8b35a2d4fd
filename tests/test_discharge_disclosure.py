"""Who sees what of a stay, as an attacker would try it: an organisation the stay does not
concern, another person, a unit reading the hospital's steps after the person withdrew their
consent, a reader of a step on a recorded secrecy judgement, and the person themselves."""

from __future__ import annotations

import pytest

from contracts.actor import Actor
from contracts.consent_decision import ConsentDecision
from services.common.domain import NotFound
from services.common.fhir_api import FhirError
from services.sip.consent_gate import ConsentServiceUnavailable
from services.sip.discharge.disclosure import (
    CARE_CONTACT,
    INFORMATION_TRANSFER,
    READY_NOTICE,
    SIP_CALL,
    StayDisclosure,
    redact_stay,
)
from services.sip.redaction import Withheld, withheld_of
from tests.discharge_data import (
    ALE,
    ALE_SOCIAL,
    HOSPITAL,
    JUDGEMENT,
    OUTSIDER,
    PERSON,
    PHYSICIAN,
    PRIMARY_CARE_ORG,
    VARDCENTRAL,
    local,
    waited,
)


class Gate:
    """The consent service: permits every disclosure except the pairs withdrawn."""

    def __init__(self) -> None:
        self.withdrawn: set[tuple[str, str]] = set()  # (source, recipient)
        self.asked: list[tuple[str, str]] = []
        self.down = False

    def check(self, request) -> ConsentDecision:
        if self.down:
            raise ConsentServiceUnavailable("timeout")
        self.asked.append((request.source, request.actor))
        assert request.patient_value == PERSON["value"]
        if (request.source, request.actor) in self.withdrawn:
            return ConsentDecision(decision="deny", reason="withdrawn")
        return ConsentDecision(decision="permit", reason="ok", consents=("Consent/c1",))


def reader(organization: str | None, role: str = "integration", **more) -> Actor:
    return Actor(subject="reader", role=role, organization=organization, unit=None, **more)


@pytest.fixture
def stay():
    return waited(local("2026-03-10"), local("2026-03-12"))


@pytest.fixture
def gate():
    return Gate()


@pytest.mark.parametrize(
    "who",
    [
        reader(OUTSIDER),
        reader(OUTSIDER, role="professional"),
        reader(OUTSIDER, role="auditor"),
        reader(None),
        reader(None, role="patient", patient="191212121212"),  # another person
    ],
    ids=["outsider-system", "outsider-professional", "outsider-auditor", "no-org", "other-person"],
)
def test_whom_the_stay_does_not_concern_is_told_it_does_not_exist(stay, gate, who):
    with pytest.raises(NotFound) as refused:
        StayDisclosure(gate)(stay, who)
    assert str(stay.id) in str(refused.value) and "Encounter" in str(refused.value)
    assert gate.asked == []  # nothing asked of the consent service, nothing disclosed


def test_the_person_sees_their_whole_stay(stay, gate):
    disclosure = StayDisclosure(gate)(stay, reader(None, role="patient", patient=PERSON["value"]))
    seen = redact_stay(stay, disclosure)
    assert disclosure.complete and seen is stay and withheld_of(seen) == ()


def test_a_unit_concerned_sees_the_others_steps_while_the_consent_holds(stay, gate):
    disclosure = StayDisclosure(gate)(stay, reader(ALE))
    seen = redact_stay(stay, disclosure)
    withheld = withheld_of(seen)
    assert withheld == ()
    assert seen.care_contact.name == "Sköterska Svensson" and seen.sip_plan_id == "plan-1"
    assert disclosure.consents == ("Consent/c1",)
    assert sorted(gate.asked) == [(HOSPITAL, ALE), (PRIMARY_CARE_ORG, ALE)]


def test_a_withdrawn_consent_hides_the_steps_that_rested_on_it_at_the_next_read(stay, gate):
    gate.withdrawn = {(HOSPITAL, ALE)}
    disclosure = StayDisclosure(gate)(stay, reader(ALE))
    seen = redact_stay(stay, disclosure)
    withheld = withheld_of(seen)
    # The hospital's steps on consent are gone, marked; primary care's still shown.
    assert seen.estimated_discharge is None and seen.ready_periods == []
    assert seen.information_transfers == [] and seen.status == "discharged"
    assert Withheld(HOSPITAL, READY_NOTICE) in withheld
    assert Withheld(HOSPITAL, INFORMATION_TRANSFER) in withheld
    assert seen.care_contact is not None and seen.sip_plan_id == "plan-1"
    # The frame: who is told, the receipts, the discharge.
    assert set(seen.recipients) == set(stay.recipients) and seen.discharged == stay.discharged
    # The stay itself is untouched: the hospital still sees it all.
    assert stay.estimated_discharge is not None and len(stay.ready_periods) == 1
    assert withheld_of(redact_stay(stay, StayDisclosure(gate)(stay, reader(HOSPITAL)))) == ()


def test_a_withdrawal_towards_primary_care_hides_the_care_contact_from_the_hospital(stay, gate):
    gate.withdrawn = {(PRIMARY_CARE_ORG, HOSPITAL)}
    seen = redact_stay(stay, StayDisclosure(gate)(stay, reader(HOSPITAL)))
    withheld = withheld_of(seen)
    assert seen.care_contact is None and seen.sip_called is None and seen.sip_plan_id is None
    assert {w.kind for w in withheld} == {CARE_CONTACT, SIP_CALL}


def test_steps_on_a_recorded_secrecy_judgement_stay_visible_to_the_units_concerned(gate):
    stay = waited(local("2026-03-10"), local("2026-03-12"))
    stay_on_judgement = waited(local("2026-03-10"), local("2026-03-12"), sip_after=None)
    stay_on_judgement.transfer_information(
        legal_basis=JUDGEMENT, at=local("2026-03-12", "18:00"), by=PHYSICIAN
    )
    gate.withdrawn = {(HOSPITAL, ALE)}
    seen = redact_stay(stay_on_judgement, StayDisclosure(gate)(stay_on_judgement, reader(ALE)))
    assert [t.legal_basis for t in seen.information_transfers] == [JUDGEMENT]
    seen = redact_stay(stay, StayDisclosure(gate)(stay, reader(ALE)))
    assert seen.information_transfers == []


def test_an_organisation_concerned_only_by_the_notice_is_concerned_in_every_role(stay, gate):
    for role in ("integration", "professional", "coordinator", "auditor"):
        assert not StayDisclosure(gate)(stay, reader(ALE, role=role)).complete


def test_a_reader_of_the_municipality_of_another_stay_sees_nothing_of_this_one(gate):
    elsewhere = waited(local("2026-03-10"), local("2026-03-12"), municipality="SE2120001637-K1",
                       social="SE2120001637-K1-SOC")  # fmt: skip
    with pytest.raises(NotFound):
        StayDisclosure(gate)(elsewhere, reader(ALE))
    assert ALE_SOCIAL not in elsewhere.recipients and VARDCENTRAL in elsewhere.recipients


def test_the_consent_service_unreachable_discloses_nothing(stay, gate):
    gate.down = True
    with pytest.raises(FhirError) as refused:
        StayDisclosure(gate)(stay, reader(ALE))
    assert refused.value.status == 503


def test_a_stay_before_the_notice_concerns_the_hospital_only(gate):
    stay = waited(local("2026-03-10"), local("2026-03-12"))
    fresh = type(stay).admit(
        subject=PERSON, ward=stay.ward, admitted_at=local("2026-03-01"), by=PHYSICIAN
    )
    with pytest.raises(NotFound):
        StayDisclosure(gate)(fresh, reader(ALE))
    assert StayDisclosure(gate)(fresh, reader(HOSPITAL)).custodians == {HOSPITAL, "person"}
