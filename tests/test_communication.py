"""Messages between the organisations of one stay or one plan, as FHIR Communication over
real HTTP on SQLite and PostgreSQL, tried as a careful user, a careless client and an
attacker: sending, reading, marking read and the unread search; a correction as a new message;
the size limit and bad input (4xx naming the element, nothing written); an outsider (404, and
nothing in a search or a history), the wrong role (403); a replayed send; a withdrawn consent
hiding the message from the recipient; every read in the person's log extract; the text never
in clear in the store."""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.sip.messages.fhir import EXT_CORRECTION, EXT_JUDGEMENT, EXT_RECEIPT
from services.sip.messages.message import MAX_TEXT_LENGTH
from tests.communication_http import (
    MUNICIPAL_UNIT,
    PRIMARY_UNIT,
    a_plan,
    a_stay,
    found,
    hsa,
    mark_read,
    message,
    send,
)
from tests.conftest import running_system
from tests.discharge_http import PRIMARY
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    new_personnummer,
    run,
    withdrawal,
)
from tests.test_personal_data_switched_on import stored_states


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def staff(system, organization, unit, role="professional"):
    return system.as_caller(role, organization, unit=unit).sip


def receipts(resource):
    """{recipient HSA-id: read time or None} from the receipt extensions."""
    found = {}
    for extension in resource.get("extension", []):
        if extension["url"] == EXT_RECEIPT:
            parts = {p["url"]: p for p in extension["extension"]}
            found[parts["recipient"]["valueReference"]["identifier"]["value"]] = parts.get(
                "read", {}
            ).get("valueDateTime")
    return found


def test_a_message_about_a_stay_is_sent_read_marked_read_and_found_unread(system):
    personnummer = new_personnummer()
    stay = a_stay(system, personnummer)
    ward = staff(system, REGION, stay["ward"])
    social = staff(system, MUNICIPALITY, MUNICIPAL_UNIT)
    vc = staff(system, PRIMARY, PRIMARY_UNIT)
    sent = send(ward, message(stay=stay["id"], to=(MUNICIPAL_UNIT, PRIMARY)))
    assert sent.status_code == 201, sent.text
    communication = sent.json()
    message_id = communication["id"]
    assert communication["status"] == "completed"
    assert communication["encounter"] == {"reference": f"Encounter/{stay['id']}"}
    assert communication["subject"]["identifier"]["value"] == personnummer
    assert communication["sender"]["identifier"]["value"] == stay["ward"]
    assert communication["payload"] == [{"contentString": message()["payload"][0]["contentString"]}]
    assert "received" not in communication
    assert receipts(communication) == {MUNICIPAL_UNIT: None, PRIMARY: None}

    read = social.get(f"/fhir/Communication/{message_id}")
    assert read.status_code == 200 and read.json()["payload"] == communication["payload"]
    assert message_id in found(social, recipient=MUNICIPALITY, **{"received:missing": "true"})
    assert message_id in found(
        social, recipient=MUNICIPAL_UNIT, encounter=f"Encounter/{stay['id']}"
    )
    assert message_id in found(social, sender=REGION, **{"received:missing": "true"})

    marked = mark_read(social, message_id)
    assert marked.status_code == 200, marked.text
    assert receipts(marked.json())[MUNICIPAL_UNIT] is not None
    assert "received" not in marked.json()  # primary care has not read it yet
    unread_by_me = {"recipient": MUNICIPALITY, "received:missing": "true"}
    assert message_id not in found(social, **unread_by_me)
    assert message_id in found(social, recipient=MUNICIPALITY, **{"received:missing": "false"})
    assert message_id in found(vc, recipient=PRIMARY, **{"received:missing": "true"})
    assert message_id in found(ward, **{"received:missing": "true"})  # someone has not

    again = mark_read(social, message_id)
    assert again.status_code == 409 and "read-once" in again.text
    stale = mark_read(vc, message_id, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    done = mark_read(vc, message_id, headers={"If-Match": 'W/"2"'})
    assert done.status_code == 200, done.text
    assert "received" in done.json() and done.json()["meta"]["versionId"] == "3"
    assert message_id not in found(ward, **{"received:missing": "true"})
    assert message_id in found(ward, received="ge2020-01-01")

    history = ward.get(f"/fhir/Communication/{message_id}/_history").json()
    assert history["total"] == 3
    first = ward.get(f"/fhir/Communication/{message_id}/_history/1").json()
    assert receipts(first) == {MUNICIPAL_UNIT: None, PRIMARY: None}
    assert message_id in str(ward.get("/fhir/Communication/_history").json())


def test_a_message_about_a_plan_goes_to_an_organisation_taking_part(system):
    personnummer = new_personnummer()
    plan = a_plan(system, personnummer)
    municipality = system.as_caller("coordinator", MUNICIPALITY).sip
    sent = send(system.sip, message(plan=plan["id"], to=(MUNICIPALITY,)))
    assert sent.status_code == 201, sent.text
    assert sent.json()["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    message_id = sent.json()["id"]
    assert found(municipality, **{"based-on": f"CarePlan/{plan['id']}"}) == [message_id]
    assert mark_read(municipality, message_id).status_code == 200
    # The municipality answers: a reply to the region, about the same plan.
    answered = [{"reference": f"Communication/{message_id}"}]
    reply = send(
        municipality,
        message("Vi tar det på mötet", plan=plan["id"], to=(REGION,), inResponseTo=answered),
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["inResponseTo"] == [{"reference": f"Communication/{message_id}"}]
    # A stay's id is no plan: the message's record is typed.
    wrong = send(
        system.sip, message(to=(MUNICIPALITY,), basedOn=[{"reference": f"CarePlan/{uuid4()}"}])
    )
    assert wrong.status_code == 404


def test_a_correction_is_a_new_message_by_the_sender_and_the_first_stays_as_it_was(system):
    stay = a_stay(system, new_personnummer())
    ward = staff(system, REGION, stay["ward"])
    social = staff(system, MUNICIPALITY, MUNICIPAL_UNIT)
    first = send(ward, message("Utskrivning på tisdag", stay=stay["id"])).json()
    reference = [{"reference": f"Communication/{first['id']}"}]
    correction = message("Rättelse: utskrivning på onsdag", stay=stay["id"], inResponseTo=reference,
                         extension=[{"url": EXT_CORRECTION, "valueBoolean": True}])  # fmt: skip
    by_recipient = send(social, {**correction, "recipient": [hsa(REGION)]})
    assert by_recipient.status_code == 409 and "correction-by-sender" in by_recipient.text
    corrected = send(ward, correction)
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["inResponseTo"] == reference
    assert {"url": EXT_CORRECTION, "valueBoolean": True} in corrected.json()["extension"]
    unchanged = ward.get(f"/fhir/Communication/{first['id']}").json()
    assert unchanged["payload"] == first["payload"] and unchanged["meta"]["versionId"] == "1"
    # A message is never edited nor deleted.
    for method in ("PUT", "DELETE", "PATCH"):
        answer = ward.request(method, f"/fhir/Communication/{first['id']}", json=first,
                              headers=FHIR_JSON)  # fmt: skip
        assert answer.status_code == 405, (method, answer.text)
    bad_target = message(stay=stay["id"], inResponseTo=[{"reference": f"Communication/{uuid4()}"}])
    refused = send(ward, bad_target)
    assert refused.status_code == 422 and "Communication.inResponseTo" in refused.text
    without_target = message(
        stay=stay["id"], extension=[{"url": EXT_CORRECTION, "valueBoolean": True}]
    )
    refused = send(ward, without_target)
    assert refused.status_code == 422 and "inResponseTo" in refused.text


def _expression(answer):
    return answer.json()["issue"][0].get("expression", [""])[0]


def test_the_size_limit_and_bad_input_are_refused_naming_the_element_and_write_nothing(system):
    stay = a_stay(system, new_personnummer())
    ward = staff(system, REGION, stay["ward"])
    before = found(ward, encounter=f"Encounter/{stay['id']}")
    text = "Ä" * (MAX_TEXT_LENGTH + 1)
    too_long = send(ward, message(text, stay=stay["id"]))
    assert too_long.status_code == 422, too_long.text
    assert _expression(too_long) == "Communication.payload[0].contentString"
    assert str(MAX_TEXT_LENGTH) in too_long.text
    cases = [
        ({"payload": []}, 422, "Communication.payload"),
        ({"payload": [{"contentString": "   "}]}, 422, "Communication.payload[0].contentString"),
        ({"recipient": []}, 422, "Communication.recipient"),
        ({"recipient": [hsa("SE5560000000-X1")]}, 422, "Communication.recipient[0]"),
        ({"recipient": [hsa(REGION)]}, 422, "Communication.recipient"),  # own organisation
        ({"recipient": [hsa(MUNICIPAL_UNIT), hsa(MUNICIPAL_UNIT)]}, 422, "Communication.recipient"),
        ({"recipient": [{"reference": "Organization/x"}]}, 422, "Communication.recipient[0]"),
        ({"status": "in-progress"}, 422, "Communication.status"),
        ({"resourceType": "CarePlan"}, 400, "resourceType"),
        ({"note": [{"text": "x"}]}, 422, "Communication.note"),
        ({"encounter": {"reference": "Encounter/not-a-uuid"}}, 422, "Communication.encounter"),
        ({"basedOn": [{"reference": f"CarePlan/{uuid4()}"}]}, 422, "Communication.about"),
        ({"subject": {"identifier": {"system": "x", "value": "1"}}}, 422, "Communication.subject"),
        ({"sender": hsa(MUNICIPAL_UNIT)}, 422, "Communication.sender"),
        ({"inResponseTo": "Communication/x"}, 422, "Communication.inResponseTo"),
        ({"identifier": [{"system": "urn:x"}]}, 400, "Communication.identifier[0]"),
    ]
    for change, status, element in cases:
        answer = send(ward, {**message(stay=stay["id"]), **change})
        assert answer.status_code == status, (change, answer.text)
        assert _expression(answer).startswith(element), (change, answer.text)
    nowhere = send(ward, {k: v for k, v in message(stay=stay["id"]).items() if k != "encounter"})
    assert nowhere.status_code == 422 and _expression(nowhere) == "Communication.basedOn"
    assert found(ward, encounter=f"Encounter/{stay['id']}") == before  # nothing was written
    at_the_limit = send(ward, message("a" * MAX_TEXT_LENGTH, stay=stay["id"]))
    assert at_the_limit.status_code == 201, at_the_limit.text
    bad_search = ward.get("/fhir/Communication", params={"received:missing": "maybe"})
    assert bad_search.status_code == 400 and "received:missing" in bad_search.text
    assert ward.get("/fhir/Communication", params={"encounter": "CarePlan/x"}).status_code == 400


def test_an_outsider_gets_404_everywhere_and_the_wrong_role_403(system):
    personnummer = new_personnummer()
    stay = a_stay(system, personnummer)
    ward = staff(system, REGION, stay["ward"])
    message_id = send(ward, message(stay=stay["id"])).json()["id"]
    outsiders = [
        staff(system, OTHER_REGION, "SE2321000016-XU1"),
        system.as_caller("integration", OTHER_REGION).sip,
        system.as_caller("auditor", OTHER_REGION).sip,
        system.as_caller("patient", None, patient=new_personnummer()).sip,
    ]
    for outsider in outsiders:
        read = outsider.get(f"/fhir/Communication/{message_id}")
        assert read.status_code == 404 and personnummer not in read.text
        assert outsider.get(f"/fhir/Communication/{message_id}/_history").status_code == 404
        assert outsider.get(f"/fhir/Communication/{message_id}/_history/1").status_code == 404
        assert found(outsider, _id=message_id) == []
        assert message_id not in str(outsider.get("/fhir/Communication/_history").json())
    # Primary care takes part in the stay but the message did not go to it.
    assert (
        staff(system, PRIMARY, PRIMARY_UNIT).get(f"/fhir/Communication/{message_id}").status_code
        == 404
    )
    outsider = staff(system, OTHER_REGION, "SE2321000016-XU1")
    assert send(outsider, message(stay=stay["id"])).status_code == 404
    assert mark_read(outsider, message_id).status_code == 404
    person = system.as_caller("patient", None, patient=personnummer).sip
    assert person.get(f"/fhir/Communication/{message_id}").status_code == 200
    assert found(person, _id=message_id) == [message_id]
    assert send(person, message(stay=stay["id"])).status_code == 403
    assert mark_read(person, message_id).status_code == 403
    auditor = system.as_caller("auditor", MUNICIPALITY).sip
    assert send(auditor, message(stay=stay["id"])).status_code == 403
    assert mark_read(auditor, message_id).status_code == 403
    no_scope = system.as_caller("integration", MUNICIPALITY, scopes=("system/CarePlan.rs",)).sip
    assert no_scope.get(f"/fhir/Communication/{message_id}").status_code == 403
    assert system.without_token.sip.get(f"/fhir/Communication/{message_id}").status_code == 401
    # The sender's organisation is no recipient of its own message.
    own = mark_read(ward, message_id)
    assert own.status_code == 409 and "read-by-recipient" in own.text


def test_a_replayed_send_makes_one_message(system):
    stay = a_stay(system, new_personnummer())
    ward = staff(system, REGION, stay["ward"])
    identifier = {"system": "urn:oid:1.2.752.129.2.1.2.1", "value": f"msg-{uuid4()}"}
    body = message(stay=stay["id"], identifier=[identifier])
    first = send(ward, body)
    assert first.status_code == 201, first.text
    replayed = send(ward, body)
    assert replayed.status_code == 409 and "Communication.identifier" in replayed.text
    condition = {"If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}"}
    conditional = send(ward, body, headers=condition)
    assert conditional.status_code == 200 and conditional.json()["id"] == first.json()["id"]
    assert found(ward, encounter=f"Encounter/{stay['id']}", category="message") == [
        first.json()["id"]
    ]


def test_a_withdrawn_consent_makes_the_message_unreadable_to_the_recipient(system):
    personnummer = new_personnummer()
    plan = a_plan(system, personnummer)
    municipality = system.as_caller("coordinator", MUNICIPALITY).sip
    message_id = send(system.sip, message(plan=plan["id"], to=(MUNICIPALITY,))).json()["id"]
    judgement = [{"url": EXT_JUDGEMENT, "valueString": "OSL 25:12"}]
    judged = send(
        system.sip,
        message("Prövat", plan=plan["id"], to=(MUNICIPALITY,), extension=judgement),
    )
    assert judged.status_code == 201, judged.text
    assert municipality.get(f"/fhir/Communication/{message_id}").status_code == 200
    withdrawn = system.consent.post(
        f"/fhir/Consent/{plan['consent']}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200, withdrawn.text
    system.settle()
    assert municipality.get(f"/fhir/Communication/{message_id}").status_code == 404
    assert municipality.get(f"/fhir/Communication/{message_id}/_history").status_code == 404
    assert mark_read(municipality, message_id).status_code == 404
    assert found(municipality, **{"based-on": f"CarePlan/{plan['id']}"}) == [judged.json()["id"]]
    assert system.sip.get(f"/fhir/Communication/{message_id}").status_code == 200  # the sender
    person = system.as_caller("patient", None, patient=personnummer).sip
    assert person.get(f"/fhir/Communication/{message_id}").status_code == 200
    refused = send(system.sip, message(plan=plan["id"], to=(MUNICIPALITY,)))
    assert refused.status_code == 409, refused.text
    assert _expression(refused) == "Communication.recipient"


def test_every_read_of_a_message_is_in_the_persons_log_extract(system):
    personnummer = new_personnummer()
    stay = a_stay(system, personnummer)
    ward = staff(system, REGION, stay["ward"])
    social = staff(system, MUNICIPALITY, MUNICIPAL_UNIT)
    message_id = send(ward, message(stay=stay["id"])).json()["id"]
    assert social.get(f"/fhir/Communication/{message_id}").status_code == 200
    assert social.get(f"/fhir/Communication/{message_id}/_history").status_code == 200
    assert social.get(f"/fhir/Communication/{message_id}/_history/1").status_code == 200
    assert found(social, _id=message_id) == [message_id]
    person = system.as_caller("patient", None, patient=personnummer)
    extract = person.sip.get(f"/fhir/Patient/{personnummer}/$access-log").json()
    about_messages = [
        (e["organization"], e["what"]) for e in extract["entries"] if "message" in e["what"]
    ]
    assert about_messages == [
        (REGION, "created a message about you"),
        *[(MUNICIPALITY, "read a message about you")] * 4,
    ]
    auditor = system.as_caller("auditor", MUNICIPALITY).sip
    log = auditor.get("/fhir/AuditEvent", params={"patient": personnummer})
    assert log.status_code == 200 and f"Communication/{message_id}" in log.text


def test_the_text_is_not_in_clear_in_the_store(system):
    personnummer = new_personnummer()
    stay = a_stay(system, personnummer)
    ward = staff(system, REGION, stay["ward"])
    secret = f"Hemlig anteckning {uuid4().hex}"
    sent = send(ward, message(secret, stay=stay["id"]))
    assert sent.status_code == 201
    assert (
        ward.get(f"/fhir/Communication/{sent.json()['id']}").json()["payload"][0]["contentString"]
        == secret
    )
    states = [(t, s) for t, s in stored_states(system.backend, "sip") if ":Message." in t]
    assert states and any(t.endswith("Message.Sent") for t, _ in states)
    for topic, state in states:
        assert secret.encode() not in state and personnummer.encode() not in state, topic


def test_the_capability_statement_lists_communication_and_mark_read(system):
    statement = system.sip.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    communication = resources["Communication"]
    assert {i["code"] for i in communication["interaction"]} >= {"create", "read", "search-type"}
    params = {p["name"] for p in communication["searchParam"]}
    assert {"recipient", "sender", "received", "encounter", "based-on"} <= params
    operations = {o["name"]: o["definition"] for o in communication.get("operation", [])}
    assert "mark-read" in operations
    definition = system.sip.get(operations["mark-read"])
    assert definition.status_code == 200 and definition.json()["code"] == "mark-read"


def test_a_message_is_not_sent_while_the_consent_service_cannot_be_asked(
    sip_without_consent_service,
):
    sip = sip_without_consent_service
    plan = sip.post("/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON)
    assert plan.status_code == 201, plan.text
    invited = run(sip, plan.json()["id"], "invite-organization", organization=MUNICIPALITY,
                  kind="municipality")  # fmt: skip
    assert invited.status_code == 200, invited.text
    down = send(sip, message(plan=plan.json()["id"], to=(MUNICIPALITY,)))
    assert down.status_code == 503, down.text
    assert found(sip, **{"based-on": f"CarePlan/{plan.json()['id']}"}) == []  # nothing written
    # A recorded secrecy judgement needs no answer from the consent service.
    judgement = [{"url": EXT_JUDGEMENT, "valueString": "OSL 25 kap. 12 §"}]
    judged = message(plan=plan.json()["id"], to=(MUNICIPALITY,), extension=judgement)
    assert send(sip, judged).status_code == 201
