"""The web client in a real browser (Chromium through Playwright), on the system `sip up
--demo` starts as a newcomer would: every main screen passes axe-core's WCAG 2.1 AA checks
and is kept as a screenshot."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from contracts.identifiers import with_check_digit
from services.common.auth.tokens import default_scopes
from services.common.demo_identities import MUNICIPALITY, REGION
from tests.browser import check_screen, chromium, require_browser
from tests.conftest import Backend
from tests.sip_up import SipUp

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipUp]:
    require_browser()
    data_dir = tmp_path_factory.mktemp("demo")
    system = SipUp(Backend("sqlite", data_dir, {"sip": None, "consent": None}), "--demo")
    try:
        system.wait_ready()
        assert system.wait_printed("Press Ctrl-C to stop."), "".join(system.lines)
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser(demo: SipUp) -> Iterator[object]:
    with chromium() as browser:
        yield browser


def demo_plan(demo: SipUp, person: str) -> str:
    """The id of the demo plan `sip up --demo` printed for the person."""
    line = next(line for line in demo.lines if f"demo: {person}: CarePlan/" in line)
    return line.split("CarePlan/", 1)[1].split()[0]


def submit(page, operation: str, values: dict[str, str | list[str] | bool]) -> None:
    """Opens one of the plan page's forms, fills it in as a user would, and sends it."""
    details = page.locator(f"#details-{operation}")
    if details.count() and details.get_attribute("open") is None:
        details.locator("summary").click()
    form = page.locator(f"#form-{operation}")
    for name, value in values.items():
        field = form.locator(f"[name='{name}']")
        if isinstance(value, bool):
            field.set_checked(value)
        elif isinstance(value, list):
            for each in value:
                form.locator(f"[name='{name}'][value='{each}']").check()
        elif field.first.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()


def sign_in(browser, demo: SipUp, user: str):
    context = browser.new_context(base_url=demo.web_url, locale="sv-SE")
    page = context.new_page()
    page.goto("/signin")
    page.click(f"button[data-user='{user}']")
    return page


def test_sip_up_prints_the_web_client_first_and_token_lines_that_work(demo):
    printed = "".join(demo.lines)
    assert printed.index("Web client:") < printed.index("SIP service:")
    line = next(line for line in demo.lines if "--sub region-coordinator" in line)
    command = shlex.split(line.split("#", 1)[0])
    token = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    answer = httpx.get(
        f"http://127.0.0.1:{demo.sip_port}/fhir/CarePlan?status=active",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200 and answer.json()["total"] >= 1


def test_sign_in_and_the_worklist_pass_the_accessibility_checks(browser, demo):
    page = browser.new_page(base_url=demo.web_url)
    page.goto("/")
    assert page.url.endswith("/signin")
    check_screen(page, "signin")
    page.close()
    page = sign_in(browser, demo, "region-coordinator")
    assert page.url.endswith("/worklist")
    assert page.get_by_role("heading", level=1).inner_text() == "Arbetslista"
    assert page.get_by_role("link", name="SIP för Tolvan Tolvansson", exact=True).is_visible()
    check_screen(page, "worklist")
    page.context.close()


def test_the_persons_own_pages_pass_the_accessibility_checks(browser, demo):
    page = sign_in(browser, demo, "person")
    assert page.url.endswith("/me")
    check_screen(page, "person-plans")
    page.get_by_role("link", name="SIP för Tolvan Tolvansson").first.click()
    check_screen(page, "person-plan")
    page.goto("/me/consents")
    check_screen(page, "person-consents")
    page.goto("/me/access-log")
    check_screen(page, "person-access-log")
    page.context.close()


def test_a_plan_from_first_call_to_activation_printing_and_the_auditors_timeline(browser, demo):
    """The region starts a plan, registers consent and invites the municipality; the
    municipality finds the invitation in its worklist, accepts and adds its intervention; the
    meeting is recorded, the follow-up set, the plan activated and printed; an auditor reads
    the timeline. Every screen passes the accessibility checks."""
    region = sign_in(browser, demo, "region-coordinator")
    region.goto("/plans/new")
    check_screen(region, "start-plan")
    region.fill("[name='personnummer']", with_check_digit("19550405981"))
    region.fill("[name='name']", "Greta Gustavsson")
    region.check("#initiative-region-unit")
    region.fill("[name='description']", "Behöver stöd från både psykiatrin och hemtjänsten")
    region.locator("#form-create-plan button[type=submit]").click()
    region.wait_for_load_state()
    assert "/start/consent" in region.url
    plan = region.url.split("/plans/", 1)[1].split("/", 1)[0]
    check_screen(region, "start-consent")
    region.check("#giver_role-person")
    region.check("#form-written")
    region.fill("[name='municipality']", MUNICIPALITY)
    region.fill("[name='period_start']", "2026-01-01")
    region.locator("#form-register-consent button[type=submit]").click()
    region.wait_for_load_state()
    assert "/start/invite" in region.url, region.locator("main").inner_text()
    region.fill("[name='organization']", MUNICIPALITY)
    region.check("#kind-municipality")
    region.fill("[name='name']", "Eskilstuna kommun, socialtjänsten")
    region.locator("#form-invite-organization button[type=submit]").click()
    region.wait_for_load_state()
    assert region.url.endswith(f"/plans/{plan}"), region.locator("main").inner_text()
    submit(region, "record-need", {"text": "Jag vill må bättre och klara hemmet"})
    submit(
        region,
        "assign-intervention",
        {
            "text": "Samtalsstöd varje vecka",
            "kind": "treatment",
            "responsiblePrincipal": "region",
            "responsibleOrganization": REGION,
            "performerOrganization": REGION,
            "need": ["need-1"],
        },
    )
    submit(region, "assign-overall-responsibility", {"organization": REGION})
    submit(region, "add-participant", {"kind": "person", "name": "Greta Gustavsson"})

    municipality = sign_in(browser, demo, "municipality-coordinator")
    municipality.goto("/worklist?filter=invitations")
    check_screen(municipality, "worklist-invitations")
    municipality.get_by_role("link", name="SIP för Greta Gustavsson", exact=True).click()
    municipality.wait_for_load_state()
    submit(municipality, "accept-invitation", {"contact": "Omar Said, 016-710 00 00"})
    assert "Ni har accepterat inbjudan" in municipality.locator("main").inner_text()
    submit(
        municipality,
        "assign-intervention",
        {
            "text": "Hemtjänst morgon och kväll",
            "kind": "support",
            "responsiblePrincipal": "municipality",
            "responsibleOrganization": MUNICIPALITY,
            "performerOrganization": MUNICIPALITY,
            "need": ["need-1"],
        },
    )
    assert "Hemtjänst morgon och kväll" in municipality.locator("main").inner_text()

    region.reload()
    submit(
        region,
        "schedule-meeting",
        {"start": "2026-12-10T10:00", "end": "2026-12-10T11:00", "location": "Vårdcentralen"},
    )
    submit(
        region,
        "record-meeting",
        {"meeting": "meeting-1", "attendee": ["participant-1"], "notes": "Planen gicks igenom"},
    )
    submit(region, "set-follow-up", {"date": "2027-02-01"})
    submit(region, "activate", {})
    shown = region.locator("main").inner_text()
    assert "Aktiv" in shown, shown
    for promised in ("Samtalsstöd varje vecka", "Hemtjänst morgon och kväll"):
        assert promised in shown
    check_screen(region, "plan")
    region.goto(f"/plans/{plan}/print")
    assert region.locator("form").count() == 0
    printed = region.locator("body").inner_text()
    assert "Hemtjänst morgon och kväll" in printed and "2027-02-01" in printed
    check_screen(region, "plan-print")

    auditor = sign_in(browser, demo, "region-auditor")
    auditor.goto(f"/plans/{plan}/timeline")
    timeline = auditor.locator("main").inner_text()
    assert "Karin Lind" in timeline or "region-coordinator" in timeline
    assert "Omar Said" in timeline or "municipality-coordinator" in timeline
    check_screen(auditor, "timeline")
    for page in (region, municipality, auditor):
        page.context.close()


def test_someone_elses_change_first_shows_what_changed_and_lets_the_user_redo_the_edit(
    browser, demo
):
    plan = demo_plan(demo, "Anna Andersson")
    first = sign_in(browser, demo, "region-coordinator")
    second = sign_in(browser, demo, "region-professional")
    first.goto(f"/plans/{plan}")
    second.goto(f"/plans/{plan}")  # both see the same version
    submit(first, "record-need", {"text": "Stöd med ekonomin"})
    assert "Stöd med ekonomin" in first.locator("main").inner_text()
    submit(second, "record-need", {"text": "Hjälp att komma till läkaren"})
    conflict = second.locator("#conflict")
    assert conflict.is_visible()
    assert "Någon annan hann ändra planen före dig" in conflict.inner_text()
    assert "behov" in conflict.inner_text().lower()  # what the other one changed
    check_screen(second, "plan-conflict")
    kept = second.locator("#form-record-need [name='text']")
    assert kept.input_value() == "Hjälp att komma till läkaren"  # nothing typed is lost
    second.locator("#form-record-need button[type=submit]").click()
    second.wait_for_load_state()
    shown = second.locator("main").inner_text()
    assert "Hjälp att komma till läkaren" in shown and "Stöd med ekonomin" in shown
    first.context.close()
    second.context.close()


def test_an_organisation_outside_the_plan_finds_nothing(browser, demo):
    page = sign_in(browser, demo, "outsider-coordinator")
    assert "Alla planer (0)" in page.locator("main").inner_text()
    for person in ("Tolvan Tolvansson", "Anna Andersson", "Erik Eriksson"):
        answer = page.goto(f"/plans/{demo_plan(demo, person)}")
        assert answer.status == 404
        assert "Hittades inte" in page.locator("h1").inner_text()
        assert person not in page.content()
    check_screen(page, "outsider-not-found")
    page.context.close()


def a_noticed_stay(demo: SipUp) -> tuple[str, str]:
    """A stay of a new person at the demo region's ward, its notice sent to the demo
    coordinators' units, a message from the ward to the municipality, and the municipality
    invited to a meeting of the demo's active plan: (stay id, message id)."""
    from tests.discharge_http import STAFF_SCOPES, admit, step
    from tests.fhir_data import FHIR_JSON, consent, new_personnummer, parameters

    personnummer = new_personnummer("19390303")
    coordinator = demo.backend.issuer.mint(
        subject="region-coordinator", role="coordinator", organization=REGION, unit=REGION,
        scopes=default_scopes("coordinator"),
    )  # fmt: skip
    given = httpx.post(
        f"http://127.0.0.1:{demo.consent_port}/fhir/Consent",
        json=consent(personnummer, organizations=(REGION, MUNICIPALITY)),
        headers={**FHIR_JSON, "Authorization": f"Bearer {coordinator}"},
    )
    assert given.status_code == 201, given.text
    token = demo.backend.issuer.mint(
        subject="ward-nurse", role="professional", organization=REGION,
        unit="SE2321000032-AVD7", scopes=(*STAFF_SCOPES, "user/Communication.cru"),
    )  # fmt: skip
    with httpx.Client(
        base_url=f"http://127.0.0.1:{demo.sip_port}", headers={"Authorization": f"Bearer {token}"}
    ) as ward:
        stay_id = admit(ward, personnummer).json()["id"]
        recipients = [
            {"organization": REGION, "unit": REGION, "kind": "primary-care"},
            {"organization": MUNICIPALITY, "unit": MUNICIPALITY, "kind": "social-services"},
        ]
        for operation, values in (
            ("judge-care-needed", {"principal": ["region", "municipality"]}),
            ("send-admission-notice",
             {"recipient": recipients, "estimatedDischarge": "2030-01-01T10:00:00+01:00"}),
        ):  # fmt: skip
            assert step(ward, stay_id, operation, **values).status_code == 200
        message = ward.post(
            "/fhir/Communication",
            json={
                "resourceType": "Communication",
                "encounter": {"reference": f"Encounter/{stay_id}"},
                "recipient": [{"identifier": {"value": MUNICIPALITY}}],
                "payload": [{"contentString": "Personen har hemtjänst sedan tidigare."}],
            },
            headers=FHIR_JSON,
        )
        assert message.status_code == 201, message.text
    invited = httpx.post(
        f"http://127.0.0.1:{demo.sip_port}/fhir/CarePlan/{demo_plan(demo, 'Tolvan Tolvansson')}"
        "/$invite-to-meeting",
        json=parameters(start="2030-02-01T10:00:00+01:00", end="2030-02-01T11:00:00+01:00",
                        location="Vårdcentralen", organization=[MUNICIPALITY]),
        headers={**FHIR_JSON, "Authorization": f"Bearer {coordinator}"},
    )  # fmt: skip
    assert invited.status_code in (200, 201), invited.text
    return stay_id, message.json()["id"]


def test_my_unit_a_stay_and_its_messages_pass_the_accessibility_checks(browser, demo):
    """Before the person withdraws their consent below (the invitation is to their plan).
    The municipality finds the stay and the ward's message on Min enhet, opens the message
    (marked read), confirms the notice and answers the meeting invitation (proposing another
    time, its end forgotten); primary care's form refuses an empty name."""
    stay_id, message_id = a_noticed_stay(demo)
    municipality = sign_in(browser, demo, "municipality-coordinator")
    municipality.get_by_role("link", name="Min enhet").click()
    assert municipality.get_by_role("heading", level=1).inner_text() == "Min enhet"
    assert "Oläst" in municipality.locator("main").inner_text()
    check_screen(municipality, "my-unit")
    municipality.locator(f"#form-open-{message_id} button").click()
    municipality.wait_for_load_state()
    assert "Personen har hemtjänst sedan tidigare." in municipality.locator("main").inner_text()
    # Read; the stay's admission notice beside it is still unread.
    assert "Oläst" not in municipality.locator(f"#message-{message_id}").inner_text()
    assert "Inskrivningsmeddelande" in municipality.locator("main").inner_text()
    check_screen(municipality, "stay-messages")
    municipality.goto(f"/stays/{stay_id}")
    check_screen(municipality, "stay")
    submit(municipality, "confirm-receipt", {})
    assert "Mottagandet är bekräftat." in municipality.locator("main").inner_text()
    municipality.goto("/unit")
    invitation = municipality.locator("form[id^='form-answer-']")
    invitation.get_by_label("Vi föreslår en annan tid").check()
    invitation.get_by_label("Föreslagen början").fill("2030-02-02T13:00")
    invitation.locator("button[type=submit]").click()
    municipality.wait_for_load_state()
    assert "Ange föreslaget slut" in municipality.locator("main").inner_text()
    check_screen(municipality, "my-unit-answer-errors")
    municipality.context.close()
    region = sign_in(browser, demo, "region-coordinator")
    region.goto(f"/stays/{stay_id}")
    submit(region, "name-care-contact", {"name": " "})
    assert "Fyll i fast vårdkontakt" in region.locator("main").inner_text()
    check_screen(region, "stay-form-errors")
    region.context.close()


def test_admission_notice_and_outpatient_forms_pass_the_accessibility_checks(browser, demo):
    """The region's coordinator admits a patient from Min enhet (first forgetting the number),
    judges the need for care, sends the admission notice (first with one unit half given) on a
    recorded secrecy judgement, and opens the form for the region's outpatient care."""
    from tests.fhir_data import new_personnummer

    region = sign_in(browser, demo, "region-coordinator")
    region.get_by_role("link", name="Min enhet").click()
    region.get_by_role("link", name="Skriv in en patient").click()
    region.wait_for_load_state()
    check_screen(region, "stay-admit")
    submit(region, "admit", {"patient": " "})  # blank: past the browser's own check
    assert "Fyll i personnummer." in region.locator("main").inner_text()
    check_screen(region, "stay-admit-errors")
    personnummer = new_personnummer("19380202")
    submit(region, "admit", {"patient": f"{personnummer[:8]}-{personnummer[8:]}"})
    assert "Personen är inskriven." in region.locator("main").inner_text()
    submit(region, "judge-care-needed", {"principal": ["region", "municipality"]})
    notice = {
        "recipient-social-services-unit": MUNICIPALITY,
        "estimatedDischarge": "2030-01-12T10:00",
        "judgement": "LSU 2017:612: uppgifterna behövs för planeringen inför utskrivningen.",
    }
    submit(region, "send-admission-notice", notice)
    assert "Ange både organisation och enhet" in region.locator("main").inner_text()
    check_screen(region, "stay-notice-errors")
    notice["recipient-social-services-organization"] = MUNICIPALITY
    notice["recipient-primary-care-organization"] = REGION
    notice["recipient-primary-care-unit"] = "SE2321000032-VC1"
    submit(region, "send-admission-notice", notice)
    assert "Inskrivningsmeddelandet är skickat." in region.locator("main").inner_text()
    region.locator("#details-record-outpatient-care-unavailable summary").click()
    check_screen(region, "stay-outpatient-form")
    region.context.close()


def test_the_person_writes_a_goal_approves_a_change_and_withdraws_consent(browser, demo):
    """Last in the module: the withdrawal changes what the municipality sees of the plan."""
    plan = demo_plan(demo, "Tolvan Tolvansson")
    region = sign_in(browser, demo, "region-coordinator")
    region.goto(f"/plans/{plan}")
    submit(
        region,
        "assign-intervention",
        {
            "text": "Stöd att hitta en sysselsättning",
            "kind": "support",
            "responsiblePrincipal": "region",
            "responsibleOrganization": "SE2321000032-DEMO1",
            "performerOrganization": "SE2321000032-DEMO1",
        },
    )
    assert "godkänn" in region.locator("main").inner_text().lower()  # waits for the person
    person = sign_in(browser, demo, "person")
    person.goto(f"/me/plans/{plan}")
    person.locator("#form-set-goal [name='text']").fill("Jag vill kunna laga mat själv")
    person.locator("#form-set-goal button[type=submit]").click()
    person.wait_for_load_state()
    assert "Jag vill kunna laga mat själv" in person.locator("main").inner_text()
    assert "Stöd att hitta en sysselsättning" in person.locator("main").inner_text()
    person.locator("#form-approve-changes button[type=submit]").click()
    person.wait_for_load_state()
    assert person.locator("#form-approve-changes").count() == 0  # nothing waits any more
    person.goto("/me/consents")
    person.locator("a[id^='withdraw-']").first.click()
    assert "kommer inte längre" in person.locator("main").inner_text()  # said before
    check_screen(person, "person-withdraw")
    person.locator("#form-withdraw button[type=submit]").click()
    person.wait_for_load_state()
    municipality = sign_in(browser, demo, "municipality-coordinator")
    municipality.goto(f"/plans/{plan}")
    withheld = municipality.locator(".withheld").all_inner_texts()
    assert any("undanhålls" in text and "Region" in text for text in withheld), withheld
    assert "Samtalsbehandling varannan vecka" not in municipality.locator("main").inner_text()
    check_screen(municipality, "plan-withheld")
    for page in (region, person, municipality):
        page.context.close()
