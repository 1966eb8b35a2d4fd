"""The web client's find-a-person and start-a-plan pages (services/web/routes/start.py), over
both services on real HTTP: the personnummer only ever in form bodies, Swedish messages beside
the field, and what the API holds after the guided sequence (plan, consent, invitation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from contracts.canonical import (
    EXT_CONSENT_FORM,
    EXT_INITIATIVE,
    EXT_RECORDED_BY,
)
from contracts.identifiers import PERSONNUMMER_SYSTEM, with_check_digit
from services.common.demo_identities import MUNICIPALITY, OUTSIDER, PEOPLE, REGION
from services.common.fhir_time import SWEDEN
from tests.conftest import System
from tests.web_client import (
    Web,
    WebUser,
    checked_value,
    dashed,
    field_error,
    input_value,
    served_web,
    text_of,
    textarea_value,
)

_serial = iter(range(100, 999))


def new_person() -> str:
    """A personnummer no other test in the module uses (test serial numbers 9xx)."""
    return with_check_digit(f"19750304{900 + next(_serial) % 100}")


@pytest.fixture(scope="module")
def web(system: System) -> Iterator[Web]:
    with served_web(system) as web:
        yield web


@pytest.fixture
def coordinator(web: Web) -> Iterator[WebUser]:
    with web.user("region-coordinator") as user:
        yield user


def plans_of(web: Web, personnummer: str) -> list[dict]:
    bundle = web.region.sip.post(
        "/fhir/CarePlan/_search",
        data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
    ).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def consents_of(web: Web, personnummer: str) -> list[dict]:
    bundle = web.region.consent.post(
        "/fhir/Consent/_search",
        data={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
    ).json()
    return [e["resource"] for e in bundle.get("entry", [])]


# --- Find a person --------------------------------------------------------------------------


def test_finding_a_person_posts_the_personnummer_and_lists_plans_and_consents(
    coordinator: WebUser, web: Web
) -> None:
    person = PEOPLE[0]
    plan_id = web.demo["active"]
    form = coordinator.get("/find")
    assert 'id="form-find"' in form.text and 'method="post"' in form.text

    found = coordinator.submit("/find", {"personnummer": dashed(person.personnummer)})

    assert found.status_code == 200
    page = text_of(found.text)
    assert f'href="/plans/{plan_id}"' in found.text
    assert f'href="/plans/{plan_id}/timeline"' in found.text
    assert "SIP för Tolvan Tolvansson" in page
    assert "Aktiv" in page and "2027-03-01" in page  # status and next follow-up
    # The consent, summarised: in force, between the region and the municipality, by whom.
    assert "Samtycke: gäller" in page
    assert REGION in page and MUNICIPALITY in page
    assert "Personen själv" in page and "skriftligt" in page
    assert "från 2026-01-01" in page
    # The button that starts a plan posts the number on, in a form.
    start = re.search(
        r'<form method="post" action="/plans/new" id="form-start-for-person">(.*?)</form>',
        found.text,
        re.S,
    )
    assert start and "Starta plan för personen" in start.group(1)
    assert input_value(start.group(1), "personnummer") == dashed(person.personnummer)
    coordinator.assert_no_personnummer_in_urls(person.personnummer)
    # Nor in the page's title.
    title = re.search(r"<title>(.*?)</title>", found.text, re.S).group(1)
    assert person.personnummer not in title and dashed(person.personnummer) not in title


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("19121212-9818", "kontrollsiffran"),
        ("19121312-9819", "födelsedatumet finns inte"),
        ("121212-9819", "hela födelseåret"),
        ("1912121298", "tolv siffror"),
        ("19121212-98x9", "bara innehålla siffror"),
        ("", "Ange personnumret"),
    ],
)
def test_an_invalid_personnummer_is_explained_in_swedish_beside_the_field(
    coordinator: WebUser, typed: str, said: str
) -> None:
    answer = coordinator.submit("/find", {"personnummer": typed})

    assert answer.status_code == 422
    assert said in (field_error(answer.text, "personnummer") or "")
    assert 'aria-invalid="true"' in answer.text
    assert input_value(answer.text, "personnummer") == typed  # the input is kept
    assert "Planer för" not in answer.text  # the services were not asked


def test_an_outsider_finds_nothing_of_the_person(web: Web) -> None:
    outsider = web.user("outsider-coordinator")
    person = PEOPLE[0]

    page = outsider.submit("/find", {"personnummer": person.personnummer})

    assert page.status_code == 200
    assert "Planer för" in page.text and "(0)" in page.text
    assert "Tolvan" not in page.text and "Hemtjänst" not in page.text
    assert "Samtycken och spärrar (0)" in text_of(page.text)
    outsider.close()


def test_the_auditor_finds_the_person_but_is_not_offered_to_start_a_plan(web: Web) -> None:
    auditor = web.user("region-auditor")

    page = auditor.submit("/find", {"personnummer": PEOPLE[0].personnummer})

    assert page.status_code == 200
    assert f'href="/plans/{web.demo["active"]}/timeline"' in page.text
    assert "Starta plan för personen" not in page.text
    assert 'id="form-create-plan"' not in auditor.get("/plans/new").text
    auditor.close()


def test_a_form_without_the_csrf_token_is_refused(coordinator: WebUser, web: Web) -> None:
    person = new_person()
    answer = coordinator.submit(
        "/plans/new",
        {"personnummer": person, "description": "Behov", "initiative": "person", "kind": "region"},
        csrf=False,
    )

    assert answer.status_code == 403
    assert "Formuläret kunde inte tas emot" in answer.text
    assert plans_of(web, person) == []


# --- Start a plan: the call, the consent, the invitation -----------------------------------


def test_starting_a_plan_creates_it_registers_consent_and_invites_the_municipality(
    coordinator: WebUser, web: Web
) -> None:
    person = new_person()
    found = coordinator.submit("/find", {"personnummer": person})
    assert "Det finns ingen plan för personen som du får se." in found.text
    # "Starta plan för personen" carries the number into the start form, prefilled.
    prefilled = coordinator.submit("/plans/new", {"personnummer": dashed(person), "from_find": "1"})
    assert prefilled.status_code == 200
    assert 'id="form-create-plan"' in prefilled.text
    assert input_value(prefilled.text, "personnummer") == dashed(person)
    assert checked_value(prefilled.text, "kind") == "region"  # derived from the HSA-id
    assert checked_value(prefilled.text, "initiative") == "region-unit"
    assert REGION in text_of(prefilled.text)  # my organisation and unit, from the token

    step2 = coordinator.submit(
        "/plans/new",
        {
            "personnummer": dashed(person),
            "name": "Stina Test",
            "initiative": "relative",
            "kind": "region",
            "description": "Psykiatrin och hemtjänsten behöver samordnas",
        },
    )

    assert step2.status_code == 200
    plan_id = re.search(r"/plans/([0-9a-f-]{36})/start/consent$", str(step2.url)).group(1)
    assert 'id="form-register-consent"' in step2.text
    assert dashed(person) in text_of(step2.text)  # the person, read from the plan
    plan = web.region.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    assert plan["status"] == "draft"
    assert plan["author"]["identifier"]["value"] == REGION
    assert plan["subject"]["identifier"]["value"] == person
    assert plan["title"] == "SIP för Stina Test"
    assert plan["description"] == "Psykiatrin och hemtjänsten behöver samordnas"
    initiative = [e for e in plan["extension"] if e["url"] == EXT_INITIATIVE]
    assert initiative == [{"url": EXT_INITIATIVE, "valueCode": "relative"}]
    # The consent form names the region (mine) and asks for the municipality.
    assert input_value(step2.text, "region") == REGION
    # Today as the coordinator's calendar has it: Swedish time, not the machine's (an hour
    # apart, the day too between midnight in Sweden and midnight UTC).
    today = datetime.now(SWEDEN).date()
    assert input_value(step2.text, "period_start") == today.isoformat()

    end = (today + timedelta(days=365)).isoformat()
    step3 = coordinator.submit(
        f"/plans/{plan_id}/start/consent",
        {
            "giver_role": "person",
            "form": "oral",
            "region": REGION,
            "municipality": MUNICIPALITY,
            "period_start": today.isoformat(),
            "period_end": end,
        },
    )

    assert step3.status_code == 200
    assert str(step3.url).endswith(
        f"/plans/{plan_id}/start/invite?organization={MUNICIPALITY}&kind=municipality"
    )
    (consent,) = consents_of(web, person)
    assert consent["status"] == "active"
    assert {o["identifier"]["value"] for o in consent["organization"]} == {REGION, MUNICIPALITY}
    assert consent["provision"]["period"]["start"].startswith(today.isoformat()[:4])
    assert "end" in consent["provision"]["period"]
    assert {"url": EXT_CONSENT_FORM, "valueCode": "oral"} in consent["extension"]
    recorded = next(e for e in consent["extension"] if e["url"] == EXT_RECORDED_BY)
    assert {
        "url": "unit",
        "valueIdentifier": {"system": "urn:oid:1.2.752.29.4.19", "value": REGION},
    } in recorded["extension"]
    # The invitation form, prefilled with the municipality the consent named.
    assert input_value(step3.text, "organization") == MUNICIPALITY
    assert checked_value(step3.text, "kind") == "municipality"
    version = input_value(step3.text, "version")

    done = coordinator.submit(
        f"/plans/{plan_id}/start/invite",
        {
            "version": version,
            "organization": MUNICIPALITY,
            "kind": "municipality",
            "name": "Eskilstuna kommun, socialtjänsten",
        },
        follow_redirects=False,
    )

    assert done.status_code == 303
    assert done.headers["location"] == f"/plans/{plan_id}"
    team = web.region.sip.get(f"/fhir/CareTeam/{plan_id}-team").json()
    invited = [
        p["member"]
        for p in team["participant"]
        if p["member"]["identifier"]["value"] == MUNICIPALITY
    ]
    assert invited and invited[0].get("display") == "Eskilstuna kommun, socialtjänsten"
    # The municipality now takes part in the draft: it finds the plan.
    municipality = web.system.as_caller(organization=MUNICIPALITY)
    assert municipality.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    coordinator.assert_no_personnummer_in_urls(person)


def test_a_refused_plan_start_keeps_the_input_and_says_why(
    coordinator: WebUser,
    web: Web,
) -> None:
    person = new_person()
    answer = coordinator.submit(
        "/plans/new",
        {
            "personnummer": dashed(person),
            "initiative": "person",
            "kind": "region",
            "description": "",
        },
    )
    assert answer.status_code == 422
    assert field_error(answer.text, "description") == "Skriv varför en SIP behövs."
    assert input_value(answer.text, "personnummer") == dashed(person)
    assert checked_value(answer.text, "initiative") == "person"
    assert plans_of(web, person) == []

    # A role that may not start plans: told before, and refused by the API if it tries.
    professional = web.user("region-professional")
    page = professional.get("/plans/new")
    assert "Du kan inte starta en plan med din roll (Yrkesperson)" in text_of(page.text)
    assert 'id="form-create-plan"' not in page.text
    refused = professional.submit(
        "/plans/new",
        {"personnummer": person, "initiative": "person", "kind": "region", "description": "Behov"},
    )
    assert refused.status_code == 403
    assert "Du har inte behörighet att göra detta." in text_of(refused.text)
    assert input_value(refused.text, "personnummer") == dashed(person)
    assert plans_of(web, person) == []
    professional.close()


def _plan_form_values(person: str) -> dict[str, str]:
    return {
        "personnummer": dashed(person),
        "initiative": "region-unit",
        "kind": "region",
        "description": "Behöver insatser från båda huvudmännen",
    }


def test_a_plan_form_sent_twice_makes_one_plan(coordinator: WebUser, web: Web) -> None:
    """A double click or a resent post: the second answer leads to the plan the first made."""
    person = new_person()
    form = coordinator.get("/plans/new")
    action, fields = coordinator.form(form, "form-create-plan")
    fields.update(_plan_form_values(person))

    first = coordinator.http.post(action, data=fields, follow_redirects=False)
    again = coordinator.http.post(action, data=fields, follow_redirects=False)

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    (plan,) = plans_of(web, person)
    assert first.headers["location"] == f"/plans/{plan['id']}/start/consent"
    # A fresh form is a fresh submission: the user may start a second plan on purpose.
    second = coordinator.submit_form(
        coordinator.get("/plans/new"), "form-create-plan", **_plan_form_values(person)
    )
    assert second.status_code == 200
    assert len(plans_of(web, person)) == 2


def test_a_plan_form_resent_for_another_person_is_not_answered_with_the_first_plan(
    coordinator: WebUser, web: Web
) -> None:
    first_person, second_person = new_person(), new_person()
    action, fields = coordinator.form(coordinator.get("/plans/new"), "form-create-plan")
    made = coordinator.http.post(
        action, data={**fields, **_plan_form_values(first_person)}, follow_redirects=False
    )
    assert made.status_code == 303

    resent = coordinator.http.post(
        action, data={**fields, **_plan_form_values(second_person)}, follow_redirects=False
    )

    assert resent.status_code == 409
    assert "skapade en plan för en annan person" in field_error(resent.text, "personnummer")
    assert input_value(resent.text, "personnummer") == dashed(second_person)
    assert input_value(resent.text, "submission") != fields["submission"]
    assert plans_of(web, second_person) == []
    assert len(plans_of(web, first_person)) == 1


@pytest.mark.parametrize("key", ["", "not-a-key", "0" * 31, "A" * 32, "'><script>"])
def test_a_plan_form_with_a_missing_or_foreign_key_still_creates_once_per_post(
    coordinator: WebUser, web: Web, key: str
) -> None:
    person = new_person()
    action, fields = coordinator.form(coordinator.get("/plans/new"), "form-create-plan")
    fields.update(_plan_form_values(person), submission=key)

    assert coordinator.http.post(action, data=fields, follow_redirects=False).status_code == 303
    (plan,) = plans_of(web, person)
    assert [i["value"] for i in plan.get("identifier", []) if i["value"] == key] == []


def test_a_consent_form_sent_twice_registers_one_consent(coordinator: WebUser, web: Web) -> None:
    person = new_person()
    plan_id = _started_plan(coordinator, person)
    page = coordinator.get(f"/plans/{plan_id}/start/consent")
    action, fields = coordinator.form(page, "form-register-consent")
    fields.update(CONSENT)

    first = coordinator.http.post(action, data=fields, follow_redirects=False)
    again = coordinator.http.post(action, data=fields, follow_redirects=False)

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert len(consents_of(web, person)) == 1


def _started_plan(user: WebUser, person: str) -> str:
    answer = user.submit(
        "/plans/new",
        {
            "personnummer": person,
            "initiative": "region-unit",
            "kind": "region",
            "description": "Behöver insatser från båda huvudmännen",
        },
    )
    return re.search(r"/plans/([0-9a-f-]{36})/start/consent", str(answer.url)).group(1)


CONSENT = {
    "giver_role": "person",
    "form": "written",
    "region": REGION,
    "municipality": MUNICIPALITY,
    "period_start": "2026-01-01",
    "period_end": "",
}


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        # Refused by the consent service, put beside the field it names.
        ({"period_end": "2025-06-30"}, "period_end", "slutdatum ligger före startdatumet"),
        (
            {"giver_role": "child", "assessor": "", "judged_on": "", "basis": ""},
            "maturity",
            "moget nog",
        ),
        (
            {
                "giver_role": "child",
                "assessor": "Karin Lind",
                "judged_on": "2199-01-01",
                "basis": "Samtal",
            },
            "judged_on",
            "framåt i tiden",
        ),
        # Told by the page before the service is asked.
        ({"period_start": ""}, "period_start", "från vilket datum"),
        (
            {"giver_role": "guardian", "giver_identifier": "19700101-1234"},
            "giver_identifier",
            "kontrollsiffran",
        ),
        (
            {"giver_role": "guardian", "giver_identifier": "", "giver_name": ""},
            "giver_name",
            "Ange namnet",
        ),
        ({"municipality": "Eskilstuna"}, "municipality", "inget HSA-id"),
        # The consent service's registration rule: staff register consents naming their own.
        (
            {"region": "SE2321000016-7P31", "municipality": OUTSIDER},
            "organizations",
            "din egen organisation",
        ),
    ],
)
def test_a_refused_consent_is_shown_beside_its_field_with_the_input_kept(
    coordinator: WebUser, web: Web, changes: dict, field: str, said: str
) -> None:
    person = new_person()
    plan_id = _started_plan(coordinator, person)
    posted = {**CONSENT, **changes}

    answer = coordinator.submit(f"/plans/{plan_id}/start/consent", posted)

    assert answer.status_code in (403, 422)
    assert said in (field_error(answer.text, field) or ""), text_of(answer.text)[:2000]
    assert 'id="error-summary"' in answer.text
    assert checked_value(answer.text, "giver_role") == posted["giver_role"]
    for name in ("region", "municipality", "period_start", "period_end", "giver_identifier"):
        if name in posted:
            assert input_value(answer.text, name) == posted[name]
    if "basis" in posted:
        assert textarea_value(answer.text, "basis") == posted["basis"]
    assert consents_of(web, person) == []
    coordinator.assert_no_personnummer_in_urls(person)


def test_a_guardian_and_a_mature_child_consent_as_recorded(coordinator: WebUser, web: Web) -> None:
    child = with_check_digit("20120301991")
    guardian = with_check_digit("19800101991")
    plan_id = _started_plan(coordinator, child)
    coordinator.submit(
        f"/plans/{plan_id}/start/consent",
        {
            **CONSENT,
            "giver_role": "guardian",
            "giver_identifier": dashed(guardian),
            "giver_name": "Vera Vårdnadshavare",
            "sole_custody": "on",
        },
    )
    (consent,) = consents_of(web, child)
    (performer,) = consent["performer"]
    assert performer["identifier"]["value"] == guardian
    assert performer["display"] == "Vera Vårdnadshavare"
    assert {"url": "soleCustody", "valueBoolean": True} in performer["extension"][0]["extension"]

    found = coordinator.submit("/find", {"personnummer": child})
    assert "Vårdnadshavare: Vera Vårdnadshavare" in text_of(found.text)
    assert ", ensam vårdnadshavare" in text_of(found.text)


def test_a_stale_invitation_gets_the_conflict_page_with_the_input_kept(
    coordinator: WebUser, web: Web
) -> None:
    person = new_person()
    plan_id = _started_plan(coordinator, person)
    page = coordinator.get(f"/plans/{plan_id}/start/invite")
    seen = input_value(page.text, "version")
    # Someone else changes the plan meanwhile.
    web.region.sip.post(
        f"/fhir/CarePlan/{plan_id}/$record-need",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "text", "valueString": "Boende"}],
        },
        headers={"Content-Type": "application/fhir+json"},
    ).raise_for_status()
    posted = {
        "version": seen,
        "organization": MUNICIPALITY,
        "kind": "municipality",
        "name": "Kommunen",
    }

    conflict = coordinator.submit(f"/plans/{plan_id}/start/invite", posted)

    assert conflict.status_code == 409
    page = text_of(conflict.text)
    assert "Någon annan ändrade planen innan din inbjudan sparades" in page
    assert "Behov registrerat" in page
    assert input_value(conflict.text, "organization") == MUNICIPALITY
    assert input_value(conflict.text, "name") == "Kommunen"
    assert int(input_value(conflict.text, "version")) == int(seen) + 1
    team = web.region.sip.get(f"/fhir/CareTeam/{plan_id}-team").json()
    assert MUNICIPALITY not in str(team)

    again = coordinator.submit(
        f"/plans/{plan_id}/start/invite",
        {**posted, "version": input_value(conflict.text, "version")},
        follow_redirects=False,
    )
    assert again.status_code == 303
    # Inviting again is refused beside the field.
    page = coordinator.get(f"/plans/{plan_id}/start/invite")
    twice = coordinator.submit(
        f"/plans/{plan_id}/start/invite", {**posted, "version": input_value(page.text, "version")}
    )
    assert twice.status_code == 409
    assert (
        field_error(twice.text, "organization") == "Organisationen är redan inbjuden till planen."
    )


def test_an_outsider_cannot_reach_the_start_steps_of_anothers_plan(
    coordinator: WebUser,
    web: Web,
) -> None:
    plan_id = _started_plan(coordinator, new_person())
    outsider = web.user("outsider-coordinator")

    for path in (f"/plans/{plan_id}/start/consent", f"/plans/{plan_id}/start/invite"):
        page = outsider.get(path)
        assert page.status_code == 404
        assert "Det finns ingen sådan plan som du får se." in text_of(page.text)
    posted = outsider.submit(f"/plans/{plan_id}/start/consent", CONSENT)
    assert posted.status_code == 404
    outsider.close()
