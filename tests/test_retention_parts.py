"""A plan's parts kept and erased by their authors' rules (issue 16, docs/decisions/0007): the
free texts a municipality's unit writes are sealed under the person's `municipality` key and
erased five years after the municipality's last entry; the region's under the `region` key,
ten years after the region's last entry. A plan with the municipality's parts erased still
replays, rebuilds and is served, the erased texts named as erased on a date under their rule.
"""

import time
from datetime import timedelta
from uuid import UUID

import pytest

from contracts.canonical import DATA_ABSENT_REASON, EXT_DEVIATION_INTERVENTION, EXT_ERASED
from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.cli import main as sip
from services.common.personal_data.retention import DEFAULT_RULES, RetentionRule
from services.ops import retention
from services.sip.meetings.fhir import PLAN_PARTICIPANT_SYSTEM
from tests.communication_http import MUNICIPAL_UNIT, a_plan, a_stay, message, send
from tests.conftest import new_backend, running_system
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    REGION_NEED,
    active_plan,
    care_plan,
    consent,
    created_or_ok,
    new_personnummer,
    prepare_for_activation,
    run,
)
from tests.test_retention import (  # noqa: F401 (the fixtures are used by name)
    access_log_kept_long,
    forms,
    opened,
    rules,
    scan,
    where,
)

MUNICIPAL_NEED = "Vill få hjälp med tvätten på tisdagar"
MUNICIPAL_GOAL = "Tvättar själv i tvättstugan"
MUNICIPAL_CHANGES = "Tvättid flyttad till onsdagar"
MUNICIPAL_REVIEWED = "Hemtjänstens stöd vid dusch"
REGION_NOTE = "Vill träffa sin läkare varannan vecka"
MUNICIPAL_RULE = DEFAULT_RULES["municipality"].rule
REGION_RULE = DEFAULT_RULES["region"].rule


def municipal_erasure(erased) -> str:
    """A municipal text erased under its default rule, as it is served in its place."""
    return f"erased on {erased.erased_at} under {MUNICIPAL_RULE!r}"


@pytest.fixture
def sqlite_backend(request, tmp_path):
    # The scans read the SQLite files.
    with new_backend("sqlite", tmp_path / "data", request) as backend:
        yield backend


def plan_with_both_parts(system):
    """An active plan with the region's needs and goal and the municipality's need and goal:
    (plan id, personnummer)."""
    plan_id, number = active_plan(system)
    municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
    assert run(municipality.sip, plan_id, "record-need", text=MUNICIPAL_NEED).status_code < 300
    set_goal = run(municipality.sip, plan_id, "set-goal", text=MUNICIPAL_GOAL, need="need-2")
    assert set_goal.status_code < 300, set_goal.text
    follow_up = run(
        municipality.sip, plan_id, "record-follow-up", reviewed=MUNICIPAL_REVIEWED,
        changes=MUNICIPAL_CHANGES,
    )  # fmt: skip
    assert follow_up.status_code < 300, follow_up.text
    assert run(system.sip, plan_id, "record-need", text=REGION_NOTE).status_code < 300
    return plan_id, number


def dues_of(backend, number):
    """The person's keys in the SIP service due some day, by class: {class: Due}."""
    with opened(backend, "sip") as service:
        index = service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, number)
        )
        far = retention.now() + timedelta(days=365 * 40)
        dues = [d for d in retention.plan(service, rules(), far) if d.person_index == index]
    by_class = {d.retention_class: d for d in dues}
    assert len(by_class) == len(dues)
    return by_class


def at(moment):
    return moment.isoformat(timespec="microseconds")


def test_the_municipalitys_parts_are_erased_on_their_date_the_regions_kept(sqlite_backend, capsys):
    backend = sqlite_backend
    with running_system(backend) as system:
        plan_id, number = plan_with_both_parts(system)
        before = system.sip.get(f"/fhir/CarePlan/{plan_id}").text
        assert MUNICIPAL_NEED in before and REGION_NOTE in before
    time.sleep(1)  # the instant below, in whole seconds, is after every entry
    moment = retention.now().isoformat(timespec="seconds")
    dues = dues_of(backend, number)
    municipal, region = dues["municipality"], dues["region"]
    assert municipal.due == municipal.last_entry.replace(year=municipal.last_entry.year + 5)
    assert region.due >= region.last_entry.replace(year=region.last_entry.year + 10)
    assert not municipal.identity and region.identity
    # Sealed: no table of either database holds a phrase of either part in clear.
    assert (
        scan(
            backend.data_dir,
            {MUNICIPAL_NEED, MUNICIPAL_GOAL, MUNICIPAL_CHANGES, MUNICIPAL_REVIEWED},
        )
        == []
    )
    assert scan(backend.data_dir, {REGION_NOTE}) == []
    assert MUNICIPAL_CHANGES in before and MUNICIPAL_REVIEWED in before

    day_after = municipal.due + timedelta(days=1)
    assert day_after < region.due
    capsys.readouterr()
    assert sip(["retention", "run", "--date", at(day_after), *where(backend)]) == 0
    ran = capsys.readouterr().out
    assert ran.count(": erased") == 1 and "municipality key" in ran, ran
    assert "read models rebuilt" in ran
    # A second run on the same date erases nothing more.
    assert sip(["retention", "run", "--date", at(day_after), *where(backend)]) == 0
    assert ": erased" not in capsys.readouterr().out

    with opened(backend, "sip") as service:
        keys = service.application.personal_data
        erased = [row for row in keys.person_keys() if row.erased_at]
        assert [row.retention_class for row in erased] == ["municipality"]
        assert not service.application.person_erased(UUID(plan_id))
    # Nothing of the municipality's texts anywhere; the verification and the rebuild hold.
    assert (
        scan(
            backend.data_dir,
            {MUNICIPAL_NEED, MUNICIPAL_GOAL, MUNICIPAL_CHANGES, MUNICIPAL_REVIEWED},
        )
        == []
    )
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0
    capsys.readouterr()
    assert sip(["audit", "replay", "--plan", plan_id, *where(backend)]) == 0
    replayed = capsys.readouterr().out
    assert f"erased on {erased[0].erased_at}" in replayed and MUNICIPAL_RULE in replayed
    assert REGION_NOTE in replayed and MUNICIPAL_NEED not in replayed

    with running_system(backend) as system:
        served = system.sip.get(f"/fhir/CarePlan/{plan_id}")
        assert served.status_code == 200, served.text
        text = served.text
        assert REGION_NOTE in text and REGION_NEED in text  # the region's entries intact
        assert MUNICIPAL_NEED not in text and MUNICIPAL_GOAL not in text
        assert MUNICIPAL_CHANGES not in text and MUNICIPAL_REVIEWED not in text
        assert f"erased on {erased[0].erased_at}" in text and MUNICIPAL_RULE in text
        as_of = system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": moment})
        assert as_of.status_code == 200, as_of.text
        assert MUNICIPAL_NEED not in as_of.text and MUNICIPAL_RULE in as_of.text
        assert REGION_NOTE in as_of.text
        history = system.sip.get(f"/fhir/CarePlan/{plan_id}/_history")
        assert history.status_code == 200 and MUNICIPAL_GOAL not in history.text
        # The plan goes on: a new municipal entry is sealed under a new municipality key.
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
        again = run(municipality.sip, plan_id, "record-need", text="Ny kommunal anteckning")
        assert again.status_code < 300, again.text
        assert "Ny kommunal anteckning" in system.sip.get(f"/fhir/CarePlan/{plan_id}").text

    # Ten years after the region's last entry (the new municipal one's five passed too), the
    # rest goes: the plan is answered as unknown, and the person's number is nowhere.
    later = dues_of(backend, number)
    last_date = max(d.due for d in later.values()) + timedelta(days=1)
    assert sip(["retention", "run", "--date", at(last_date), *where(backend)]) == 0
    with opened(backend, "sip") as service:
        assert service.application.person_erased(UUID(plan_id))
    assert scan(backend.data_dir, {REGION_NOTE, MUNICIPAL_NEED} | forms(number)) == []
    assert sip(["audit", "verify", *where(backend)]) == 0
    with running_system(backend) as system:
        assert system.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 404


def test_a_new_municipal_entry_moves_the_municipalitys_date_only(backend):
    with running_system(backend) as system:
        plan_id, number = plan_with_both_parts(system)
        first = dues_of(backend, number)
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
        assert run(municipality.sip, plan_id, "record-need", text="Senare").status_code < 300
        then = dues_of(backend, number)
        assert then["municipality"].last_entry > first["municipality"].last_entry
        assert then["municipality"].due > first["municipality"].due
        assert then["region"].last_entry == first["region"].last_entry
        assert then["region"].due == first["region"].due
        # A region entry moves the region's date, not the municipality's.
        assert run(system.sip, plan_id, "record-need", text="Regionens").status_code < 300
        last = dues_of(backend, number)
        assert last["region"].last_entry > then["region"].last_entry
        assert last["municipality"].due == then["municipality"].due


def test_a_plan_a_municipality_started_keeps_its_person_when_its_texts_go(sqlite_backend):
    """The plan's person is under the region's class, its title under its author's: five
    years and a day after a municipality's last entry in a plan it started, the title and
    needs read as erased and the plan is still served to the municipality."""
    backend = sqlite_backend
    title = "Kommunens plan för boendet"
    with running_system(backend) as system:
        number = new_personnummer()
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
        plan = {**care_plan(number, MUNICIPALITY), "title": title}
        made = municipality.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON)
        plan_id = created_or_ok(made)["id"]
        assert run(municipality.sip, plan_id, "record-need", text=MUNICIPAL_NEED).is_success
    dues = dues_of(backend, number)
    assert set(dues) == {"region", "municipality"}
    # The region's key, holding only the person, waits for the municipality's parts.
    assert dues["region"].due >= dues["municipality"].due
    assert "held while" not in dues["municipality"].line("sip")
    day_after = dues["municipality"].due + timedelta(days=1)
    assert sip(["retention", "run", "--date", at(day_after), *where(backend)]) == 0
    assert scan(backend.data_dir, {title, MUNICIPAL_NEED}) == []
    with running_system(backend) as system:
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY)
        served = municipality.sip.get(f"/fhir/CarePlan/{plan_id}")
        assert served.status_code == 200, served.text
        assert served.json()["title"].startswith("erased on ") and MUNICIPAL_RULE in served.text
        assert erasure_marks(served.json()["_title"])[::2] == ("masked", MUNICIPAL_RULE)
        assert MUNICIPAL_NEED not in served.text
    assert sip(["audit", "verify", *where(backend)]) == 0


def test_the_plans_person_key_waits_for_a_longer_kept_part(sqlite_backend):
    """With the municipality's parts kept longer than the region's (a municipality's own
    decision), the region's key, which holds the plan's person, is due with them, never
    before: erasing it would take the plan, and the municipality's parts, with it."""
    backend = sqlite_backend
    with running_system(backend) as system:
        _, number = plan_with_both_parts(system)
    longer = {**rules(), "municipality": RetentionRule("municipality", 15, "kept 15 years")}
    with opened(backend, "sip") as service:
        index = service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, number)
        )
        far = retention.now() + timedelta(days=365 * 40)
        dues = {
            d.retention_class: d
            for d in retention.plan(service, longer, far)
            if d.person_index == index
        }
    region, municipal = dues["region"], dues["municipality"]
    assert region.due == municipal.due > region.rule.due(region.last_entry)
    assert "held while" in region.line("sip") and "held while" not in municipal.line("sip")
    # Ten years and a day after the region's last entry, nothing of the plan is due yet.
    ten_years = region.rule.due(region.last_entry) + timedelta(days=1)
    with opened(backend, "sip") as service:
        assert retention.plan(service, longer, ten_years) == []


REGION_MESSAGE = "Regionen: läkemedelsgenomgång på torsdag"
MUNICIPAL_MESSAGE = "Kommunen: hemtjänsten börjar på måndag"
STAY_MESSAGE = "Avdelningen: utskrivningsklar i morgon"
MUNICIPAL_STAY_MESSAGE = "Kommunen: vi har tagit emot meddelandet"


def payload_of(client, message_id):
    """The message's text as served, and the marks on it (`_contentString`), if any."""
    read = client.get(f"/fhir/Communication/{message_id}")
    assert read.status_code == 200, read.text
    payload = read.json()["payload"][0]
    return payload["contentString"], payload.get("_contentString")


def erasure_marks(element):
    """(data-absent-reason, when, rule) of an erased string's `_element`."""
    by_url = {extension["url"]: extension for extension in element["extension"]}
    erased = {part["url"]: part for part in by_url[EXT_ERASED]["extension"]}
    return (
        by_url[DATA_ABSENT_REASON]["valueCode"],
        erased["erasedAt"]["valueDateTime"],
        erased["rule"]["valueString"],
    )


def test_a_municipalitys_messages_are_erased_on_its_date_the_regions_and_the_stay_kept(
    sqlite_backend,
):
    """A message's text is its sender organisation's record: a municipality's message about
    a plan or a stay goes five years and a day after the municipality's last entry, while the
    region's messages about them and the stay itself (the hospital's patient record, under
    the region's class) are kept."""
    backend = sqlite_backend
    with running_system(backend) as system:
        number = new_personnummer()
        plan = a_plan(system, number)
        stay = a_stay(system, number)
        ward = system.as_caller("professional", REGION, unit=stay["ward"]).sip
        municipality = system.as_caller("coordinator", MUNICIPALITY).sip
        social = system.as_caller("professional", MUNICIPALITY, unit=MUNICIPAL_UNIT).sip
        sent = {
            REGION_MESSAGE: send(
                system.sip, message(REGION_MESSAGE, plan=plan["id"], to=(MUNICIPALITY,))
            ),
            MUNICIPAL_MESSAGE: send(
                municipality, message(MUNICIPAL_MESSAGE, plan=plan["id"], to=(REGION,))
            ),
            STAY_MESSAGE: send(ward, message(STAY_MESSAGE, stay=stay["id"], to=(MUNICIPAL_UNIT,))),
            MUNICIPAL_STAY_MESSAGE: send(
                social, message(MUNICIPAL_STAY_MESSAGE, stay=stay["id"], to=(REGION,))
            ),
        }
        for answer in sent.values():
            assert answer.status_code == 201, answer.text
        ids = {text: answer.json()["id"] for text, answer in sent.items()}
    assert scan(backend.data_dir, set(ids)) == []  # sealed, every one
    dues = dues_of(backend, number)
    municipal, region = dues["municipality"], dues["region"]
    # The municipality's key holds its two messages' texts, nothing of the stay or the plan.
    assert municipal.records == {UUID(ids[MUNICIPAL_MESSAGE]), UUID(ids[MUNICIPAL_STAY_MESSAGE])}
    assert municipal.due == municipal.last_entry.replace(year=municipal.last_entry.year + 5)
    assert UUID(stay["id"]) in region.records and UUID(plan["id"]) in region.records

    day_after = municipal.due + timedelta(days=1)
    assert day_after < region.due
    assert sip(["retention", "run", "--date", at(day_after), *where(backend)]) == 0
    with opened(backend, "sip") as service:
        erased = [row for row in service.application.personal_data.person_keys() if row.erased_at]
    assert [row.retention_class for row in erased] == ["municipality"]
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0

    with running_system(backend) as system:
        ward = system.as_caller("professional", REGION, unit=stay["ward"]).sip
        for text in (MUNICIPAL_MESSAGE, MUNICIPAL_STAY_MESSAGE):
            shown, marks = payload_of(system.sip, ids[text])
            assert shown == municipal_erasure(erased[0]), shown
            # Marked, so a record system tells the erasure from a text someone wrote.
            assert erasure_marks(marks) == ("masked", erased[0].erased_at, MUNICIPAL_RULE)
        assert payload_of(system.sip, ids[REGION_MESSAGE]) == (REGION_MESSAGE, None)
        assert payload_of(ward, ids[STAY_MESSAGE]) == (STAY_MESSAGE, None)
        served = ward.get(f"/fhir/Encounter/{stay['id']}")
        assert served.status_code == 200 and number in served.text, served.text


MUNICIPAL_INTERVENTION = "Hemtjänst med stöd vid dusch på fredagar"
REGION_INTERVENTION = "Distriktssköterskan lägger om såret varje måndag"
REGION_DEVIATION = "Hemtjänsten kom inte i fredags"


def consented_plan(system):
    """A draft plan of the region's the municipality is invited to, on the person's consent
    to both (so each sees the other's entries), with the region's intervention-1: (plan id,
    personnummer)."""
    number = new_personnummer()
    given = consent(number, organizations=(REGION, MUNICIPALITY))
    created_or_ok(system.consent.post("/fhir/Consent", json=given, headers=FHIR_JSON))
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(number), headers=FHIR_JSON)
    plan_id = created_or_ok(plan)["id"]
    prepare_for_activation(system.sip, plan_id)
    return plan_id, number


def erase_the_municipalitys_key(backend, number):
    """Runs retention five years and a day after the municipality's last entry: the erased
    key's row, after checking the region's key was kept and the log and read models hold."""
    dues = dues_of(backend, number)
    day_after = dues["municipality"].due + timedelta(days=1)
    assert day_after < dues["region"].due
    assert sip(["retention", "run", "--date", at(day_after), *where(backend)]) == 0
    with opened(backend, "sip") as service:
        erased = [row for row in service.application.personal_data.person_keys() if row.erased_at]
    assert [row.retention_class for row in erased] == ["municipality"]
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0
    return erased[0]


def activity(care_plan_json, intervention_id):
    """The CarePlan's activity for an intervention: its detail."""
    found = [a for a in care_plan_json["activity"] if a.get("id") == intervention_id]
    assert len(found) == 1, care_plan_json["activity"]
    return found[0]["detail"]


def test_a_municipalitys_intervention_text_goes_on_its_date_the_intervention_stays(
    sqlite_backend,
):
    """An intervention's description is its author's text (InterventionAssigned v2), its
    structure the plan's: five years and a day after the municipality's last entry its
    description reads as erased while the intervention (status, responsible, the deviation
    reported against it) still builds and is served, and the region's intervention is intact."""
    backend = sqlite_backend
    with running_system(backend) as system:
        plan_id, number = consented_plan(system)
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY).sip
        created_or_ok(run(municipality, plan_id, "assign-intervention",
                          text=MUNICIPAL_INTERVENTION, kind="support",
                          performerOrganization=MUNICIPALITY, responsiblePrincipal="municipality",
                          responsibleOrganization=MUNICIPALITY))  # fmt: skip
        created_or_ok(run(system.sip, plan_id, "assign-intervention",
                          text=REGION_INTERVENTION, kind="care", need="need-1",
                          performerOrganization=REGION, responsiblePrincipal="region",
                          responsibleOrganization=REGION))  # fmt: skip
        created_or_ok(run(municipality, plan_id, "set-intervention-status",
                          intervention="intervention-2", status="in-progress"))  # fmt: skip
        created_or_ok(run(system.sip, plan_id, "report-deviation",
                          intervention="intervention-2", text=REGION_DEVIATION))  # fmt: skip
        before = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
        assert activity(before, "intervention-2")["description"] == MUNICIPAL_INTERVENTION
    assert scan(backend.data_dir, {MUNICIPAL_INTERVENTION, REGION_INTERVENTION}) == []  # sealed
    assert dues_of(backend, number)["municipality"].records == {UUID(plan_id)}
    erased = [erase_the_municipalitys_key(backend, number)]
    # The key that opened it is gone: the phrase is in no table, sealed or clear.
    assert scan(backend.data_dir, {MUNICIPAL_INTERVENTION}) == []

    with running_system(backend) as system:
        served = system.sip.get(f"/fhir/CarePlan/{plan_id}")
        assert served.status_code == 200, served.text
        assert MUNICIPAL_INTERVENTION not in served.text
        erased_text = municipal_erasure(erased[0])
        municipal_part = activity(served.json(), "intervention-2")
        assert municipal_part["description"] == erased_text
        assert erasure_marks(municipal_part["_description"])[::2] == ("masked", MUNICIPAL_RULE)
        # The structure is the plan's: status, responsible and performer as they were.
        assert municipal_part["status"] == "in-progress"
        assert municipal_part["performer"] == activity(before, "intervention-2")["performer"]
        assert municipal_part["extension"] == activity(before, "intervention-2")["extension"]
        # The region's intervention and the deviation against the municipality's are intact.
        assert activity(served.json(), "intervention-3")["description"] == REGION_INTERVENTION
        assert REGION_NEED in served.text
        (deviation,) = [n for n in served.json()["note"] if REGION_DEVIATION in n["text"]]
        against = {"url": EXT_DEVIATION_INTERVENTION, "valueString": "intervention-2"}
        assert against in deviation["extension"]


MUNICIPAL_COMMENT = "Vi kommer men hemtjänstens chef kan inte"
REGION_COMMENT = "Mamma vill hellre ses på eftermiddagen"


def test_a_municipalitys_answer_comment_goes_on_its_date_the_answer_stays(sqlite_backend):
    """An answer's comment is its author's text (MeetingAnswered v2), the answer the plan's:
    five years and a day after the municipality's last entry its comment reads as erased while
    its answer is still served, and the region's comment is intact."""
    backend = sqlite_backend
    with running_system(backend) as system:
        plan_id, number = consented_plan(system)
        created_or_ok(run(system.sip, plan_id, "add-participant", kind="relative", name="Mamma",
                          personAgrees=True))  # fmt: skip
        meeting = created_or_ok(run(system.sip, plan_id, "invite-to-meeting",
                                    start="2027-02-01T10:00:00+01:00",
                                    end="2027-02-01T11:00:00+01:00", location="Vårdcentralen",
                                    organization=[MUNICIPALITY],
                                    participant=["participant-1"]))  # fmt: skip
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY).sip
        answers = {}
        for client, actor, comment in (
            (municipality, None, MUNICIPAL_COMMENT),
            (system.sip, "participant-1", REGION_COMMENT),
        ):
            body = {
                "resourceType": "AppointmentResponse",
                "appointment": {"reference": f"Appointment/{meeting['id']}"},
                "participantStatus": "accepted",
                "comment": comment,
            }
            if actor is not None:
                body["actor"] = {"identifier": {"system": PLAN_PARTICIPANT_SYSTEM, "value": actor}}
            answered = client.post("/fhir/AppointmentResponse", json=body, headers=FHIR_JSON)
            answers[comment] = created_or_ok(answered)["id"]
    assert scan(backend.data_dir, {MUNICIPAL_COMMENT, REGION_COMMENT}) == []  # sealed
    assert dues_of(backend, number)["municipality"].records == {UUID(plan_id)}
    erased = erase_the_municipalitys_key(backend, number)
    assert scan(backend.data_dir, {MUNICIPAL_COMMENT}) == []

    with running_system(backend) as system:
        served = system.sip.get(f"/fhir/AppointmentResponse/{answers[MUNICIPAL_COMMENT]}")
        assert served.status_code == 200, served.text
        response = served.json()
        assert response["comment"] == municipal_erasure(erased)
        assert erasure_marks(response["_comment"])[::2] == ("masked", MUNICIPAL_RULE)
        assert response["participantStatus"] == "accepted"
        assert response["actor"]["identifier"]["value"] == MUNICIPALITY
        region = system.sip.get(f"/fhir/AppointmentResponse/{answers[REGION_COMMENT]}").json()
        assert region["comment"] == REGION_COMMENT
        appointment = system.sip.get(f"/fhir/Appointment/{meeting['id']}").json()
        assert [p["status"] for p in appointment["participant"][1:]] == ["accepted", "accepted"]


MUNICIPAL_AGENDA = "Hemtjänstens insatser efter fallet i badrummet"
MUNICIPAL_PLACE = "Biståndshandläggarens rum, Stadshuset plan 3"


def test_a_municipalitys_invitation_texts_go_on_their_date_the_meeting_stays(sqlite_backend):
    """An invitation's agenda and place are its author's texts (MeetingInvited v2), the
    meeting the plan's: five years and a day after the municipality's last entry they read as
    erased while the meeting, its time, participants and the region's answer are served."""
    backend = sqlite_backend
    with running_system(backend) as system:
        plan_id, number = consented_plan(system)
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY).sip
        meeting = created_or_ok(run(municipality, plan_id, "invite-to-meeting",
                                    start="2027-02-01T10:00:00+01:00",
                                    end="2027-02-01T11:00:00+01:00", location=MUNICIPAL_PLACE,
                                    agenda=MUNICIPAL_AGENDA, organization=[REGION]))  # fmt: skip
        answer = {
            "resourceType": "AppointmentResponse",
            "appointment": {"reference": f"Appointment/{meeting['id']}"},
            "participantStatus": "accepted",
            "comment": REGION_COMMENT,
        }
        answered = system.sip.post("/fhir/AppointmentResponse", json=answer, headers=FHIR_JSON)
        created_or_ok(answered)
        before = system.sip.get(f"/fhir/Appointment/{meeting['id']}").json()
        assert (before["description"], before["comment"]) == (MUNICIPAL_AGENDA, MUNICIPAL_PLACE)
    assert scan(backend.data_dir, {MUNICIPAL_AGENDA, MUNICIPAL_PLACE}) == []  # sealed
    erased = erase_the_municipalitys_key(backend, number)
    assert scan(backend.data_dir, {MUNICIPAL_AGENDA, MUNICIPAL_PLACE}) == []

    with running_system(backend) as system:
        served = system.sip.get(f"/fhir/Appointment/{meeting['id']}")
        assert served.status_code == 200, served.text
        appointment = served.json()
        shown = municipal_erasure(erased)
        assert (appointment["description"], appointment["comment"]) == (shown, shown)
        assert erasure_marks(appointment["_description"])[::2] == ("masked", MUNICIPAL_RULE)
        for kept in ("start", "end", "status", "participant"):
            assert appointment[kept] == before[kept], kept
        assert (
            REGION_COMMENT
            in system.sip.get(f"/fhir/AppointmentResponse/{answered.json()['id']}").text
        )


def test_a_municipalitys_scheduled_meeting_place_goes_on_its_date_the_meeting_stays(
    sqlite_backend,
):
    """A meeting scheduled without invitations keeps its place as its author's text
    (MeetingScheduled v2): five years and a day after the municipality's last entry it reads
    as erased while the meeting, its time and status are served."""
    backend = sqlite_backend
    with running_system(backend) as system:
        plan_id, number = consented_plan(system)
        municipality = system.as_caller("coordinator", organization=MUNICIPALITY).sip
        created_or_ok(run(municipality, plan_id, "schedule-meeting",
                          start="2027-03-01T10:00:00+01:00", end="2027-03-01T11:00:00+01:00",
                          location=MUNICIPAL_PLACE, invitee=["Dottern"]))  # fmt: skip
        found = system.sip.get(f"/fhir/Appointment?based-on=CarePlan/{plan_id}").json()
        (before,) = [entry["resource"] for entry in found.get("entry", [])]
        assert before["comment"] == MUNICIPAL_PLACE
    assert scan(backend.data_dir, {MUNICIPAL_PLACE}) == []  # sealed
    erased = erase_the_municipalitys_key(backend, number)
    assert scan(backend.data_dir, {MUNICIPAL_PLACE}) == []

    with running_system(backend) as system:
        served = system.sip.get(f"/fhir/Appointment/{before['id']}")
        assert served.status_code == 200, served.text
        appointment = served.json()
        assert appointment["comment"] == municipal_erasure(erased)
        for kept in ("start", "end", "status"):
            assert appointment[kept] == before[kept], kept
