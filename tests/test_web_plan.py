"""The plan screen over real HTTP: both services and the web client on loopback ports, the
demo loaded, users signed in through the development sign-in and submitting the page's forms
as a browser would; what the page shows, and what the API then holds."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.cli import main as sip
from services.common.demo_identities import MUNICIPALITY, REGION
from services.common.fhir_time import now
from services.web.routes import worklist
from tests.conftest import Caller, new_backend, running_system
from tests.fhir_data import (
    FHIR_JSON,
    care_plan,
    consent,
    created_or_ok,
    new_personnummer,
    prepare_for_activation,
    run,
)
from tests.test_retention import where
from tests.web_client import (
    Web,
    demo_web_fixtures,
    field_error,
    served_web,
    serving_web,
    text_of,
    version_on,
)

PERSONNUMMER: dict[str, str] = {}  # of the plans the tests make, by plan id


web, browsers = demo_web_fixtures()


def plan_json(caller: Caller, plan_id: str) -> dict[str, Any]:
    answer = caller.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def draft_plan(web: Web, *, ready: bool = False) -> str:
    """A new draft plan of the demo region's; `ready`: with everything activation needs but
    the person's consent."""
    personnummer = new_personnummer("19750505")
    plan_id = created_or_ok(
        web.region.sip.post(
            "/fhir/CarePlan", json=care_plan(personnummer, REGION), headers=FHIR_JSON
        )
    )["id"]
    PERSONNUMMER[plan_id] = personnummer
    if ready:
        prepare_for_activation(
            web.region.sip,
            plan_id,
            region=REGION,
            municipality=MUNICIPALITY,
            municipality_name=None,
        )
    return plan_id


def give_consent(web: Web, plan_id: str) -> None:
    created_or_ok(
        web.region.consent.post(
            "/fhir/Consent",
            json=consent(PERSONNUMMER[plan_id], organizations=(REGION, MUNICIPALITY)),
            headers=FHIR_JSON,
        )
    )


def active_plan(web: Web) -> str:
    plan_id = draft_plan(web, ready=True)
    give_consent(web, plan_id)
    created_or_ok(web.region.sip.post(f"/fhir/CarePlan/{plan_id}/$activate"))
    return plan_id


def test_the_four_legal_elements_of_the_demo_plan(web: Web, browsers: Any) -> None:
    page = browsers("region-coordinator").get(f"/plans/{web.demo['active']}")
    assert page.status_code == 200, page.text
    shown = text_of(page)
    for heading in (
        "1. Personens behov",
        "2. Insatser och vem som ansvarar",
        "3. Åtgärder av andra än region och kommun",
        "4. Huvudansvar för planen",
    ):
        assert re.search(rf"<h3[^>]*>{re.escape(heading)}</h3>", page.text), heading
    assert "Jag vill kunna bo kvar hemma och må bättre" in shown
    assert "Önskemål: ”Samma personal så långt det går”" in shown
    assert "Hemtjänst två gånger per dag" in shown
    assert "Kommun: Eskilstuna kommun, socialtjänsten" in shown  # principal and organisation
    assert "Inga åtgärder av andra registrerade ännu." in shown  # element 3, said plainly
    assert re.search(r"Huvudman Region Sedan \d{4}-\d\d-\d\d", shown)
    assert "Klara vardagen hemma med stöd" in shown and "2027-06-30" in shown
    assert "Nästa uppföljning: 2027-03-01" in shown
    assert f'href="/plans/{web.demo["active"]}/print"' in page.text
    assert "Skriv ut planen" in shown
    assert page.text.count("<h1") == 1
    for operation in ("record-need", "assign-intervention", "close", "report-deviation"):
        assert f'id="form-{operation}"' in page.text
    assert 'id="form-activate"' not in page.text  # an active plan is not activated again


def test_every_input_has_a_label(web: Web, browsers: Any) -> None:
    page = browsers("region-coordinator").get(f"/plans/{web.demo['active']}")
    labelled = set(re.findall(r'<label for="([^"]+)"', page.text))
    inputs = re.findall(r"<(input|select|textarea)\b([^>]*)>", page.text)
    checked = 0
    for tag, attributes in inputs:
        if 'type="hidden"' in attributes:
            continue
        found = re.search(r'id="([^"]+)"', attributes)
        assert found and found[1] in labelled, (tag, attributes)
        checked += 1
    assert checked > 30
    ids = re.findall(r'\bid="([^"]+)"', page.text)
    assert len(ids) == len(set(ids)), "ids are unique"


def test_an_empty_element_is_said_to_be_empty(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web)
    shown = text_of(browsers("region-coordinator").get(f"/plans/{plan_id}").text)
    assert "Inga behov registrerade ännu." in shown
    assert "Inga insatser registrerade ännu." in shown
    assert "Ingen har huvudansvaret ännu." in shown
    assert "Inga mål registrerade ännu." in shown


def test_what_the_api_withholds_is_shown_as_withheld(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web, ready=True)  # no consent: each principal's entries its own
    created_or_ok(run(web.municipality.sip, plan_id, "record-need", text="Kommunens uppgift"))
    page = browsers("region-coordinator").get(f"/plans/{plan_id}")
    shown = text_of(page)
    assert "1 behov från Kommun SE2120000357-DEMO2 undanhålls: samtycke saknas." in shown
    assert "Kommunens uppgift" not in shown


def test_an_erased_text_is_said_to_be_erased_in_swedish_not_quoted_as_words(
    request: Any, tmp_path: Any
) -> None:
    """Five years and some days after the municipality's last entry its need is erased
    (docs/decisions/0007): the page says so in Swedish, marked as an erasure, never in the
    services' English placeholder nor in quotation marks as if someone had written it."""
    municipal_need = "Kommunens anteckning om tvätten"
    with new_backend("sqlite", tmp_path / "data", request) as backend:
        with running_system(backend) as system, served_web(system) as web:
            plan_id = draft_plan(web, ready=True)
            give_consent(web, plan_id)
            created_or_ok(run(web.municipality.sip, plan_id, "record-need", text=municipal_need))
            region_need = plan_json(web.region, plan_id)["contained"][0]["code"]["text"]
        after = (now() + timedelta(days=365 * 5 + 10)).isoformat()
        assert sip(["retention", "run", "--date", after, *where(backend)]) == 0
        with (
            running_system(backend) as system,
            serving_web(system) as url,
            Web(url, system, {}).user("region-coordinator") as browser,
        ):
            page = browser.get(f"/plans/{plan_id}")
    assert page.status_code == 200, page.text
    shown = text_of(page)
    assert municipal_need not in shown, shown
    assert "erased on" not in shown
    assert f"”{region_need}”" in shown  # the region's words, kept and quoted
    erased = re.findall(r'<span class="erased">([^<]*)</span>', page.text)
    assert erased, page.text
    assert all(
        re.fullmatch(r"Raderad \d{4}-\d{2}-\d{2} enligt socialtjänstakt, 5 år efter sista "
                     r"anteckningen \(SoL 12:1\)", words)
        for words in erased
    ), erased  # fmt: skip
    assert f"”{erased[0]}”" not in shown


def test_a_personnummer_in_a_title_stays_out_of_the_page_title(web: Web, browsers: Any) -> None:
    personnummer = new_personnummer("19750505")
    plan = {**care_plan(personnummer, REGION), "title": f"SIP {personnummer}"}
    plan_id = created_or_ok(web.region.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON))[
        "id"
    ]
    page = browsers("region-coordinator").get(f"/plans/{plan_id}")
    (title,) = re.findall(r"<title>([^<]*)</title>", page.text)
    assert personnummer not in title and "SIP …" in title


def test_edits_land_in_the_api(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web)
    coordinator = browsers("region-coordinator")

    page = coordinator.edit(
        plan_id, "record-need", {"text": "Jag vill ha hjälp med maten", "wishes": ""}
    )
    assert page.status_code == 200 and page.url.path == f"/plans/{plan_id}"
    assert page.url.params["done"] == "record-need"
    assert "Behovet är registrerat." in text_of(page)
    need = next(c for c in plan_json(web.region, plan_id)["contained"] if c["id"] == "need-1")
    assert need["code"]["text"] == "Jag vill ha hjälp med maten"
    assert "note" not in need  # the empty optional field was left out

    page = coordinator.edit(
        plan_id,
        "invite-organization",
        {"organization": MUNICIPALITY, "kind": "municipality", "name": "Eskilstuna kommun"},
    )
    assert "Organisationen är inbjuden." in text_of(page)
    page = coordinator.edit(
        plan_id,
        "assign-intervention",
        {
            "text": "Matlåda varje dag",
            "kind": "support",
            "responsiblePrincipal": "municipality",
            "responsibleOrganization": MUNICIPALITY,
            "performerOrganization": MUNICIPALITY,
            "need": "need-1",
            "start": "2027-01-01",
        },
    )
    assert "Insatsen är tillagd." in text_of(page), text_of(page)
    (activity,) = plan_json(web.region, plan_id)["activity"]
    assert activity["id"] == "intervention-1"
    assert activity["detail"]["description"] == "Matlåda varje dag"
    assert activity["detail"]["reasonReference"] == [{"reference": "#need-1"}]
    assert activity["detail"]["scheduledPeriod"]["start"] == "2027-01-01"
    assert MUNICIPALITY in str(activity["detail"]["extension"])


def test_a_refused_edit_is_explained_beside_its_field_and_writes_nothing(
    web: Web, browsers: Any
) -> None:
    plan_id = draft_plan(web, ready=True)
    before = plan_json(web.region, plan_id)["meta"]["versionId"]
    coordinator = browsers("region-coordinator")

    page = coordinator.edit(
        plan_id,
        "assign-intervention",
        {
            "text": "Samtalsstöd",
            "kind": "treatment",
            "responsiblePrincipal": "region",
            "responsibleOrganization": MUNICIPALITY,  # not the region
            "performerOrganization": REGION,
        },
    )
    assert page.status_code == 409
    assert "Den ansvariga organisationen måste höra till den huvudman som anges som ansvarig." in (
        field_error(page, "assign-intervention-responsibleOrganization")
    )
    assert "Samtalsstöd</textarea>" in page.text  # the user's input kept
    assert re.search(r'<details[^>]*id="details-assign-intervention" open', page.text)

    page = coordinator.edit(
        plan_id, "invite-organization", {"organization": "SE12", "kind": "other"}
    )
    assert page.status_code == 400
    assert "Ange ett giltigt HSA-id" in field_error(page, "invite-organization-organization")
    assert 'value="SE12"' in page.text

    page = coordinator.edit(plan_id, "record-need", {"text": "  "})
    assert page.status_code == 400
    assert "Fyll i behovet, med personens egna ord." in field_error(page, "record-need-text")
    page = coordinator.submit(f"/plans/{plan_id}/record-need", {"text": "Utan version"})
    assert page.status_code == 400
    assert "Formuläret saknar planens version." in text_of(page)
    assert plan_json(web.region, plan_id)["meta"]["versionId"] == before


def test_someone_else_changing_the_plan_first_gives_the_conflict_notice(
    web: Web, browsers: Any
) -> None:
    plan_id = draft_plan(web, ready=True)
    coordinator = browsers("region-coordinator")
    page = coordinator.get(f"/plans/{plan_id}")
    seen = version_on(page)
    # Meanwhile a colleague records a need.
    created_or_ok(run(web.region.sip, plan_id, "record-need", text="Jag vill träffa vänner"))

    page = coordinator.submit(
        f"/plans/{plan_id}/record-need", {"version": seen, "text": "Jag vill sova bättre"}
    )
    assert page.status_code == 409
    shown = text_of(page)
    assert "Någon annan hann ändra planen före dig." in shown
    assert re.search(r"\d\d:\d\d: Registrera ett behov \(Region SE2321000032-DEMO1\)", shown)
    assert "Nytt behov: ”Jag vill träffa vänner”" in shown
    assert "Jag vill sova bättre</textarea>" in page.text  # the form prefilled
    assert re.search(r'<details[^>]*id="details-record-need" open', page.text)
    assert version_on(page) == plan_json(web.region, plan_id)["meta"]["versionId"] != seen
    assert "Jag vill sova bättre" not in str(plan_json(web.region, plan_id))


def test_activation_without_consent_is_explained_and_works_with_it(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web, ready=True)
    coordinator = browsers("region-coordinator")

    page = coordinator.edit(plan_id, "activate", {})
    assert page.status_code == 409
    shown = text_of(page)
    assert "Planen kan inte aktiveras" in shown
    assert "uppgifter från kommunen" in shown and "till regionen" in shown
    assert "Registrera personens samtycke" in shown
    assert "not permitted" not in shown
    assert plan_json(web.region, plan_id)["status"] == "draft"

    give_consent(web, plan_id)
    page = coordinator.edit(plan_id, "activate", {})
    assert "Planen är aktiverad." in text_of(page)
    assert plan_json(web.region, plan_id)["status"] == "active"


def test_activation_names_everything_the_plan_still_lacks(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web)
    page = browsers("region-coordinator").edit(plan_id, "activate", {})
    assert page.status_code == 409
    shown = text_of(page)
    assert "Planen kan aktiveras först när både region och kommun deltar." in shown
    assert "Registrera minst ett behov innan planen aktiveras." in shown
    assert "Sätt ett datum för uppföljning innan planen aktiveras." in shown


def test_closing_the_plan_needs_a_reason(web: Web, browsers: Any) -> None:
    plan_id = active_plan(web)
    coordinator = browsers("region-coordinator")

    page = coordinator.edit(plan_id, "close", {"reason": "replaced", "replacedBy": ""})
    assert page.status_code == 409
    assert "Ange vilken plan som ersätter denna." in field_error(page, "close-replacedBy")

    page = coordinator.edit(plan_id, "close", {"reason": "goals-reached", "note": "Klart"})
    shown = text_of(page)
    assert "Planen är avslutad." in shown
    assert "Avslutad: Målen är nådda — Klart" in shown
    assert plan_json(web.region, plan_id)["status"] == "completed"
    assert 'id="form-' not in page.text  # a closed plan offers no edits


def test_a_meetings_approval_puts_the_proposals_in_force(web: Web, browsers: Any) -> None:
    plan_id = active_plan(web)
    coordinator = browsers("region-coordinator")
    coordinator.edit(plan_id, "add-participant", {"kind": "person", "name": "Tolvan"})
    page = coordinator.edit(plan_id, "record-need", {"text": "Jag vill börja jobba"})
    shown = text_of(page)
    assert "Ändringen gäller när personen har godkänt den." in shown
    assert "Nytt behov: ”Jag vill börja jobba”" in shown  # pending, in Swedish

    page = coordinator.edit(
        plan_id,
        "schedule-meeting",
        {
            "start": "2027-01-12T10:00",
            "end": "2027-01-12T11:00",
            "location": "Vårdcentralen",
            "invitee": "participant-1",
        },
    )
    assert "Mötet är bokat." in text_of(page)
    meeting = web.region.sip.get(f"/fhir/Appointment/{plan_id}-meeting-1").json()
    assert meeting["start"] == "2027-01-12T09:00:00.000Z"  # Swedish winter time is UTC+1
    assert "2027-01-12 10:00" in text_of(page)

    page = coordinator.edit(
        plan_id,
        "record-meeting",
        {"meeting": "meeting-1", "attendee": ["participant-1"], "notes": "Bra möte"},
    )
    assert "Mötet är registrerat." in text_of(page)
    assert plan_json(web.region, plan_id).get("extension")  # proposals still pending
    page = coordinator.edit(plan_id, "approve-changes", {"meeting": "meeting-1"})
    assert "Godkännandet är registrerat" in text_of(page), text_of(page)
    assert "Inga ändringar väntar på godkännande." in text_of(page)
    plan = plan_json(web.region, plan_id)
    assert "pending-approval" not in str(plan)
    assert "Jag vill börja jobba" in str(plan["contained"])


def test_a_cost_allocation_is_sent_as_shares(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web, ready=True)
    coordinator = browsers("region-coordinator")
    page = coordinator.get(f"/plans/{plan_id}")
    assert 'name="share-0-organization"' in page.text
    page = coordinator.edit(
        plan_id,
        "allocate-cost",
        {
            "intervention": "intervention-1",
            "share-0-organization": REGION,
            "share-0-percent": "40",
            "share-1-organization": MUNICIPALITY,
            "share-1-percent": "60,0",
            "periodStart": "2027-01-01",
        },
    )
    assert "Kostnadsfördelningen är föreslagen." in text_of(page), text_of(page)
    cost = str(plan_json(web.region, plan_id)["activity"][0]["detail"]["extension"])
    assert "'valueDecimal': 40.0" in cost and "'valueDecimal': 60.0" in cost


def test_the_printable_plan_is_for_the_person(web: Web, browsers: Any) -> None:
    plan_id = web.demo["active"]
    page = browsers("region-coordinator").get(f"/plans/{plan_id}/print")
    assert page.status_code == 200
    assert "<form" not in page.text
    assert 'media="print"' in page.text
    shown = text_of(page)
    assert "Din samordnade individuella plan" in shown
    assert "Jag vill kunna bo kvar hemma och må bättre" in shown
    assert "”Klara vardagen hemma med stöd” – till 2027-06-30" in shown
    assert "Hemtjänst två gånger per dag" in shown
    assert "Planen följs upp 2027-03-01" in shown
    assert "har huvudansvaret för din plan" in shown
    assert f"Utskriven {datetime.now(ZoneInfo('Europe/Stockholm')).date()}" in shown
    for internal in (plan_id, "intervention-", "need-1", REGION, MUNICIPALITY):
        assert internal not in shown


def test_an_outsider_finds_no_plan(web: Web, browsers: Any) -> None:
    outsider = browsers("outsider-coordinator")
    for path in (f"/plans/{web.demo['active']}", f"/plans/{web.demo['active']}/print"):
        page = outsider.get(path)
        assert page.status_code == 404
        shown = text_of(page)
        assert "Det finns ingen sådan plan som du får se." in shown
        assert "Jag vill kunna bo kvar hemma" not in shown
    before = plan_json(web.region, web.demo["active"])["meta"]["versionId"]
    page = outsider.submit(
        f"/plans/{web.demo['active']}/record-need", {"version": before, "text": "Intrång"}
    )
    assert page.status_code == 404
    assert plan_json(web.region, web.demo["active"])["meta"]["versionId"] == before


def test_a_form_without_the_csrf_token_is_refused(web: Web, browsers: Any) -> None:
    plan_id = draft_plan(web)
    coordinator = browsers("region-coordinator")
    page = coordinator.get(f"/plans/{plan_id}")
    answer = coordinator.http.post(
        f"/plans/{plan_id}/record-need", data={"version": version_on(page), "text": "Falsk"}
    )
    assert answer.status_code == 403
    assert "Formuläret kunde inte tas emot" in text_of(answer)
    assert "contained" not in plan_json(web.region, plan_id)


def test_an_auditor_sees_no_forms_and_is_refused_readably(web: Web, browsers: Any) -> None:
    auditor = browsers("region-auditor")
    page = auditor.get(f"/plans/{web.demo['active']}")
    assert page.status_code == 200
    assert "Jag vill kunna bo kvar hemma och må bättre" in text_of(page)
    assert 'id="form-' not in page.text and 'name="version"' not in page.text
    before = plan_json(web.region, web.demo["active"])["meta"]["versionId"]
    page = auditor.submit(
        f"/plans/{web.demo['active']}/record-need", {"version": before, "text": "Granskning"}
    )
    assert page.status_code == 403
    assert "Din roll (granskare) får inte registrera ett behov." in text_of(page)
    assert plan_json(web.region, web.demo["active"])["meta"]["versionId"] == before


def test_a_professional_sees_the_professionals_forms(web: Web, browsers: Any) -> None:
    page = browsers("region-professional").get(f"/plans/{web.demo['active']}")
    for operation in ("record-need", "set-goal", "set-intervention-status", "report-deviation"):
        assert f'id="form-{operation}"' in page.text
    for operation in ("assign-intervention", "close", "invite-organization", "allocate-cost"):
        assert f'id="form-{operation}"' not in page.text


def test_an_unknown_operation_is_not_found(web: Web, browsers: Any) -> None:
    coordinator = browsers("region-coordinator")
    coordinator.get(f"/plans/{web.demo['active']}")
    page = coordinator.submit(f"/plans/{web.demo['active']}/as-of", {"version": "1"})
    assert page.status_code == 404


def test_the_invited_municipality_finds_the_invitation_in_its_worklist_and_accepts_it(
    web: Web, browsers: Any
) -> None:
    plan_id = draft_plan(web)
    created_or_ok(
        run(web.region.sip, plan_id, "invite-organization", organization=MUNICIPALITY,
            kind="municipality")
    )  # fmt: skip
    municipality = browsers("municipality-coordinator")
    waiting = municipality.get("/worklist?filter=invitations")
    assert f"/plans/{plan_id}" in waiting.text
    region = browsers("region-coordinator")
    assert 'id="form-accept-invitation"' not in region.get(f"/plans/{plan_id}").text
    accepted = municipality.edit(
        plan_id, "accept-invitation", {"unit": MUNICIPALITY, "contact": "Omar Said, 016-71 00"}
    )
    assert accepted.status_code == 200, accepted.text
    assert "Ni har accepterat inbjudan" in text_of(accepted)
    assert 'id="form-accept-invitation"' not in accepted.text
    team = web.municipality.sip.get(f"/fhir/CareTeam/{plan_id}-team").json()
    member = next(
        p for p in team["participant"] if p["member"]["identifier"]["value"] == MUNICIPALITY
    )
    assert "Omar Said, 016-71 00" in str(member["extension"])
    assert f"/plans/{plan_id}" not in municipality.get("/worklist?filter=invitations").text


def test_the_overdue_worklist_counts_the_days_by_the_swedish_calendar(
    web: Web, browsers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follow-up is overdue from the day after its date in Sweden: between midnight there and
    midnight UTC the machine's date is still the day before."""
    active = f"/plans/{web.demo['active']}"  # its follow-up on 2027-03-01
    region = browsers("region-coordinator")
    outsider = browsers("outsider-coordinator")
    for swedish_date, overdue in ((date(2027, 3, 1), False), (date(2027, 3, 2), True)):
        monkeypatch.setattr(worklist, "swedish_today", lambda day=swedish_date: day)
        assert (active in region.get("/worklist?filter=overdue").text) is overdue, swedish_date
        # An organisation outside the plan is never told of it, overdue or not.
        assert active not in outsider.get("/worklist?filter=overdue").text
    unknown = region.get("/worklist?filter=everything")
    assert unknown.status_code == 422 and active not in unknown.text
