"""My unit (Min enhet) and a stay's page over real HTTP: both services and the web client on
loopback ports, stays made through the SIP service, users of the demo signed in through the
development sign-in and submitting the stay's forms as a browser would. What the pages show
is what the API gives the user: an outsider's unit sees none of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.demo_identities import MUNICIPALITY, REGION, STAY_PERSON
from services.demo import load_demo
from services.web import texts
from tests.discharge_http import (
    STAFF_SCOPES,
    consent_to_the_stay,
    log_extract,
    noticed_over_http,
    noticed_through_the_application,
    stays_of,
    told,
)
from tests.discharge_http import WARD as ADMITTING_WARD
from tests.fhir_data import FHIR_JSON, new_personnummer, parameters
from tests.web_client import (
    Web,
    WebUser,
    dashed,
    demo_web_fixtures,
    field_error,
    input_value,
    text_of,
    version_on,
)

WARD = "SE2321000032-WARD9"  # the hospital's ward, a unit of the demo region


web, browsers = demo_web_fixtures()


def consented(web: Web) -> str:
    """A new person who consents to the region and the municipality sharing: their number."""
    personnummer = new_personnummer("19440404")
    consent_to_the_stay(web.region, personnummer, organizations=(REGION, MUNICIPALITY))
    return personnummer


def noticed_stay(web: Web) -> str:
    """A stay admitted today at the region's ward, its notice sent to the demo coordinators'
    units: the region's as primary care, the municipality's as social services. Its id."""
    ward = web.system.as_caller("professional", REGION, unit=WARD, scopes=STAFF_SCOPES).sip
    return noticed_over_http(
        ward, consented(web), told((REGION, REGION), (MUNICIPALITY, MUNICIPALITY))
    )


def late_stay(web: Web) -> str:
    """A stay of last week through the application (the steps dated then): the person ready
    five days ago and the SIP never called, so the SIP call is overdue. Its id."""
    stay_id, _ = noticed_through_the_application(
        stays_of(web.system), consented(web), organization=REGION, ward=WARD,
        primary_care=(REGION, REGION), municipality=(MUNICIPALITY, MUNICIPALITY),
        at=datetime.now(UTC) - timedelta(days=7), notice_after=timedelta(hours=1),
        estimated_after=timedelta(days=9), ready_after=timedelta(days=2),
        care_contact="Sköterska Svensson",
    )  # fmt: skip
    return stay_id


def test_my_unit_lists_the_stays_with_their_clocks(web: Web, browsers: Any) -> None:
    fresh, late = noticed_stay(web), late_stay(web)
    page = browsers("region-coordinator").get("/unit")
    assert page.status_code == 200, page.text
    assert f'href="/stays/{fresh}"' in page.text and f'href="/stays/{late}"' in page.text
    assert page.text.count("<h1") == 1 and 'href="/unit"' in page.text  # in the menu
    # Overdue first, in red and in words (not colour only).
    assert page.text.index(f"/stays/{late}") < page.text.index(f"/stays/{fresh}")
    row = page.text.split(f'href="/stays/{late}"')[1].split("</tr>")[0]
    assert '<strong class="overdue">Försenad' in row and "Kalla till SIP" in row
    fresh_row = page.text.split(f'href="/stays/{fresh}"')[1].split("</tr>")[0]
    assert re.search(r"\d+ (tim|dygn) kvar", fresh_row) and "Försenad" not in fresh_row


def test_the_demo_has_a_stay_ready_for_discharge_with_its_sip_call_coming_up(
    web: Web, browsers: Any
) -> None:
    """`sip up --demo` seeds one stay in progress (services/demo.py), once: admitted, the
    notice sent to the demo units and confirmed, the person ready for discharge, the SIP call
    due within three days; the region's unit finds it, the outsider's does not."""
    api = web.region.sip
    found = api.post("/fhir/Encounter/_search", data={
        "subject:identifier": f"{PERSONNUMMER_SYSTEM}|{STAY_PERSON.personnummer}"})  # fmt: skip
    assert found.status_code == 200 and found.json()["total"] == 1, found.text
    stay_id = found.json()["entry"][0]["resource"]["id"]
    sip_call = api.get(f"/fhir/Task/{stay_id}.sip-call")
    assert sip_call.status_code == 200, sip_call.text
    task = sip_call.json()
    assert task["status"] == "in-progress"  # the care contact named, the SIP not yet called
    due = datetime.fromisoformat(task["restriction"]["period"]["end"].replace("Z", "+00:00"))
    assert datetime.now(UTC) < due <= datetime.now(UTC) + timedelta(hours=72)
    notice = api.get(f"/fhir/Task/{stay_id}.admission-notice").json()
    assert notice["status"] == "completed"
    page = browsers("region-coordinator").get("/unit")
    row = page.text.split(f'href="/stays/{stay_id}"')[1].split("</tr>")[0]
    assert "Utskrivningsklar" in row and "Försenad" not in row
    assert re.search(r"\d+ (tim|dygn) kvar", row), row
    assert f"/stays/{stay_id}" not in browsers("outsider-coordinator").get("/unit").text
    # Loaded again (a second `sip up --demo`): still one stay.
    lines = load_demo(web.system.sip_url, web.system.consent_url, web.system.issuer)
    assert f"{STAY_PERSON.name}: already loaded" in lines
    again = api.post("/fhir/Encounter/_search", data={
        "subject:identifier": f"{PERSONNUMMER_SYSTEM}|{STAY_PERSON.personnummer}"})  # fmt: skip
    assert again.json()["total"] == 1


def test_an_outsider_unit_sees_none_of_it(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    outsider = browsers("outsider-coordinator")
    page = outsider.get("/unit")
    assert page.status_code == 200 and stay_id not in page.text
    assert "Inga pågående vistelser rör din enhet." in text_of(page)
    assert outsider.get(f"/stays/{stay_id}").status_code == 404
    outsider.get("/unit")
    posted = outsider.submit(f"/stays/{stay_id}/confirm-receipt", {"version": "3"})
    assert posted.status_code == 404
    api = web.system.as_caller("coordinator", REGION, unit=REGION).sip
    stay = api.get(f"/fhir/Encounter/{stay_id}").json()
    assert "received" not in str(stay), "nothing was written"


def test_a_recipient_confirms_receipt_and_names_the_care_contact(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")
    page = region.get(f"/stays/{stay_id}")
    assert page.status_code == 200, page.text
    shown = text_of(page)
    assert "mottagandet inte bekräftat" in shown and "Fast vårdkontakt: inte utsedd" in shown
    assert 'id="form-confirm-receipt"' in page.text and 'id="form-name-care-contact"' in page.text
    assert 'id="form-discharge"' not in page.text  # the ward's step, not this unit's
    done = region.submit_form(page, "form-confirm-receipt")
    assert done.status_code == 200 and "Mottagandet är bekräftat." in text_of(done)
    assert 'id="form-confirm-receipt"' not in done.text
    named = region.submit_form(done, "form-name-care-contact", name="Sköterska Svensson")
    assert named.status_code == 200, named.text
    assert "Fast vårdkontakt: Sköterska Svensson" in text_of(named)
    # The municipality sees the stay and its own receipt to confirm, not the care contact form.
    municipality = browsers("municipality-coordinator").get(f"/stays/{stay_id}")
    assert 'id="form-confirm-receipt"' in municipality.text
    assert 'id="form-name-care-contact"' not in municipality.text


def test_the_forms_errors_stand_beside_their_fields(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")
    page = region.get(f"/stays/{stay_id}")
    empty = region.submit_form(page, "form-name-care-contact", name="  ")
    assert empty.status_code == 400
    assert (
        field_error(empty, "name-care-contact-name")
        == "Fyll i fast vårdkontakt (namn och befattning)."
    )
    # A stale version: someone else changed the stay first; nothing is written twice.
    stale = region.submit_form(page, "form-confirm-receipt")
    assert stale.status_code == 200
    again = region.submit_form(page, "form-confirm-receipt")
    assert again.status_code == 409 and "Någon annan har ändrat vistelsen" in text_of(again)
    # Without the version, and without the CSRF token.
    region.get(f"/stays/{stay_id}")
    unversioned = region.submit(f"/stays/{stay_id}/name-care-contact", {"name": "X"})
    assert unversioned.status_code == 400
    assert "Formuläret saknar vistelsens version." in text_of(unversioned)
    assert (
        region.submit(
            f"/stays/{stay_id}/name-care-contact", {"name": "X", "version": "9"}, csrf=False
        ).status_code
        == 403
    )
    assert region.get(f"/stays/{stay_id}").status_code == 200
    assert region.submit(f"/stays/{stay_id}/no-such-step", {"version": "1"}).status_code == 404
    assert region.get("/stays/not a stay").status_code == 404


def test_a_refusal_of_the_api_is_said_in_swedish(web: Web, browsers: Any) -> None:
    """The municipality may not name the care contact: the API refuses, the page says why."""
    stay_id = noticed_stay(web)
    municipality = browsers("municipality-coordinator")
    page = municipality.get(f"/stays/{stay_id}")
    version = page.text.split('name="version" value="')[1].split('"')[0]
    refused = municipality.submit(
        f"/stays/{stay_id}/name-care-contact", {"name": "Någon", "version": version}
    )
    assert refused.status_code == 409, refused.text
    assert "Fast vårdkontakt utses av primärvården" in text_of(refused)


def test_a_stay_page_shows_its_steps_and_the_plan_it_called(web: Web, browsers: Any) -> None:
    stay_id = late_stay(web)
    region = browsers("region-coordinator")
    page = region.get(f"/stays/{stay_id}")
    shown = text_of(page)
    assert "Fast vårdkontakt: Sköterska Svensson" in shown
    assert "Utskrivningsklar: meddelat" in shown
    assert "Försenad" in shown  # the SIP call, in the duties' table
    called = region.submit_form(page, "form-call-sip", title="SIP efter utskrivning")
    assert called.status_code == 200, called.text
    # The plan it called, linked (not the menu's "/plans/new").
    plan_link = re.search(r'href="/plans/([0-9a-f-]{36})"', called.text)
    assert plan_link, called.text
    assert region.get(f"/plans/{plan_link[1]}").status_code == 200


def test_a_deviation_the_legal_clock_raised_is_open_against_us_with_its_source_in_swedish(
    web: Web, browsers: Any
) -> None:
    """The SIP called days late: the clock raises the missed deadline on the plan against
    primary care (the region's unit), whose worklist lists it among the open deviations
    against it, saying in Swedish what raised it; the municipality's does not."""
    stay_id = late_stay(web)
    region = browsers("region-coordinator")
    page = region.get(f"/stays/{stay_id}")
    called = region.submit_form(page, "form-call-sip", title="SIP efter utskrivning")
    assert called.status_code == 200, called.text
    found = re.search(r'href="/plans/([0-9a-f-]{36})"', called.text)
    assert found, called.text
    plan_id = found[1]
    assert f"/plans/{plan_id}" not in region.get("/worklist?filter=deviations").text
    stays_of(web.system).check_deadlines(now=datetime.now(UTC))
    listed = region.get("/worklist?filter=deviations")
    assert listed.status_code == 200, listed.text
    row = listed.text.split(f'href="/plans/{plan_id}"')[1].split("</tr>")[0]
    assert "1 öppen avvikelse" in row
    assert f"{texts.MISSED_DEADLINE}: Kalla till SIP, senast" in row
    plan = text_of(region.get(f"/plans/{plan_id}"))
    assert f"{texts.MISSED_DEADLINE}: Kalla till SIP, senast" in plan
    assert f'href="/stays/{stay_id}"' in region.get(f"/plans/{plan_id}").text
    municipality = browsers("municipality-coordinator")
    assert f"/plans/{plan_id}" not in municipality.get("/worklist?filter=deviations").text


def unread_count(unit_page: Any) -> int:
    found = re.search(r"\((\d+) olästa av", text_of(unit_page))
    assert found, text_of(unit_page)
    return int(found.group(1))


def message_ids(web: Web, stay_id: str, category: str = "message") -> list[str]:
    """The stay's messages the units wrote (or, by category, its admission notice)."""
    api = web.system.as_caller("coordinator", REGION, unit=REGION).sip
    query = {"encounter": f"Encounter/{stay_id}", "category": category}
    found = api.get("/fhir/Communication", params=query)
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


def test_a_message_about_a_stay_is_read_by_the_unit_it_went_to(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")
    thread = region.get(f"/stays/{stay_id}/messages")
    assert thread.status_code == 200, thread.text
    assert "Meddelanden (1)" in text_of(thread)  # the admission notice
    sent = region.submit_form(
        thread, "form-message", recipient=MUNICIPALITY, text="Hemtjänsten behöver ses över."
    )
    assert sent.status_code == 200 and "Meddelandet är skickat." in text_of(sent)
    # The form sent twice (a double click): one message.
    region.submit_form(
        thread, "form-message", recipient=MUNICIPALITY, text="Hemtjänsten behöver ses över."
    )
    [message_id] = message_ids(web, stay_id)
    municipality = browsers("municipality-coordinator")
    unit = municipality.get("/unit")
    row = unit.text.split(f'id="form-open-{message_id}"')[0].rsplit("<tr>", 1)[1]
    assert "Oläst" in row
    unread = unread_count(unit)  # this message, and the notices of this module's stays
    opened = municipality.submit_form(unit, f"form-open-{message_id}")
    assert opened.status_code == 200 and f"/stays/{stay_id}/messages" in str(opened.url)
    assert "Hemtjänsten behöver ses över." in text_of(opened)
    assert opened.text.count("Oläst") == 1  # the stay's notice, still
    assert unread_count(municipality.get("/unit")) == unread - 1
    # The sender sees the receipt.
    assert "läst 20" in text_of(region.get(f"/stays/{stay_id}/messages"))


def test_a_notice_is_in_my_units_messages_and_opening_it_confirms_receipt(
    web: Web, browsers: Any
) -> None:
    stay_id = noticed_stay(web)
    [notice] = message_ids(web, stay_id, "admission-notice")
    municipality = browsers("municipality-coordinator")
    unit = municipality.get("/unit")
    row = unit.text.split(f'id="form-open-{notice}"')[0].rsplit("<tr>", 1)[1]
    assert "Oläst" in row and "Inskrivningsmeddelande" in row and ADMITTING_WARD in row
    stay_page = municipality.get(f"/stays/{stay_id}")
    assert 'id="form-confirm-receipt"' in stay_page.text
    opened = municipality.submit_form(unit, f"form-open-{notice}")
    assert opened.status_code == 200 and "Beräknad utskrivning" in text_of(opened)
    # The notice's read receipt is the stay's receipt: the stay's form is gone.
    assert 'id="form-confirm-receipt"' not in municipality.get(f"/stays/{stay_id}").text
    outsider = browsers("outsider-coordinator")
    assert notice not in outsider.get("/unit").text
    assert outsider.submit(f"/messages/{notice}/open").status_code == 404


def test_the_message_forms_errors(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")
    thread = region.get(f"/stays/{stay_id}/messages")
    empty = region.submit_form(thread, "form-message", text="   ")
    assert empty.status_code == 422
    assert field_error(empty, "text") == "Skriv meddelandet."
    assert field_error(empty, "recipient") == "Välj minst en mottagare."
    # A unit the stay does not name: the API refuses, the page says it beside the recipients.
    stranger = region.submit_form(
        thread, "form-message", recipient="SE2120001231-DEMO3", text="Hej"
    )
    assert 400 <= stranger.status_code < 500, stranger.text
    assert field_error(stranger, "recipient"), stranger.text
    assert message_ids(web, stay_id) == []
    # Only the sender corrects a message: the municipality's "correction" is refused.
    region.submit_form(thread, "form-message", recipient=MUNICIPALITY, text="Fel datum.")
    [first] = message_ids(web, stay_id)
    municipality = browsers("municipality-coordinator")
    reply = municipality.get(f"/stays/{stay_id}/messages?reply={first}")
    refused = municipality.submit_form(reply, "form-message", text="Rättat", correction="true")
    assert 400 <= refused.status_code < 500 and field_error(refused, "correction"), refused.text
    answered = municipality.submit_form(reply, "form-message", text="Tack, vi tar det.")
    assert answered.status_code == 200 and len(message_ids(web, stay_id)) == 2


def test_an_outsider_neither_reads_nor_writes_a_stays_messages(web: Web, browsers: Any) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")
    thread = region.get(f"/stays/{stay_id}/messages")
    region.submit_form(thread, "form-message", recipient=MUNICIPALITY, text="Bara för oss.")
    [message_id] = message_ids(web, stay_id)
    outsider = browsers("outsider-coordinator")
    unit = outsider.get("/unit")
    assert message_id not in unit.text and "Bara för oss." not in unit.text
    assert outsider.get(f"/stays/{stay_id}/messages").status_code == 404
    posted = outsider.submit(
        f"/stays/{stay_id}/messages", {"recipient": MUNICIPALITY, "text": "Hej"}
    )
    assert posted.status_code == 404
    outsider.get("/unit")
    assert outsider.submit(f"/messages/{message_id}/open").status_code == 404
    assert message_ids(web, stay_id) == [message_id]


def test_a_plans_thread(web: Web, browsers: Any) -> None:
    plan_id = web.demo["active"]
    region = browsers("region-coordinator")
    page = region.get(f"/plans/{plan_id}")
    assert f'href="/plans/{plan_id}/messages"' in page.text
    thread = region.get(f"/plans/{plan_id}/messages")
    assert thread.status_code == 200, thread.text
    sent = region.submit_form(thread, "form-message", recipient=MUNICIPALITY, text="Uppföljning?")
    assert sent.status_code == 200, sent.text
    assert "Uppföljning?" in text_of(browsers("municipality-coordinator").get("/unit"))


def invite_the_municipality(web: Web, start: str = "2027-01-20T10:00:00+01:00") -> str:
    """A meeting of the demo's active plan the region invites the municipality to: the
    Appointment's id."""
    invited = web.region.sip.post(
        f"/fhir/CarePlan/{web.demo['active']}/$invite-to-meeting",
        json=parameters(
            start=start, end=start.replace("T10:", "T11:"), location="Vårdcentralen",
            organization=[MUNICIPALITY],
        ),
        headers=FHIR_JSON,
    )  # fmt: skip
    assert invited.status_code in (200, 201), invited.text
    return invited.json()["id"]


def answers_to(web: Web, appointment_id: str) -> list[dict[str, Any]]:
    found = web.region.sip.get(
        "/fhir/AppointmentResponse", params={"appointment": f"Appointment/{appointment_id}"}
    )
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def test_an_invitation_is_answered_from_my_unit(web: Web, browsers: Any) -> None:
    accepted, proposed = (
        invite_the_municipality(web),
        invite_the_municipality(web, "2027-01-21T10:00:00+01:00"),
    )
    municipality = browsers("municipality-coordinator")
    page = municipality.get("/unit")
    assert (
        f'id="form-answer-{accepted}"' in page.text and f'id="form-answer-{proposed}"' in page.text
    )
    assert "2027-01-20 10:00" in text_of(page)
    done = municipality.submit_form(page, f"form-answer-{accepted}", answer="accepted")
    assert done.status_code == 200 and "Svaret är skickat: vi kommer." in text_of(done)
    assert f'id="form-answer-{accepted}"' not in done.text  # answered: no longer waiting
    [answer] = answers_to(web, accepted)
    assert answer["participantStatus"] == "accepted"
    # Another time proposed.
    other = municipality.submit_form(
        done, f"form-answer-{proposed}", answer="tentative", start="2027-01-22T13:00",
        end="2027-01-22T14:00", comment="Vi kan på eftermiddagen.",
    )  # fmt: skip
    assert other.status_code == 200, other.text
    [answer] = answers_to(web, proposed)
    assert (
        answer["participantStatus"] == "tentative"
        and answer["comment"] == "Vi kan på eftermiddagen."
    )
    assert answer["start"].startswith("2027-01-22T12:00")  # 13:00 in Sweden


def test_the_answer_forms_errors(web: Web, browsers: Any) -> None:
    appointment_id = invite_the_municipality(web, "2027-02-03T10:00:00+01:00")
    municipality = browsers("municipality-coordinator")
    page = municipality.get("/unit")
    form = f"form-answer-{appointment_id}"
    nothing = municipality.submit_form(page, form)
    assert nothing.status_code == 422
    assert field_error(nothing, f"{appointment_id}-answer") == "Välj ett svar."
    no_time = municipality.submit_form(page, form, answer="tentative", start="2027-02-04T10:00")
    assert no_time.status_code == 422
    assert (
        field_error(no_time, f"{appointment_id}-end")
        == "Ange föreslaget slut: datum och klockslag."
    )
    backwards = municipality.submit_form(
        page, form, answer="tentative", start="2027-02-04T10:00", end="2027-02-04T09:00"
    )
    assert field_error(backwards, f"{appointment_id}-end") == "Slutet ska vara efter början."
    assert answers_to(web, appointment_id) == []
    # The plan changed since the page was shown (another invitation): 409, answer again.
    invite_the_municipality(web, "2027-02-05T10:00:00+01:00")
    stale = municipality.submit_form(page, form, answer="declined")
    assert stale.status_code == 409 and "Inbjudan har ändrats" in text_of(stale)
    assert answers_to(web, appointment_id) == []
    again = municipality.submit_form(stale, form, answer="declined")
    assert (
        again.status_code == 200
        and answers_to(web, appointment_id)[0]["participantStatus"] == "declined"
    )


def test_an_outsider_sees_and_answers_no_invitation(web: Web, browsers: Any) -> None:
    appointment_id = invite_the_municipality(web, "2027-03-03T10:00:00+01:00")
    outsider = browsers("outsider-coordinator")
    page = outsider.get("/unit")
    assert appointment_id not in page.text
    assert "Inga mötesinbjudningar väntar på svar." in text_of(page)
    posted = outsider.submit(
        f"/invitations/{appointment_id}/answer", {"answer": "accepted", "version": "99"}
    )
    assert posted.status_code == 404
    # The region organises it and was not invited: nothing to answer there either.
    assert appointment_id not in browsers("region-coordinator").get("/unit").text
    assert answers_to(web, appointment_id) == []


# The forms that make a stay and send its notice, and the region's record that its outpatient
# care was unavailable: each posted through the Encounter operations the API offers.


def stays_seen(web: Web, organization: str = REGION) -> list[dict[str, Any]]:
    """The stays the API shows a coordinator of `organization` (the hospital's, by default)."""
    api = web.system.as_caller("coordinator", organization, unit=organization).sip
    found = api.get("/fhir/Encounter", params={"_count": "1000"})
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def stay_seen(web: Web, stay_id: str) -> dict[str, Any]:
    api = web.system.as_caller("coordinator", REGION, unit=REGION).sip
    read = api.get(f"/fhir/Encounter/{stay_id}")
    assert read.status_code == 200, read.text
    return read.json()


def admitted_from_the_web(web: Web, region: WebUser) -> str:
    """A consenting person admitted through the admission form, at the coordinator's own unit
    (so its ward's forms are theirs), the need for care judged for both principals: its id."""
    page = region.get("/stays/admit")
    assert page.status_code == 200, page.text
    admitted = region.submit_form(page, "form-admit", patient=dashed(consented(web)))
    assert admitted.status_code == 200, admitted.text
    stay_id = str(admitted.url).split("/stays/")[1].split("?")[0]
    judged = region.submit_form(
        admitted, "form-judge-care-needed", principal=["region", "municipality"]
    )
    assert judged.status_code == 200, judged.text
    return stay_id


def test_a_patient_is_admitted_and_the_notice_sent_from_the_web(web: Web, browsers: Any) -> None:
    region = browsers("region-coordinator")
    unit = region.get("/unit")
    assert 'href="/stays/admit"' in unit.text
    form = region.get("/stays/admit")
    assert form.status_code == 200 and form.text.count("<h1") == 1
    assert input_value(form.text, "ward") == REGION  # the user's unit, until they change it
    personnummer = consented(web)
    admitted = region.submit_form(
        form, "form-admit", patient=dashed(personnummer), admittedAt="2026-01-05T08:30"
    )
    assert admitted.status_code == 200, admitted.text
    assert "Personen är inskriven." in text_of(admitted)
    assert "/stays/" in str(admitted.url) and personnummer not in str(admitted.url)
    region.assert_no_personnummer_in_urls(personnummer)
    stay_id = str(admitted.url).split("/stays/")[1].split("?")[0]
    stay = stay_seen(web, stay_id)
    assert stay["subject"]["identifier"]["value"] == personnummer
    assert stay["period"]["start"].startswith("2026-01-05T07:30")  # 08:30 in Sweden
    judged = region.submit_form(
        admitted, "form-judge-care-needed", principal=["region", "municipality"]
    )
    assert 'id="form-send-admission-notice"' in judged.text
    sent = region.submit_form(
        judged, "form-send-admission-notice",
        **{"recipient-primary-care-organization": REGION,
           "recipient-primary-care-unit": "SE2321000032-VC1",
           "recipient-social-services-organization": MUNICIPALITY,
           "recipient-social-services-unit": MUNICIPALITY},
        estimatedDischarge="2026-01-12T10:00",
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    shown = text_of(sent)
    assert "Inskrivningsmeddelandet är skickat." in shown
    assert "beräknad utskrivning 2026-01-12 10:00" in shown
    assert "Primärvård: SE2321000032-VC1" in shown and "socialtjänst: " + MUNICIPALITY in shown
    assert 'id="form-send-admission-notice"' not in sent.text  # sent once
    # Each form's write is in the person's log extract as the signed-in coordinator's own.
    writes = sorted(
        (record["subtype"][0]["code"], reference)
        for record in log_extract(web.system, personnummer, REGION)
        if record["subtype"][0]["code"] in ("create", "operation")
        and record["agent"][0]["who"] == {"identifier": {"value": "region-coordinator"}}
        for reference in [entity["what"].get("reference") for entity in record["entity"]]
        if reference is not None
    )
    assert [write for write in writes if write[1].startswith("Encounter/")] == [
        ("create", f"Encounter/{stay_id}/_history/1"),  # admitted
        ("operation", f"Encounter/{stay_id}/_history/2"),  # the need for care judged
        ("operation", f"Encounter/{stay_id}/_history/3"),  # the notice sent
    ], writes
    assert [code for code, ref in writes if ref.startswith("Communication/")] == ["create"]
    # The municipality it went to sees the stay and its receipt to confirm.
    municipality = browsers("municipality-coordinator").get(f"/stays/{stay_id}")
    assert municipality.status_code == 200 and 'id="form-confirm-receipt"' in municipality.text


def test_the_admission_forms_errors_and_refusals(web: Web, browsers: Any) -> None:
    region = browsers("region-coordinator")
    form = region.get("/stays/admit")
    before = len(stays_seen(web))
    empty = region.submit_form(form, "form-admit", patient=" ", ward="")
    assert empty.status_code == 400
    assert field_error(empty, "admit-patient") == "Fyll i personnummer."
    assert field_error(empty, "admit-ward") == "Fyll i avdelning."
    assert 'aria-describedby="admit-patient-hint admit-patient-error-1"' in empty.text
    mistyped = region.submit_form(form, "form-admit", patient="19121212-1213")
    assert mistyped.status_code == 400
    assert "kontrollsiffran" in (field_error(mistyped, "admit-patient") or "")
    assert input_value(mistyped.text, "patient") == "19121212-1213"  # kept to correct
    # The API refuses an admission dated ahead: nothing is written, the field says so.
    ahead = region.submit_form(
        form, "form-admit", patient=dashed(consented(web)), admittedAt="2099-01-01T10:00"
    )
    assert ahead.status_code == 400, ahead.text
    assert field_error(ahead, "admit-admittedAt") == "Inskrivningen kan inte ligga senare än nu."
    # A role that takes no step of a stay (the auditor), and a post without the CSRF token.
    auditor = browsers("region-auditor")
    auditor_form = auditor.get("/stays/admit")
    refused = auditor.submit_form(auditor_form, "form-admit", patient=dashed(consented(web)))
    assert refused.status_code == 403, refused.text
    assert "Din roll (granskare) får inte skriva in en patient" in text_of(refused)
    forged = region.submit("/stays/admit", {"patient": dashed(consented(web))}, csrf=False)
    assert forged.status_code == 403
    assert len(stays_seen(web)) == before, "nothing was written"
    person = browsers("person").get("/stays/admit")
    assert person.status_code == 200 and 'id="form-admit"' not in person.text  # to /me


def stays_of_person(web: Web, personnummer: str) -> list[str]:
    return [s["id"] for s in stays_seen(web) if s["subject"]["identifier"]["value"] == personnummer]


def test_the_admission_form_posted_twice_makes_one_stay(web: Web, browsers: Any) -> None:
    """A double click, or the post sent again: both answers lead to the stay the first made.
    The same form sent again for another person is refused beside the personnummer, with a
    fresh key to send it with, and never answered with the first person's stay."""
    region = browsers("region-coordinator")
    action, fields = region.form(region.get("/stays/admit"), "form-admit")
    assert re.fullmatch(r"[0-9a-f]{32}", fields["submission"])
    personnummer = consented(web)
    fields.update(patient=dashed(personnummer))
    first = region.http.post(action, data=fields, follow_redirects=False)
    again = region.http.post(action, data=fields, follow_redirects=False)
    assert first.status_code == again.status_code == 303, again.text
    assert first.headers["location"] == again.headers["location"]
    (stay_id,) = stays_of_person(web, personnummer)
    assert first.headers["location"] == f"/stays/{stay_id}?done=admit"

    other = consented(web)
    resent = region.http.post(
        action, data={**fields, "patient": dashed(other)}, follow_redirects=False
    )
    assert resent.status_code == 409, resent.text
    assert "skrev då in en annan person" in (field_error(resent, "admit-patient") or "")
    assert stay_id not in resent.text and personnummer not in resent.text
    assert input_value(resent.text, "submission") != fields["submission"]
    assert stays_of_person(web, other) == []
    # A fresh form is a fresh admission: the person may be admitted again on purpose.
    second = region.submit_form(region.get("/stays/admit"), "form-admit", patient=dashed(other))
    assert second.status_code == 200, second.text
    assert len(stays_of_person(web, other)) == 1


def test_the_notice_forms_errors_and_refusals(web: Web, browsers: Any) -> None:
    region = browsers("region-coordinator")
    stay_id = admitted_from_the_web(web, region)
    page = region.get(f"/stays/{stay_id}")
    primary = {"recipient-primary-care-organization": REGION,
               "recipient-primary-care-unit": "SE2321000032-VC1"}  # fmt: skip
    nothing = region.submit_form(page, "form-send-admission-notice")
    assert nothing.status_code == 400
    assert field_error(nothing, "send-admission-notice-recipient") == (
        "Fyll i enheter som meddelandet går till."
    )
    assert field_error(nothing, "send-admission-notice-estimatedDischarge") == (
        "Fyll i beräknad utskrivning."
    )
    half = region.submit_form(
        page, "form-send-admission-notice", estimatedDischarge="2030-01-01T10:00",
        **{"recipient-social-services-unit": MUNICIPALITY},
    )  # fmt: skip
    assert field_error(half, "send-admission-notice-recipient") == (
        "Ange både organisation och enhet inom kommunens socialtjänst."
    )
    # Care is needed from both principals: the API refuses a notice to the municipality alone
    # and the page says it beside the recipients, in Swedish, the user's input kept.
    social = {"recipient-social-services-organization": MUNICIPALITY,
              "recipient-social-services-unit": MUNICIPALITY}  # fmt: skip
    alone = region.submit_form(
        page, "form-send-admission-notice", estimatedDischarge="2030-01-01T10:00", **social
    )
    assert alone.status_code == 409, alone.text
    assert "en enhet hos varje huvudman" in (
        field_error(alone, "send-admission-notice-recipient") or ""
    )
    assert input_value(alone.text, "recipient-social-services-unit") == MUNICIPALITY
    both = {**primary, **social}
    # What the API refuses in the values themselves, said beside the field in Swedish.
    notice = "form-send-admission-notice"
    twice = region.submit_form(
        page, notice, estimatedDischarge="2030-01-01T10:00",
        **{**both, "recipient-primary-care-unit": MUNICIPALITY},
    )  # fmt: skip
    assert twice.status_code == 422, twice.text
    recipient_error = "send-admission-notice-recipient"
    assert field_error(twice, recipient_error) == "Varje enhet kan bara anges en gång."
    not_hsa = region.submit_form(
        page, notice, estimatedDischarge="2030-01-01T10:00",
        **{**both, "recipient-primary-care-organization": "Vårdcentralen"},
    )  # fmt: skip
    assert not_hsa.status_code == 400, not_hsa.text
    assert "Ange giltiga HSA-id" in (field_error(not_hsa, recipient_error) or "")
    early = region.submit_form(page, notice, estimatedDischarge="2001-01-01T10:00", **both)
    assert early.status_code == 422, early.text
    assert field_error(early, "send-admission-notice-estimatedDischarge") == (
        "Den beräknade utskrivningen ska ligga efter inskrivningen."
    )
    # An organisation the stay does not concern: not found, nothing written.
    outsider = browsers("outsider-coordinator")
    outsider.get("/unit")
    version = version_on(page)
    posted = outsider.submit(
        f"/stays/{stay_id}/send-admission-notice",
        {"version": version, "estimatedDischarge": "2030-01-01T10:00", **both},
    )
    assert posted.status_code == 404
    # Without the CSRF token: refused before the API is asked.
    forged = region.submit(
        f"/stays/{stay_id}/send-admission-notice",
        {"version": version, "estimatedDischarge": "2030-01-01T10:00", **both},
        csrf=False,
    )
    assert forged.status_code == 403
    assert "stay-admission-notice" not in str(stay_seen(web, stay_id)), "nothing was written"
    # A stale version: the stay changed since the page was shown (the notice sent from
    # another tab): 409, said on the page, and the notice is not sent twice.
    sent = region.submit_form(
        page, "form-send-admission-notice", estimatedDischarge="2030-01-01T10:00", **both
    )
    assert sent.status_code == 200, sent.text
    stale = region.submit_form(
        page, "form-send-admission-notice", estimatedDischarge="2030-02-01T10:00", **both
    )
    assert stale.status_code == 409 and "Någon annan har ändrat vistelsen" in text_of(stale)
    assert "2030-02-01" not in str(stay_seen(web, stay_id))


def test_the_region_records_that_its_outpatient_care_is_unavailable(
    web: Web, browsers: Any
) -> None:
    stay_id = noticed_stay(web)
    region = browsers("region-coordinator")  # primary care the notice went to
    page = region.get(f"/stays/{stay_id}")
    form = "form-record-outpatient-care-unavailable"
    assert f'id="{form}"' in page.text
    empty = region.submit_form(page, form, reason="  ")
    assert empty.status_code == 400
    assert field_error(empty, "record-outpatient-care-unavailable-reason") == "Fyll i skäl."
    # The municipality may not record it: the API refuses, the page says why.
    municipality = browsers("municipality-coordinator")
    theirs = municipality.get(f"/stays/{stay_id}")
    assert f'id="{form}"' not in theirs.text
    refused = municipality.submit(
        f"/stays/{stay_id}/record-outpatient-care-unavailable",
        {"version": version_on(theirs), "reason": "Ingen plats"},
    )
    assert refused.status_code == 409, refused.text
    assert "registreras av sjukhusets avdelning eller av primärvården" in text_of(refused)
    outsider = browsers("outsider-coordinator")
    outsider.get("/unit")
    posted = outsider.submit(
        f"/stays/{stay_id}/record-outpatient-care-unavailable",
        {"version": version_on(page), "reason": "Ingen plats"},
    )
    assert posted.status_code == 404
    forged = region.submit(
        f"/stays/{stay_id}/record-outpatient-care-unavailable",
        {"version": version_on(page), "reason": "Ingen plats"},
        csrf=False,
    )
    assert forged.status_code == 403
    assert "outpatient" not in str(stay_seen(web, stay_id)), "nothing was written"
    recorded = region.submit_form(page, form, reason="Ingen tid hos psykiatrin förrän i mars")
    assert recorded.status_code == 200, recorded.text
    shown = text_of(recorded)
    assert "Det är registrerat att regionens öppna vård inte är tillgänglig." in shown
    assert "Regionens öppna vård inte tillgänglig: registrerat" in shown
    assert "(Ingen tid hos psykiatrin förrän i mars)" in shown
    assert f'id="{form}"' not in recorded.text
    stale = region.submit_form(page, form, reason="Igen")
    assert stale.status_code == 409 and "Någon annan har ändrat vistelsen" in text_of(stale)
    assert "Igen" not in str(stay_seen(web, stay_id))
