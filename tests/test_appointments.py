"""Meeting invitations over real HTTP on both backends (issue 17, part 4; services/sip/meetings):
the region invites the municipality, the person and a relative to a SIP meeting; each answers
(accept, decline, propose another time); the organiser sees who has answered, reschedules
(everyone is asked again) and cancels (no more answers). Refusals name the element; an outsider
gets 404 and finds nothing; a wrong role gets 403; a stale If-Match 412; a repeated answer
changes nothing; and the person's log extract lists who read their meeting."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.identifiers import HSA_ID_SYSTEM
from services.sip.meetings.fhir import PLAN_PARTICIPANT_SYSTEM
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    created_or_ok,
    new_personnummer,
    prepare_for_activation,
    run,
)

START, END = "2027-02-01T09:00:00+01:00", "2027-02-01T10:00:00+01:00"
AGENDA = "Hur det går med hemtjänsten"


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def refused(response: Any, status: int, element: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if element is not None:
        expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
        assert any(element in e for e in expressions), (element, outcome)
    return outcome


def _plan(system: Any) -> tuple[str, str]:
    """A region plan the municipality takes part in, on the person's consent both ways; the
    person is participant-1 and a relative the person accepts participant-2."""
    personnummer = new_personnummer()
    created_or_ok(
        system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    )
    plan_id = created_or_ok(
        system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    )["id"]
    prepare_for_activation(system.sip, plan_id)
    ok(run(system.sip, plan_id, "add-participant", kind="person", name="Tolvan"))
    ok(run(system.sip, plan_id, "add-participant", kind="relative", name="Mamma",
           personAgrees=True))  # fmt: skip
    return plan_id, personnummer


def _invite(system: Any, plan_id: str, **changes: Any) -> Any:
    values = {
        "start": START,
        "end": END,
        "location": "Vårdcentralen",
        "agenda": AGENDA,
        "organization": [MUNICIPALITY],
        "participant": ["participant-1", "participant-2"],
        **changes,
    }
    return run(system.sip, plan_id, "invite-to-meeting", **values)


def _answer(
    appointment_id: str, status: str, actor: str | None = None, **elements: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{appointment_id}"},
        "participantStatus": status,
        **elements,
    }
    if actor is not None:
        system = PLAN_PARTICIPANT_SYSTEM if actor.startswith("participant-") else HSA_ID_SYSTEM
        body["actor"] = {"identifier": {"system": system, "value": actor}}
    return body


def _post_answer(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/fhir/AppointmentResponse", json=body, headers={**FHIR_JSON, **headers})


def _patient(system: Any, personnummer: str) -> Any:
    return system.as_caller("patient", organization=None, patient=personnummer).sip


def _found(client: Any, resource_type: str, **params: str) -> list[dict[str, Any]]:
    bundle = ok(client.get(f"/fhir/{resource_type}", params=params))
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_invite_answer_and_the_organiser_sees_who_has_answered(system):
    plan_id, personnummer = _plan(system)
    appointment = ok(_invite(system, plan_id))
    meeting_id = appointment["id"]
    assert meeting_id.startswith(plan_id)
    assert appointment["status"] == "pending"
    assert appointment["description"] == AGENDA
    assert {"reference": f"CarePlan/{plan_id}", "type": "CarePlan"} in appointment["basedOn"]
    chair, *invited = appointment["participant"]
    assert chair["actor"]["identifier"]["value"] == REGION and chair["status"] == "accepted"
    assert [(p["actor"]["identifier"]["value"], p["status"]) for p in invited] == [
        (MUNICIPALITY, "needs-action"),
        ("participant-1", "needs-action"),
        ("participant-2", "needs-action"),
    ]
    assert [p["actor"].get("type") for p in invited] == ["Organization", "Patient", "RelatedPerson"]

    municipality = system.as_caller(organization=MUNICIPALITY).sip
    to_answer = _found(
        municipality, "Appointment", actor=MUNICIPALITY, **{"part-status": "needs-action"}
    )
    assert [a["id"] for a in to_answer] == [meeting_id]

    # The municipality accepts (201), and posting the same answer again changes nothing (200).
    accepted = _post_answer(municipality, _answer(meeting_id, "accepted"))
    assert accepted.status_code == 201, accepted.text
    assert f"/fhir/AppointmentResponse/{accepted.json()['id']}/" in accepted.headers["Location"]
    version = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    again = _post_answer(municipality, _answer(meeting_id, "accepted"))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == accepted.json()["id"]
    assert ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"] == version
    assert _found(municipality, "Appointment", actor=MUNICIPALITY,
                  **{"part-status": "needs-action"}) == []  # fmt: skip

    # The person declines as themselves; the region records the relative's proposal.
    person = _patient(system, personnummer)
    declined = _post_answer(person, _answer(meeting_id, "declined", comment="Jag jobbar då"))
    assert declined.status_code == 201, declined.text
    assert declined.json()["actor"]["identifier"]["value"] == "participant-1"
    afternoon = {"start": "2027-02-01T14:00:00+01:00", "end": "2027-02-01T15:00:00+01:00"}
    proposal = _answer(
        meeting_id, "tentative", "participant-2", comment="Hellre eftermiddag", **afternoon
    )
    proposed = _post_answer(system.sip, proposal)
    assert proposed.status_code == 201, proposed.text
    assert proposed.json()["start"].startswith("2027-02-01T13:00:00")  # UTC

    seen = ok(system.sip.get(f"/fhir/Appointment/{meeting_id}"))
    assert [p["status"] for p in seen["participant"][1:]] == ["accepted", "declined", "tentative"]
    assert seen["status"] == "pending"
    responses = _found(system.sip, "AppointmentResponse", appointment=f"Appointment/{meeting_id}")
    assert sorted(r["participantStatus"] for r in responses) == [
        "accepted",
        "declined",
        "tentative",
    ]
    mine = _found(system.sip, "AppointmentResponse", actor=MUNICIPALITY)
    assert [
        r["participantStatus"] for r in mine if meeting_id in r["appointment"]["reference"]
    ] == ["accepted"]
    read = ok(system.sip.get(f"/fhir/AppointmentResponse/{proposed.json()['id']}"))
    assert read["comment"] == "Hellre eftermiddag"
    # Found by the plan, the date and the status, by GET and by POST.
    for params in (
        {"based-on": f"CarePlan/{plan_id}"},
        {"supporting-info": f"CarePlan/{plan_id}", "status": "pending"},
        {"date": "ge2027-02-01", "actor": "participant-2"},
    ):
        assert meeting_id in [a["id"] for a in _found(system.sip, "Appointment", **params)]
    posted = system.sip.post("/fhir/Appointment/_search", data={"based-on": f"CarePlan/{plan_id}"})
    assert [e["resource"]["id"] for e in ok(posted)["entry"]] == [meeting_id]
    assert _found(system.sip, "Appointment", **{"based-on": f"CarePlan/{plan_id}",
                                               "status": "cancelled"}) == []  # fmt: skip

    # The person sees their own meeting and answers; the history shows each change.
    assert ok(person.get(f"/fhir/Appointment/{meeting_id}"))["id"] == meeting_id
    assert [a["id"] for a in _found(person, "Appointment")] == [meeting_id]
    history = ok(system.sip.get(f"/fhir/Appointment/{meeting_id}/_history"))
    assert len(history["entry"]) == 4  # invited, then three answers


def test_all_accepted_is_booked_and_a_reschedule_asks_everyone_again(system):
    plan_id, personnummer = _plan(system)
    meeting_id = ok(_invite(system, plan_id, participant=["participant-1"]))["id"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert _post_answer(municipality, _answer(meeting_id, "accepted")).status_code == 201
    person = _patient(system, personnummer)
    assert _post_answer(person, _answer(meeting_id, "accepted")).status_code == 201
    assert ok(system.sip.get(f"/fhir/Appointment/{meeting_id}"))["status"] == "booked"

    # Only the organiser moves it.
    moved = {
        "meeting": meeting_id[37:],
        "start": "2027-02-03T09:00:00Z",
        "end": "2027-02-03T10:00:00Z",
    }
    refused(run(municipality, plan_id, "reschedule-meeting", **moved), 403)
    rescheduled = ok(run(system.sip, plan_id, "reschedule-meeting", **moved))
    assert rescheduled["start"].startswith("2027-02-03T09:00:00")
    assert rescheduled["status"] == "pending"
    assert [p["status"] for p in rescheduled["participant"][1:]] == ["needs-action"] * 2
    assert rescheduled["comment"] == "Vårdcentralen"  # the place kept
    # The answers to the first time stay readable; the same answer now counts again.
    assert (
        len(_found(system.sip, "AppointmentResponse", appointment=f"Appointment/{meeting_id}")) == 2
    )
    assert _post_answer(municipality, _answer(meeting_id, "accepted")).status_code == 201


def test_a_cancelled_meeting_takes_no_answers(system):
    plan_id, _ = _plan(system)
    meeting_id = ok(_invite(system, plan_id))["id"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    refused(run(municipality, plan_id, "cancel-meeting", meeting=meeting_id[37:]), 403)
    cancelled = ok(run(system.sip, plan_id, "cancel-meeting", meeting=meeting_id[37:],
                       reason="Sjuk"))  # fmt: skip
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["text"] == "Sjuk"
    outcome = refused(
        _post_answer(municipality, _answer(meeting_id, "accepted")),
        409,
        "AppointmentResponse.appointment",
    )
    assert outcome["issue"][0]["details"]["text"] == "meeting-cancelled"
    moved = {"meeting": meeting_id[37:], "start": START, "end": END}
    refused(run(system.sip, plan_id, "reschedule-meeting", **moved), 409, "meeting")
    refused(run(system.sip, plan_id, "cancel-meeting", meeting=meeting_id[37:]), 409, "meeting")
    found = _found(system.sip, "Appointment", **{"based-on": f"CarePlan/{plan_id}",
                                                "status": "cancelled"})  # fmt: skip
    assert [a["id"] for a in found] == [meeting_id]


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        ({"end": "2027-02-01T08:00:00+01:00"}, "end"),
        ({"end": START}, "end"),
        ({"organization": [OTHER_REGION]}, "organization"),
        ({"participant": ["participant-9"]}, "participant"),
        ({"organization": [], "participant": []}, "participant"),
        ({"organization": [MUNICIPALITY, MUNICIPALITY]}, "organization"),
        ({"location": None}, "location"),
    ],
    ids=["end-before-start", "no-length", "outsider", "unknown-participant", "nobody",
         "twice", "nowhere"],
)  # fmt: skip
def test_a_bad_invitation_is_refused_naming_the_element_and_writes_nothing(
    system, changes, element
):
    plan_id, _ = _plan(system)
    version = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    values = {k: v for k, v in changes.items() if v is not None}
    if changes.get("location", "") is None:
        values["location"] = None
    body = {
        "start": START, "end": END, "location": "Vårdcentralen", "organization": [MUNICIPALITY],
        **values,
    }  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    response = run(system.sip, plan_id, "invite-to-meeting", **body)
    assert response.status_code in (400, 409, 422), response.text
    refused(response, response.status_code, element)
    assert ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"] == version


def test_a_bad_answer_is_refused_naming_the_element(system):
    plan_id, _ = _plan(system)
    meeting_id = ok(_invite(system, plan_id, participant=["participant-1"]))["id"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    without = _answer(meeting_id, "accepted")
    del without["appointment"]
    refused(_post_answer(municipality, without), 400, "AppointmentResponse.appointment")
    refused(_post_answer(municipality, _answer(meeting_id, "needs-action")), 409,
            "AppointmentResponse.participantStatus")  # fmt: skip
    accepted_with_time = _answer(meeting_id, "accepted", start=START, end=END)
    refused(_post_answer(municipality, accepted_with_time), 409,
            "AppointmentResponse.participantStatus")  # fmt: skip
    backwards = _answer(meeting_id, "tentative", start=END, end=START)
    refused(_post_answer(municipality, backwards), 409, "AppointmentResponse.end")
    # A participant of the plan who is not invited (the relative, participant-2).
    refused(_post_answer(system.sip, _answer(meeting_id, "accepted", "participant-2")), 409,
            "AppointmentResponse.actor")  # fmt: skip
    refused(_post_answer(municipality, _answer(f"{plan_id}-meeting-7", "accepted")), 409,
            "AppointmentResponse.appointment")  # fmt: skip
    not_json = municipality.post("/fhir/AppointmentResponse", content=b"{", headers=FHIR_JSON)
    assert not_json.status_code == 400
    assert _found(system.sip, "AppointmentResponse", appointment=f"Appointment/{meeting_id}") == []


def test_an_outsider_gets_404_and_finds_nothing(system):
    plan_id, _ = _plan(system)
    meeting_id = ok(_invite(system, plan_id))["id"]
    accepted = _post_answer(system.as_caller(organization=MUNICIPALITY).sip,
                            _answer(meeting_id, "accepted"))  # fmt: skip
    response_id = accepted.json()["id"]
    stranger = _patient(system, new_personnummer())
    for outsider in (system.as_caller(organization=OTHER_REGION).sip, stranger):
        assert outsider.get(f"/fhir/Appointment/{meeting_id}").status_code == 404
        assert outsider.get(f"/fhir/Appointment/{meeting_id}/_history").status_code == 404
        assert outsider.get(f"/fhir/AppointmentResponse/{response_id}").status_code == 404
        assert meeting_id not in str(_found(outsider, "Appointment"))
        assert response_id not in str(_found(outsider, "AppointmentResponse"))
    outsider = system.as_caller(organization=OTHER_REGION).sip
    refused(_post_answer(outsider, _answer(meeting_id, "accepted")), 404)
    refused(run(outsider, plan_id, "cancel-meeting", meeting=meeting_id[37:]), 404)


def test_a_wrong_role_gets_403(system):
    plan_id, personnummer = _plan(system)
    meeting_id = ok(_invite(system, plan_id))["id"]
    person = _patient(system, personnummer)
    refused(run(person, plan_id, "invite-to-meeting", start=START, end=END, location="Hemma",
                participant="participant-1"), 403)  # fmt: skip
    refused(_post_answer(person, _answer(meeting_id, "accepted", "participant-2")), 403)
    refused(_post_answer(person, _answer(meeting_id, "accepted", MUNICIPALITY)), 403)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    outcome = refused(_post_answer(municipality, _answer(meeting_id, "accepted", REGION)), 403)
    assert outcome["issue"][0]["details"]["text"] == "meeting-answer-for-own"
    auditor = system.as_caller("auditor", organization=REGION).sip
    refused(_post_answer(auditor, _answer(meeting_id, "accepted")), 403)
    appointment = ok(system.sip.get(f"/fhir/Appointment/{meeting_id}"))
    assert [p["status"] for p in appointment["participant"][1:]] == ["needs-action"] * 3


def test_if_match_guards_an_answer_and_a_reschedule(system):
    plan_id, _ = _plan(system)
    appointment = ok(_invite(system, plan_id))
    meeting_id, version = appointment["id"], appointment["meta"]["versionId"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    fresh = _post_answer(
        municipality, _answer(meeting_id, "accepted"), **{"If-Match": f'W/"{version}"'}
    )
    assert fresh.status_code == 201, fresh.text
    stale = _post_answer(
        municipality, _answer(meeting_id, "declined"), **{"If-Match": f'W/"{version}"'}
    )
    refused(stale, 412)
    moved = {"meeting": meeting_id[37:], "start": START, "end": END}
    response = system.sip.post(
        f"/fhir/CarePlan/{plan_id}/$reschedule-meeting",
        json={"resourceType": "Parameters", "parameter": [
            {"name": "meeting", "valueString": moved["meeting"]},
            {"name": "start", "valueDateTime": START},
            {"name": "end", "valueDateTime": END},
        ]},
        headers={**FHIR_JSON, "If-Match": f'W/"{version}"'},
    )  # fmt: skip
    refused(response, 412)
    assert ok(system.sip.get(f"/fhir/Appointment/{meeting_id}"))["participant"][1]["status"] == (
        "accepted"
    )


def test_the_persons_log_extract_lists_who_read_their_meeting(system):
    plan_id, personnummer = _plan(system)
    meeting_id = ok(_invite(system, plan_id))["id"]
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(municipality.get(f"/fhir/Appointment/{meeting_id}"))
    _found(municipality, "Appointment", actor=MUNICIPALITY)
    answered = _post_answer(municipality, _answer(meeting_id, "accepted"))
    ok(system.sip.get(f"/fhir/AppointmentResponse/{answered.json()['id']}"))
    person = _patient(system, personnummer)
    extract = ok(person.get(f"/fhir/Patient/{personnummer}/$access-log"))
    lines = [(e["organization"], e["what"]) for e in extract["entries"]]
    assert (MUNICIPALITY, "read your SIP meeting") in lines
    assert (REGION, "read an answer to an invitation to your SIP meeting") in lines
    # The municipality's search is logged under the person too, naming the meeting.
    assert lines.count((MUNICIPALITY, "read your SIP meeting")) >= 2


def test_the_capability_statement_and_operation_definitions(system):
    statement = ok(system.without_token.sip.get("/fhir/metadata"))
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    searched = {p["name"] for p in resources["Appointment"]["searchParam"]}
    assert {"actor", "participant", "part-status", "date", "status", "based-on",
            "supporting-info"} <= searched  # fmt: skip
    assert {p["name"] for p in resources["AppointmentResponse"]["searchParam"]} >= {
        "appointment",
        "actor",
    }
    assert "create" in [i["code"] for i in resources["AppointmentResponse"]["interaction"]]
    operations = {o["name"]: o["definition"] for o in resources["CarePlan"]["operation"]}
    for name in ("invite-to-meeting", "answer-meeting", "reschedule-meeting", "cancel-meeting"):
        served = operations[name].partition("/fhir")[2]
        assert ok(system.sip.get(f"/fhir{served}"))["code"] == name


def test_an_invitation_is_disclosed_as_the_plans_entries_are(system):
    """The meeting is the organiser's entry: an organisation taking part that the person's
    consent does not cover (a school) neither sees nor answers it, while the municipality,
    covered, does; the school's own answer would be its entry, and no one's consent shows the
    region's meeting to it."""
    school = "SE2120000357-S0001"
    personnummer = new_personnummer()
    created_or_ok(
        system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    )
    plan_id = created_or_ok(
        system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    )["id"]
    prepare_for_activation(system.sip, plan_id)
    ok(run(system.sip, plan_id, "invite-organization", organization=school, kind="other"))
    meeting_id = ok(_invite(system, plan_id, organization=[MUNICIPALITY, school], participant=[]))[
        "id"
    ]
    at_school = system.as_caller(organization=school).sip
    assert at_school.get(f"/fhir/Appointment/{meeting_id}").status_code == 404
    assert meeting_id not in str(_found(at_school, "Appointment"))
    refused(_post_answer(at_school, _answer(meeting_id, "accepted")), 409)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert ok(municipality.get(f"/fhir/Appointment/{meeting_id}"))["id"] == meeting_id
    statuses = [
        p["status"] for p in ok(system.sip.get(f"/fhir/Appointment/{meeting_id}"))["participant"]
    ]
    assert statuses == ["accepted", "needs-action", "needs-action"]


def test_a_relative_waiting_for_the_persons_approval_is_not_invited_yet(system):
    plan_id, personnummer = _plan(system)
    ok(system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate"))
    ok(run(system.sip, plan_id, "add-participant", kind="relative", name="Pappa",
           personAgrees=True))  # fmt: skip
    refused(_invite(system, plan_id, participant=["participant-3"]), 409, "participant")
    person = _patient(system, personnummer)
    ok(run(person, plan_id, "approve-changes", approvedBy="person"))
    invited = ok(_invite(system, plan_id, participant=["participant-3"]))
    assert invited["participant"][-1]["actor"]["display"] == "Pappa"
