"""A stay's admission notice served as a Communication (docs/decisions/0012-messages.md), over
real HTTP on SQLite and PostgreSQL: sent with the stay's `$send-admission-notice` in one write,
unread for each unit it went to and found by the messages' search; nothing of it for an
outsider organisation or another person; a receipt through either door shows on both the
Encounter and the Communication; an invalid notice writes neither; a stay noticed before
notices were messages keeps its notice on the Encounter only; a record system cannot post a
notice of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from services.common.domain import RuleViolation
from services.sip.discharge.application import Stays
from services.sip.discharge.fhir import EXT_ADMISSION_NOTICE
from services.sip.discharge.stay import Stay
from services.sip.messages.fhir import CATEGORY_SYSTEM, EXT_ESTIMATED_DISCHARGE
from services.sip.messages.message import Message
from services.sip.messages.notices import confirm_receipt, notice_id, notice_message
from tests.communication_http import found, mark_read, message, send
from tests.conftest import running_system
from tests.discharge_data import actor
from tests.discharge_http import (
    PRIMARY,
    SOCIAL,
    VARDCENTRAL,
    WARD,
    admit,
    consent_to_the_stay,
    extension,
    step,
    told,
)
from tests.fhir_data import MUNICIPALITY, OTHER_REGION, REGION, new_personnummer
from tests.test_communication import receipts

RECIPIENTS = told((PRIMARY, VARDCENTRAL), (MUNICIPALITY, SOCIAL))


def staff(system, organization, unit):
    """Staff of a unit whose token may read and write stays and messages alike."""
    return system.as_caller("professional", organization, unit=unit).sip


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def a_judged_stay(system, personnummer):
    """An admitted stay of WARD, care from both principals judged needed: its id."""
    consent_to_the_stay(system, personnummer)
    ward = staff(system, REGION, WARD)
    admitted = admit(ward, personnummer)
    assert admitted.status_code == 200, admitted.text
    stay_id = admitted.json()["id"]
    judged = step(ward, stay_id, "judge-care-needed", principal=["region", "municipality"])
    assert judged.status_code == 200, judged.text
    return stay_id


def noticed(system, personnummer):
    """A stay whose notice went to primary care and social services: (stay id, notice id,
    the estimated discharge sent)."""
    stay_id = a_judged_stay(system, personnummer)
    estimate = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    sent = step(
        staff(system, REGION, WARD), stay_id, "send-admission-notice",
        recipient=RECIPIENTS, estimatedDischarge=estimate.isoformat(),
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    return stay_id, str(notice_id(UUID(stay_id))), estimate


def categories(resource):
    return [
        coding["code"]
        for concept in resource.get("category", [])
        for coding in concept["coding"]
        if coding["system"] == CATEGORY_SYSTEM
    ]


def notice_receipts(encounter):
    """{unit: received or None} from the Encounter's stay-admission-notice extension."""
    found = {}
    for part in extension(encounter, EXT_ADMISSION_NOTICE)["extension"]:
        if part["url"] == "recipient":
            parts = {p["url"]: p for p in part["extension"]}
            unit = parts["unit"]["valueReference"]["identifier"]["value"]
            found[unit] = parts.get("received", {}).get("valueDateTime")
    return found


def test_a_notice_is_an_unread_communication_for_each_unit_it_went_to(system):
    personnummer = new_personnummer()
    stay_id, notice, estimate = noticed(system, personnummer)
    vc, social = staff(system, PRIMARY, VARDCENTRAL), staff(system, MUNICIPALITY, SOCIAL)
    read = vc.get(f"/fhir/Communication/{notice}")
    assert read.status_code == 200, read.text
    communication = read.json()
    assert categories(communication) == ["admission-notice"]
    assert communication["encounter"] == {"reference": f"Encounter/{stay_id}"}
    assert communication["sender"]["identifier"]["value"] == WARD
    assert communication["subject"]["identifier"]["value"] == personnummer
    assert receipts(communication) == {VARDCENTRAL: None, SOCIAL: None}
    estimated = extension(communication, EXT_ESTIMATED_DISCHARGE)["valueDateTime"]
    assert datetime.fromisoformat(estimated) == estimate
    assert "Beräknad utskrivning" in communication["payload"][0]["contentString"]
    assert personnummer not in communication["payload"][0]["contentString"]
    assert "received" not in communication
    unread = {"received:missing": "true", "category": "admission-notice"}
    for client, unit in ((vc, VARDCENTRAL), (social, SOCIAL)):
        assert notice in found(client, recipient=unit, **unread)
    assert found(vc, encounter=f"Encounter/{stay_id}", category="admission-notice") == [notice]
    assert found(vc, encounter=f"Encounter/{stay_id}", category="message") == []
    assert notice in found(vc, sender=WARD)
    bad = vc.post("/fhir/Communication/_search", data={"category": "gossip"})
    assert bad.status_code == 400


def test_an_outsider_and_another_person_see_no_notice(system):
    personnummer = new_personnummer()
    stay_id, notice, _ = noticed(system, personnummer)
    outsider = staff(system, OTHER_REGION, "SE2321000099-U1")
    assert outsider.get(f"/fhir/Communication/{notice}").status_code == 404
    assert outsider.get(f"/fhir/Communication/{notice}/_history").status_code == 404
    assert outsider.get(f"/fhir/Communication/{notice}/_history/1").status_code == 404
    assert found(outsider, encounter=f"Encounter/{stay_id}") == []
    assert found(outsider, _id=notice) == []
    assert notice not in str(outsider.get("/fhir/Communication/_history").json())
    assert mark_read(outsider, notice).status_code == 404
    other = system.as_caller("patient", None, patient=new_personnummer()).sip
    assert other.get(f"/fhir/Communication/{notice}").status_code == 404
    assert found(other, _id=notice) == []
    person = system.as_caller("patient", None, patient=personnummer).sip
    assert person.get(f"/fhir/Communication/{notice}").status_code == 200
    assert found(person, _id=notice) == [notice]


def test_a_receipt_through_either_door_shows_on_both(system):
    personnummer = new_personnummer()
    stay_id, notice, _ = noticed(system, personnummer)
    ward = staff(system, REGION, WARD)
    vc, social = staff(system, PRIMARY, VARDCENTRAL), staff(system, MUNICIPALITY, SOCIAL)

    marked = mark_read(vc, notice)  # the Communication's door
    assert marked.status_code == 200, marked.text
    assert receipts(marked.json())[VARDCENTRAL] is not None
    encounter = ward.get(f"/fhir/Encounter/{stay_id}").json()
    assert notice_receipts(encounter) == {VARDCENTRAL: receipts(marked.json())[VARDCENTRAL],
                                          SOCIAL: None}  # fmt: skip
    again = step(vc, stay_id, "confirm-receipt")
    assert again.status_code == 409 and "receipt-once" in again.text
    assert mark_read(vc, notice).status_code == 409
    assert notice not in found(vc, recipient=VARDCENTRAL, **{"received:missing": "true"})
    # Someone of the ward's organisation is no recipient: refused, nothing written.
    assert mark_read(ward, notice).status_code == 409

    confirmed = step(social, stay_id, "confirm-receipt")  # the Encounter's door
    assert confirmed.status_code == 200, confirmed.text
    communication = social.get(f"/fhir/Communication/{notice}").json()
    assert receipts(communication)[SOCIAL] == notice_receipts(confirmed.json())[SOCIAL]
    assert "received" in communication and communication["meta"]["versionId"] == "3"
    assert notice not in found(ward, **{"received:missing": "true"})
    history = ward.get(f"/fhir/Communication/{notice}/_history").json()
    assert history["total"] == 3
    first = ward.get(f"/fhir/Communication/{notice}/_history/1").json()
    assert receipts(first) == {VARDCENTRAL: None, SOCIAL: None}

    person = system.as_caller("patient", None, patient=personnummer)
    extract = person.sip.get(f"/fhir/Patient/{personnummer}/$access-log").json()
    about_messages = [
        (e["organization"], e["what"]) for e in extract["entries"] if "message" in e["what"]
    ]
    # The notice sent with the stay's step, each unit's receipt (through either door) and
    # the reads.
    assert about_messages.count((REGION, "created a message about you")) == 1
    assert (MUNICIPALITY, "read a message about you") in about_messages
    assert (PRIMARY, "acted on a message about you") in about_messages
    assert (MUNICIPALITY, "acted on a message about you") in about_messages


@pytest.mark.parametrize(
    "values, status",
    [
        ({"recipient": [{**RECIPIENTS[0], "kind": "dentist"}], "estimatedDischarge": "x"}, 400),
        ({"recipient": [{**RECIPIENTS[0], "kind": "dentist"}]}, 400),
        ({"recipient": [{**RECIPIENTS[0], "kind": "dentist"}, RECIPIENTS[1]],
          "estimatedDischarge": "2030-01-01T10:00:00+01:00"}, 422),
        ({"recipient": [RECIPIENTS[1]], "estimatedDischarge": "2030-01-01T10:00:00+01:00"}, 409),
        ({"recipient": [RECIPIENTS[0], {**RECIPIENTS[1], "unit": "not-an-hsa-id"}],
          "estimatedDischarge": "2030-01-01T10:00:00+01:00"}, 400),
        ({"recipient": RECIPIENTS, "estimatedDischarge": "2001-01-01T10:00:00+01:00"}, 422),
    ],
)  # fmt: skip
def test_an_invalid_notice_writes_neither_the_stay_nor_the_message(system, values, status):
    stay_id = a_judged_stay(system, new_personnummer())
    ward = staff(system, REGION, WARD)
    before = ward.get(f"/fhir/Encounter/{stay_id}").json()
    refused = step(ward, stay_id, "send-admission-notice", **values)
    assert refused.status_code == status, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    after = ward.get(f"/fhir/Encounter/{stay_id}").json()
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
    assert extension(after, EXT_ADMISSION_NOTICE) is None
    notice = str(notice_id(UUID(stay_id)))
    assert ward.get(f"/fhir/Communication/{notice}").status_code == 404
    assert found(ward, encounter=f"Encounter/{stay_id}") == []


def test_a_stay_noticed_before_notices_were_messages_keeps_it_on_the_encounter(system):
    """Its notice was recorded by the stay alone (as every stay's was before this change):
    no Communication is derived for it, and its receipts still work on the Encounter."""
    personnummer = new_personnummer()
    stay_id = a_judged_stay(system, personnummer)
    plans = system.sip_app.state.plans
    stays = Stays(plans, system.sip_app.state.consent_gate_uncached)
    stay: Stay = stays.stay(UUID(stay_id))
    stay.send_admission_notice(
        recipients=RECIPIENTS, estimated_discharge=datetime.now(UTC) + timedelta(days=2),
        legal_basis={"basis": "secrecy-judgement", "judgement": "LSU"},
        at=datetime.now(UTC), by=actor(REGION, WARD),
    )  # fmt: skip
    plans.save(stay)  # the stay's event alone, as stored before
    vc = staff(system, PRIMARY, VARDCENTRAL)
    assert vc.get(f"/fhir/Communication/{notice_id(UUID(stay_id))}").status_code == 404
    confirmed = step(vc, stay_id, "confirm-receipt")
    assert confirmed.status_code == 200, confirmed.text
    assert notice_receipts(confirmed.json())[VARDCENTRAL] is not None
    assert found(vc, encounter=f"Encounter/{stay_id}") == []


def test_a_record_system_cannot_post_a_notice_of_its_own(system):
    stay_id, notice, _ = noticed(system, new_personnummer())
    ward = staff(system, REGION, WARD)
    posing = message(
        stay=stay_id, to=(SOCIAL,),
        category=[{"coding": [{"system": CATEGORY_SYSTEM, "code": "admission-notice"}]}],
    )  # fmt: skip
    refused = send(ward, posing)
    assert refused.status_code == 422 and "Communication.category" in refused.text
    assert found(ward, encounter=f"Encounter/{stay_id}") == [notice]
    # A message a unit writes may say what it is, as it is read back.
    plain = message(
        stay=stay_id, to=(SOCIAL,),
        category=[{"coding": [{"system": CATEGORY_SYSTEM, "code": "message"}]}],
    )  # fmt: skip
    sent = send(ward, plain)
    assert sent.status_code == 201, sent.text
    assert categories(sent.json()) == ["message"]


def test_the_notice_and_its_message_are_one_write(system):
    """Were the message refused by the store (here: its id taken already), the stay's notice
    is not written either."""
    stay_id = UUID(a_judged_stay(system, new_personnummer()))
    plans = system.sip_app.state.plans
    stays = Stays(plans, system.sip_app.state.consent_gate_uncached)
    ward, now = actor(REGION, WARD), datetime.now(UTC)
    squatter = Message.admission_notice(
        id=notice_id(stay_id), subject=stays.stay(stay_id).subject, stay=str(stay_id),
        ward=WARD, estimated_discharge=now, text="Upptaget", recipients=RECIPIENTS,
        legal_basis={"basis": "secrecy-judgement", "judgement": "LSU"}, sent_at=now, by=ward,
    )  # fmt: skip
    plans.save(squatter)
    version = stays.stay(stay_id).version
    with pytest.raises(IntegrityError):
        stays.send_admission_notice(
            stay_id, recipients=RECIPIENTS, estimated_discharge=now + timedelta(days=2),
            at=now, by=ward, judgement="LSU 4 kap.",
        )  # fmt: skip
    stay = stays.stay(stay_id)
    assert stay.version == version and stay.admission_notice is None


def test_a_notices_receipt_is_never_the_messages_alone():
    at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    ward = actor(REGION, WARD)
    subject = {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": new_personnummer()}
    stay = Stay.admit(subject=subject, ward=WARD, admitted_at=at, by=ward)
    stay.judge_care_needed(principals=["region", "municipality"], at=at, by=ward)
    stay.send_admission_notice(
        recipients=RECIPIENTS, estimated_discharge=at + timedelta(days=3),
        legal_basis={"basis": "secrecy-judgement", "judgement": "LSU"}, at=at, by=ward,
    )  # fmt: skip
    notice = notice_message(stay)
    assert notice.id == notice_id(stay.id) and notice.sender_unit == WARD
    with pytest.raises(RuleViolation, match="its stay's"):
        notice.mark_read(at=at, by=actor(PRIMARY, VARDCENTRAL))
    with pytest.raises(RuleViolation):  # a unit the notice did not go to
        confirm_receipt(FakePlans(), stay, notice, at=at, by=actor(PRIMARY, "SE2321000032-P9"))
    saved = FakePlans()
    confirm_receipt(saved, stay, notice, at=at, by=actor(PRIMARY, VARDCENTRAL))
    assert saved.saved == [(stay, notice)]
    assert stay.recipients[VARDCENTRAL].received.at == notice.recipients[VARDCENTRAL].read.at


class FakePlans:
    """Records what one save was given."""

    def __init__(self):
        self.saved = []

    def save(self, *aggregates):
        self.saved.append(aggregates)
