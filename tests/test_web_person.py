"""The person's own pages of the web client, over real HTTP: both services and the web app on
loopback ports, the demo loaded, the person (Tolvan, role patient) signed in through the
development sign-in form and driving the pages' own forms. What the pages did is checked in
the services' APIs, and the important end-to-end check: after the person withdraws consent
on the web, the municipality's coordinator reading the plan through the API gets the
region's entries withheld."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts.canonical import EXT_PENDING_APPROVAL, EXT_WITHHELD_ENTRIES
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.demo_identities import MUNICIPALITY, PEOPLE, REGION
from tests.fhir_data import FHIR_JSON, created_or_ok, run
from tests.web_client import Web, WebUser, demo_web

TOLVAN = PEOPLE[0].personnummer
ANNA = PEOPLE[1].personnummer
REGION_NAME = "Region Sörmland, Psykiatrimottagning Eskilstuna"
MUNICIPALITY_NAME = "Eskilstuna kommun, socialtjänsten"
REGION_NEED = "Jag vill kunna bo kvar hemma och må bättre"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Web]:
    """Shared by the tests that leave Tolvan's consent as it is."""
    with demo_web(request, tmp_path_factory.mktemp("data")) as web:
        yield web


@pytest.fixture
def fresh_web(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Web]:
    """For a test that withdraws or limits Tolvan's consent."""
    with demo_web(request, tmp_path / "data") as web:
        yield web


@contextmanager
def browser_of(web: Web, user: str) -> Iterator[WebUser]:
    """A signed-in user, whom no page sent to a URL with Tolvan's personnummer in it."""
    with web.user(user) as browser:
        yield browser
        browser.assert_no_personnummer_in_urls(TOLVAN)


def plan_of(client: Any, plan_id: str) -> dict[str, Any]:
    response = client.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert response.status_code == 200, response.text
    return response.json()


def pending_changes(plan: dict[str, Any]) -> list[str]:
    return [
        part["valueString"]
        for ext in plan.get("extension", [])
        if ext["url"] == EXT_PENDING_APPROVAL
        for part in ext["extension"]
        if part["url"] == "change"
    ]


def propose_intervention(web: Web, text: str) -> None:
    """The region's coordinator adds an intervention to the active plan: a proposal."""
    response = run(
        web.api().sip,
        web.demo["active"],
        "assign-intervention",
        text=text,
        kind="support",
        performerOrganization=MUNICIPALITY,
        responsiblePrincipal="municipality",
        responsibleOrganization=MUNICIPALITY,
        start="2027-01-10",
        end="2027-06-30",
    )
    assert response.status_code == 200, response.text


def section(page: str, heading: str) -> str:
    """The page's text from a heading to the next heading of any level."""
    after = page.split(f">{heading}</h", 1)[1]
    return re.split(r"<h[1-6][ >]", after, maxsplit=1)[0]


# -- my plans and my plan -------------------------------------------------------------------


def test_the_person_sees_their_plan_and_what_each_organisation_promised(web: Web) -> None:
    with browser_of(web, "person") as browser:
        home = browser.get("/me")
        assert home.status_code == 200
        assert "Mina planer" in home.text and "SIP för Tolvan Tolvansson" in home.text
        assert "Huvudansvar" in home.text and REGION_NAME in home.text
        assert "2027-03-01" in home.text  # the next follow-up
        page = browser.get(f"/me/plans/{web.demo['active']}")
        assert page.status_code == 200
        assert "Vad organisationerna har lovat" in page.text
        municipality = section(page.text, MUNICIPALITY_NAME)
        region = section(page.text, REGION_NAME)
        assert "Hemtjänst två gånger per dag" in municipality
        assert "Samtalsbehandling varannan vecka" in region
        assert "Hemtjänst" not in region
        # The words explained, and the person's needs and goals.
        assert "Huvudansvar betyder" in page.text and "En insats är" in page.text
        assert REGION_NEED in page.text and "Klara vardagen hemma med stöd" in page.text
        assert "2027-06-30" in page.text  # the goal's "by when"
        # Staff pages are not the person's: the worklist sends the person home.
        assert str(browser.get("/worklist").url).endswith("/me")


def test_a_goal_written_by_the_person_is_in_force_at_once_as_their_entry(web: Web) -> None:
    goal = "Jag vill kunna handla på egen hand"
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        saved = browser.submit_form(
            page, "form-set-goal", text=goal, targetDate="2027-05-01", need="need-1"
        )
        assert saved.status_code == 200, saved.text
        assert str(saved.url).endswith(f"/me/plans/{web.demo['active']}?done=set-goal")
        assert "Ditt mål är sparat" in saved.text and goal in saved.text
    plan = plan_of(web.api(), web.demo["active"])
    assert not any("set" in change for change in pending_changes(plan))  # not a proposal
    recorded_by = next(e for e in plan["extension"] if e["url"].endswith("/recorded-by"))
    assert {"url": "role", "valueCode": "patient"} in recorded_by["extension"]
    goals = [web.api().sip.get(f"/fhir/{ref['reference']}").json() for ref in plan.get("goal", [])]
    mine = next(g for g in goals if g["description"]["text"] == goal)
    assert mine["lifecycleStatus"] == "active"
    assert mine["target"][0]["dueDate"] == "2027-05-01"


def test_the_person_adds_a_need_and_revises_a_goal_in_their_own_words(web: Web) -> None:
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        saved = browser.submit_form(
            page, "form-record-need", text="Jag vill ha hjälp att sova", wishes="Inga piller"
        )
        assert "Ditt behov är sparat" in saved.text
        assert "Jag vill ha hjälp att sova" in saved.text and "Inga piller" in saved.text
        revised = browser.submit_form(
            saved,
            "form-revise-goal",
            goal="goal-1",
            text="Klara vardagen hemma, med lite stöd",
            reason="Jag klarar mer nu",
        )
        assert "Ditt mål är ändrat" in revised.text
        assert "Klara vardagen hemma, med lite stöd" in revised.text
    goal = web.api().sip.get(f"/fhir/Goal/{web.demo['active']}-goal-1").json()
    assert goal["description"]["text"] == "Klara vardagen hemma, med lite stöd"


def test_an_empty_form_is_answered_beside_the_field_with_the_input_kept(web: Web) -> None:
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        answer = browser.submit_form(
            page, "form-revise-goal", goal="goal-1", text="Ett nytt mål", reason=""
        )
        assert answer.status_code == 422
        assert "Skriv varför du ändrar." in answer.text
        _, kept = browser.form(answer, "form-revise-goal")
        assert kept["text"] == "Ett nytt mål"


def test_the_person_approves_a_proposed_change_and_it_is_in_force(web: Web) -> None:
    propose_intervention(web, "Boendestöd en gång i veckan")
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        pending = section(page.text, "Förslag som väntar på ditt godkännande")
        assert "En ny insats: ”Boendestöd en gång i veckan”" in pending
        assert MUNICIPALITY_NAME in pending
        assert "Förslag – gäller inte förrän du godkänt det" in page.text
        browser.form(page, "form-reject-changes")  # the person may say no as well
        approved = browser.submit_form(page, "form-approve-changes")
        assert approved.status_code == 200
        assert "Du har godkänt ändringarna" in approved.text
        assert "Förslag som väntar på ditt godkännande" not in approved.text
    plan = plan_of(web.api(), web.demo["active"])
    assert pending_changes(plan) == []
    boendestod = next(
        a for a in plan["activity"] if a.get("detail", {}).get("description", "").startswith("Boe")
    )
    assert not any(e["url"] == EXT_PENDING_APPROVAL for e in boendestod.get("extension", []))


def test_a_stale_version_gets_the_conflict_notice_with_the_form_kept(web: Web) -> None:
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        _, before = browser.form(page, "form-record-need")
        propose_intervention(web, "Färdtjänst till dagverksamheten")  # someone else, first
        answer = browser.submit_form(page, "form-record-need", text="Jag vill träffa vänner")
        assert answer.status_code == 409
        assert "Någon annan ändrade planen medan du skrev" in answer.text
        notice = answer.text.split('id="changed-meanwhile"', 1)[1].split("</div>", 1)[0]
        assert "Ny insats" in notice or "En insats har lagts till" in notice
        assert "Färdtjänst till dagverksamheten" in notice
        _, kept = browser.form(answer, "form-record-need")
        assert kept["text"] == "Jag vill träffa vänner"
        assert int(kept["version"]) > int(before["version"])
        saved = browser.submit_form(answer, "form-record-need")  # redone at the current version
        assert "Ditt behov är sparat" in saved.text
    assert "Jag vill träffa vänner" in str(plan_of(web.api(), web.demo["active"]))


def test_the_person_ends_their_plan_after_reading_what_it_means(web: Web) -> None:
    body = {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "plan",
        "title": "SIP att avsluta",
        "subject": {"identifier": {"system": PERSONNUMMER_SYSTEM, "value": TOLVAN}},
        "author": {
            "identifier": {"system": HSA_ID_SYSTEM, "value": REGION},
            "extension": [
                {
                    "url": "https://sip-case.se/fhir/StructureDefinition/organization-kind",
                    "valueCode": "region",
                }
            ],
        },
    }
    plan_id = created_or_ok(web.api().sip.post("/fhir/CarePlan", json=body, headers=FHIR_JSON))[
        "id"
    ]
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{plan_id}")
        confirm = browser.get(f"/me/plans/{plan_id}/close")
        assert "Vill du avsluta din plan?" in confirm.text
        assert "Det går inte att öppna en avslutad plan igen" in confirm.text
        assert plan_of(web.api(), plan_id)["status"] == "draft"  # nothing yet
        # Someone else changes the plan while the person reads: nothing is closed yet.
        created_or_ok(run(web.api().sip, plan_id, "record-need", text="Stöd med ekonomin"))
        stale = browser.submit_form(confirm, "form-close", note="Jag klarar mig själv nu")
        assert stale.status_code == 409
        assert "Någon annan ändrade planen medan du läste" in stale.text
        assert "Stöd med ekonomin" in stale.text  # what changed
        assert plan_of(web.api(), plan_id)["status"] == "draft"
        _, kept = browser.form(stale, "form-close")
        assert kept["note"] == "Jag klarar mig själv nu"
        done = browser.submit_form(stale, "form-close")
        assert str(done.url).endswith("/me?done=close")
        assert "Din plan är avslutad" in done.text
        assert page.status_code == 200
    plan = plan_of(web.api(), plan_id)
    assert plan["status"] == "revoked" and plan["period"].get("end")


def test_the_person_says_no_to_a_proposed_change_and_it_is_gone(web: Web) -> None:
    propose_intervention(web, "Ledsagning till läkarbesök")
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        rejected = browser.submit_form(
            page, "form-reject-changes", reason="Jag klarar läkarbesöken själv"
        )
        assert rejected.status_code == 200
        assert "Du har sagt nej till de föreslagna ändringarna" in rejected.text
        assert "Förslag som väntar på ditt godkännande" not in rejected.text
        assert "Ledsagning till läkarbesök" not in rejected.text
    plan = plan_of(web.api(), web.demo["active"])
    assert pending_changes(plan) == []
    assert "Ledsagning till läkarbesök" not in str(plan["activity"])
    assert any("Jag klarar läkarbesöken själv" in n.get("text", "") for n in plan["note"])


def test_what_the_api_withholds_from_the_person_is_shown_as_withheld(web: Web) -> None:
    """The cost shares are the principals' (docs/disclosure.md): the person is told they
    exist and are not shown, never left to think there are none."""
    response = run(
        web.api().sip,
        web.demo["active"],
        "allocate-cost",
        intervention="intervention-1",
        periodStart="2027-01-01",
        splitUnclear=True,
    )
    assert response.status_code == 200, response.text
    assert "cost-allocation" in str(plan_of(web.person_api(), web.demo["active"]))
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        assert 'class="withheld"' in page.text
        assert "Hur kostnaderna delas mellan regionen och kommunen visas inte för dig" in page.text


# -- who may see the person's pages -----------------------------------------------------------


@pytest.mark.parametrize("user", ["region-coordinator", "region-auditor", "outsider-coordinator"])
def test_staff_get_no_person_page(web: Web, user: str) -> None:
    version = plan_of(web.api(), web.demo["active"])["meta"]["versionId"]
    with browser_of(web, user) as browser:
        for path in ("/me", f"/me/plans/{web.demo['active']}", "/me/consents", "/me/access-log"):
            page = browser.get(path)
            assert page.status_code == 403, path
            assert "till för personen själv" in page.text
            assert TOLVAN not in page.text
        posted = browser.submit(f"/me/plans/{web.demo['active']}/record-need", {"text": "x"})
        assert posted.status_code == 403
    assert plan_of(web.api(), web.demo["active"])["meta"]["versionId"] == version


def test_a_form_without_the_csrf_token_is_refused(web: Web) -> None:
    version = plan_of(web.api(), web.demo["active"])["meta"]["versionId"]
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{web.demo['active']}")
        action, fields = browser.form(page, "form-record-need")
        del fields["csrf_token"]
        refused = browser.http.post(action, data={**fields, "text": "Smugglat behov"})
        assert refused.status_code == 403
        assert "Formuläret kunde inte tas emot" in refused.text
        forged = browser.http.post(action, data={**fields, "csrf_token": "x", "text": "y"})
        assert forged.status_code == 403
    assert plan_of(web.api(), web.demo["active"])["meta"]["versionId"] == version


def test_the_person_cannot_open_someone_elses_plan(web: Web) -> None:
    bundle = web.api().sip.post("/fhir/CarePlan/_search", data={"subject:identifier": ANNA})
    anna_plan = bundle.json()["entry"][0]["resource"]["id"]
    with browser_of(web, "person") as browser:
        page = browser.get(f"/me/plans/{anna_plan}")
        assert page.status_code == 404
        assert "Anna" not in page.text and ANNA not in page.text


def test_the_personnummer_is_never_in_a_url_or_a_title(web: Web) -> None:
    with browser_of(web, "person") as browser:
        for path in ("/me", f"/me/plans/{web.demo['active']}", "/me/consents", "/me/access-log"):
            page = browser.get(path)
            assert page.status_code == 200, path
            title = re.search(r"<title>(.*?)</title>", page.text, re.S)[1]
            assert TOLVAN not in title and TOLVAN[2:] not in title
            for href in re.findall(r'(?:href|action)="([^"]+)"', page.text):
                assert TOLVAN not in href and TOLVAN[2:] not in href
        consents = browser.get("/me/consents")
        link = re.search(r'href="(/me/consents/[^"]+/withdraw)"', consents.text)[1]
        browser.get(link)
        assert browser.visited  # every request above, redirects included
        browser.assert_no_personnummer_in_urls(TOLVAN)


# -- my log extract -------------------------------------------------------------------------


def test_the_log_extract_lists_who_read_the_plan(web: Web) -> None:
    reader = web.api(MUNICIPALITY)
    assert reader.sip.get(f"/fhir/CarePlan/{web.demo['active']}").status_code == 200
    with browser_of(web, "person") as browser:
        page = browser.get("/me/access-log")
        assert page.status_code == 200
        assert str(page.url).endswith("/me/access-log")
        rows = re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
        reads = [
            row
            for row in rows
            if MUNICIPALITY_NAME in row and "Läste din samordnade individuella plan" in row
        ]
        assert reads, "the municipality's read is in the extract"
        assert "Samordnare" in reads[0]
        assert any("Samtyckena" in row for row in rows)  # the consent service's records too
        assert '<th scope="col">När</th>' in page.text


# -- my consents ----------------------------------------------------------------------------


def region_entries_withheld_from(web: Web, organization: str) -> bool:
    plan = plan_of(web.api(organization), web.demo["active"])
    withheld = [
        ext
        for ext in plan.get("extension", [])
        if ext["url"] == EXT_WITHHELD_ENTRIES
        and any(
            p["url"] == "custodian" and p.get("valueIdentifier", {}).get("value") == REGION
            for p in ext["extension"]
        )
    ]
    return bool(withheld) and REGION_NEED not in str(plan)


def consents_of_tolvan(web: Web) -> list[dict[str, Any]]:
    bundle = web.person_api().consent.post(
        "/fhir/Consent/_search", data={"patient:identifier": TOLVAN}
    )
    return [entry["resource"] for entry in bundle.json().get("entry", [])]


def test_withdrawing_consent_after_the_confirmation_withholds_the_regions_entries(
    fresh_web: Web,
) -> None:
    web = fresh_web
    assert not region_entries_withheld_from(web, MUNICIPALITY)
    (consent,) = consents_of_tolvan(web)
    with browser_of(web, "person") as browser:
        page = browser.get("/me/consents")
        assert "Gäller" in page.text and MUNICIPALITY_NAME in page.text
        confirm = browser.get(f"/me/consents/{consent['id']}/withdraw")
        meaning = section(confirm.text, "Det här betyder det")
        assert (
            f"{MUNICIPALITY_NAME} kommer inte längre att se det som {REGION_NAME} har skrivit "
            "i din plan" in meaning
        )
        assert "förrän du samtycker igen" in meaning
        assert 'href="/me/consents"' in confirm.text  # the way back
        assert consents_of_tolvan(web)[0]["status"] == "active"  # nothing done yet
        done = browser.submit_form(confirm, "form-withdraw", reason="Jag vill inte dela längre")
        assert str(done.url).endswith("/me/consents?done=withdraw")
        assert "Samtycket är återkallat" in done.text and "Återkallat" in done.text
    (withdrawn,) = consents_of_tolvan(web)
    assert withdrawn["status"] == "inactive"
    web.system.settle()
    assert region_entries_withheld_from(web, MUNICIPALITY)
    # The person still sees the whole plan.
    with browser_of(web, "person") as browser:
        assert REGION_NEED in browser.get(f"/me/plans/{web.demo['active']}").text


def test_limiting_consent_with_a_block_after_the_confirmation(fresh_web: Web) -> None:
    web = fresh_web
    (consent,) = consents_of_tolvan(web)
    with browser_of(web, "person") as browser:
        choose = browser.get(f"/me/consents/{consent['id']}/limit")
        assert "Vems uppgifter vill du spärra?" in choose.text
        unchosen = browser.submit_form(choose, "form-block")
        assert unchosen.status_code == 422 and "Välj vilken organisation" in unchosen.text
        review = browser.submit_form(choose, "form-block", organization=REGION, until="")
        assert review.status_code == 200
        meaning = section(review.text, "Det här betyder det")
        assert f"Det {REGION_NAME} har skrivit om dig i din plan visas inte längre" in meaning
        assert MUNICIPALITY_NAME in meaning
        assert len(consents_of_tolvan(web)) == 1  # nothing done before the confirmation
        done = browser.submit_form(review, "form-block")
        assert str(done.url).endswith("/me/consents?done=block")
        assert "Spärren är registrerad" in done.text and "Häv spärren" in done.text
    blocks = [c for c in consents_of_tolvan(web) if c["provision"]["type"] == "deny"]
    assert len(blocks) == 1 and blocks[0]["organization"][0]["identifier"]["value"] == REGION
    assert any(e.get("valueCode") == "digital" for e in blocks[0]["extension"])
    web.system.settle()
    assert region_entries_withheld_from(web, MUNICIPALITY)
    assert consent["status"] == "active"
