"""The web client's timeline of a plan (services/web/routes/timeline.py): one row per version
with who, when, organisation, unit and the consent relied on, and the plan as it stood at a
chosen moment, over both services on real HTTP, for the organisations taking part and their
auditors only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from services.common.demo_identities import MUNICIPALITY, REGION
from tests.conftest import System
from tests.web_client import Web, WebUser, field_error, served_web, text_of


@pytest.fixture(scope="module")
def web(system: System) -> Iterator[Web]:
    with served_web(system) as web:
        yield web


@pytest.fixture
def coordinator(web: Web) -> Iterator[WebUser]:
    with web.user("region-coordinator") as user:
        yield user


def rows(page: str) -> list[tuple[int, str]]:
    """(version, the row's text) for each row of the versions table, in the page's order."""
    return [
        (int(version), text_of(row))
        for version, row in re.findall(r'<tr id="version-(\d+)">(.*?)</tr>', page, re.S)
    ]


CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
COLUMNS = ("version", "when", "what", "who", "organization", "unit", "consent", "then")


def cells(page: str) -> dict[int, dict[str, str]]:
    """Each version's row, by column."""
    return {
        int(version): dict(zip(COLUMNS, map(text_of, CELL.findall(row)), strict=True))
        for version, row in re.findall(r'<tr id="version-(\d+)">(.*?)</tr>', page, re.S)
    }


def as_of_section(page: str) -> str:
    return text_of(page.split('id="as-of-heading"', 1)[1])


def version_instants(web: Web, plan_id: str) -> dict[int, str]:
    history = web.region.sip.get(f"/fhir/CarePlan/{plan_id}/_history").json()
    return {
        int(e["resource"]["meta"]["versionId"]): e["resource"]["meta"]["lastUpdated"]
        for e in history["entry"]
    }


def test_the_timeline_lists_every_version_newest_first_with_who_when_unit_and_consent(
    coordinator: WebUser, web: Web
) -> None:
    plan_id = web.demo["active"]
    plan = web.region.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    relied_on = [
        s["identifier"]["value"].removeprefix("urn:uuid:")
        for s in plan["supportingInfo"]
        if s.get("type") == "Consent"
    ]

    page = coordinator.get(f"/plans/{plan_id}/timeline")

    assert page.status_code == 200
    listed = rows(page.text)
    assert [version for version, _ in listed] == list(range(int(plan["meta"]["versionId"]), 0, -1))
    by_version = dict(listed)
    for version, what in [
        (1, "Planen påbörjad"),
        (2, "Organisation inbjuden"),
        (3, "Behov registrerat"),
        (5, "Insats tilldelad"),
        (7, "Huvudansvar tilldelat"),
        (9, "Inbjudan accepterad"),
        (10, "Planen aktiverad"),
    ]:
        assert what in by_version[version]
    for version, row in cells(page.text).items():
        # Version 9 is the municipality's: it accepted its invitation.
        organization = MUNICIPALITY if version == 9 else REGION
        assert row["who"] == "demo-coordinator, samordnare"  # who, and in which role
        assert organization in row["organization"]  # on behalf of which organisation
        assert row["unit"] == organization  # and from which unit
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["when"])  # Swedish time
    # The consent the activation relied on: the consent service's, summarised.
    assert relied_on
    activation = by_version[10]
    assert f"Samtycke {relied_on[0][:8]}" in activation
    assert "Personen själv" in activation and MUNICIPALITY in activation
    assert "–" in by_version[3]  # a version that relied on no consent says so
    assert "Planens historik" in re.search(r"<title>(.*?)</title>", page.text).group(1)


def test_the_plan_as_it_stood_before_an_intervention_does_not_show_it(
    coordinator: WebUser, web: Web
) -> None:
    plan_id = web.demo["active"]
    instants = version_instants(web, plan_id)
    timeline = coordinator.get(f"/plans/{plan_id}/timeline")
    # Each row links to the plan as of its version's own instant.
    assert f"/plans/{plan_id}/timeline?at={instants[4].replace(':', '%3A')}" in timeline.text

    before = coordinator.get(f"/plans/{plan_id}/timeline", params={"at": instants[4]})

    assert before.status_code == 200
    then = as_of_section(before.text)
    assert "Version 4" in then and "Utkast" in then
    assert "Jag vill kunna bo kvar hemma" in then  # the need, recorded in version 3
    assert "Klara vardagen hemma med stöd" in then  # the goal, set in version 4
    assert "Hemtjänst två gånger per dag" not in then  # assigned in version 5
    assert "Samtalsbehandling" not in then
    assert "Huvudansvar inte fördelat" in then

    after = as_of_section(
        coordinator.get(f"/plans/{plan_id}/timeline", params={"at": instants[6]}).text
    )
    assert "Hemtjänst två gånger per dag" in after and "Samtalsbehandling" in after
    assert "Kommun: Eskilstuna kommun, socialtjänsten" in after  # with responsibility

    active = as_of_section(
        coordinator.get(f"/plans/{plan_id}/timeline", params={"at": instants[10]}).text
    )
    assert "Aktiv" in active and "Samtycken planen vilade på då" in active

    # A date typed in the form (Swedish local time, as `datetime-local` sends it) works too,
    # and one before the plan existed says so.
    earlier = coordinator.get(f"/plans/{plan_id}/timeline", params={"at": "2000-01-01T12:00"})
    assert "Planen fanns inte vid den tidpunkten." in as_of_section(earlier.text)
    nonsense = coordinator.get(f"/plans/{plan_id}/timeline", params={"at": "igår"})
    assert nonsense.status_code == 422
    assert (
        field_error(nonsense.text, "at")
        == "Tidpunkten kunde inte läsas. Välj ett datum och en tid."
    )


def test_withheld_entries_are_marked_in_the_plan_as_it_stood(web: Web) -> None:
    # The municipality on the plan whose consent was withdrawn: the region's entries withheld.
    plan_id = web.demo["consent-withdrawn"]
    municipality = web.user("municipality-coordinator")

    page = municipality.get(f"/plans/{plan_id}/timeline", params={"at": "2199-01-01T00:00"})

    then = as_of_section(page.text)
    assert "1 behov från" in then and "undanhålls: samtycke saknas" in then
    assert "2 insatser från" in then
    assert "Jag vill kunna bo kvar hemma" not in then
    municipality.close()


def test_an_outsider_sees_nothing_of_the_timeline(web: Web) -> None:
    plan_id = web.demo["active"]
    outsider = web.user("outsider-coordinator")

    for params in ({}, {"at": "2199-01-01T00:00"}):
        page = outsider.get(f"/plans/{plan_id}/timeline", params=params)
        assert page.status_code == 404
        shown = text_of(page.text)
        assert "Det finns ingen sådan plan som du får se." in shown
        for secret in ("Tolvan", "Behov registrerat", "demo-coordinator", "Hemtjänst"):
            assert secret not in shown
    outsider.close()


def test_the_auditor_sees_the_timeline_and_the_plan_as_it_stood(
    web: Web,
) -> None:
    plan_id = web.demo["active"]
    instants = version_instants(web, plan_id)
    auditor = web.user("region-auditor")

    page = auditor.get(f"/plans/{plan_id}/timeline")
    assert page.status_code == 200
    assert len(rows(page.text)) == len(instants)
    assert "Planen aktiverad" in text_of(page.text)
    then = auditor.get(f"/plans/{plan_id}/timeline", params={"at": instants[5]})
    shown = as_of_section(then.text)
    assert "Hemtjänst två gånger per dag" in shown and "Samtalsbehandling" not in shown
    # The auditor reaches it from the worklist.
    worklist = auditor.get("/worklist")
    assert f'href="/plans/{plan_id}/timeline"' in worklist.text
    auditor.close()
