"""An integrator's first hour with an off-the-shelf FHIR client library (fhirpy), as the
README shows it: only a base URL and a token, against both services on both backends.
Creates, searches, pages (`fetch_all`), reads, counts and get-or-creates plans and consents
the way the library sends them, with no adapter of ours in between.

What the library sends that the services had to learn: `count()` adds `_totalMethod=count`
to a `_count=0` search, and `get_or_create` is a POST with the condition in the query
string (`POST /CarePlan?identifier=system|value`) rather than in `If-None-Exist`."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.demo_identities import REGION as DEMO_REGION
from tests.fhir_data import OTHER_REGION, care_plan, consent, new_personnummer

SOURCE = "https://journal.example.se/sip"
PLANS = 250
PAGE = 20
_serial = count(1)


def fhir_client(base_url: str, token: str) -> SyncFHIRClient:
    """What an integrator configures: the service's FHIR base and a bearer token."""
    return SyncFHIRClient(f"{base_url}/fhir", authorization=f"Bearer {token}")


@pytest.fixture(scope="module")
def sip(system) -> SyncFHIRClient:
    return fhir_client(system.sip_url, system.token())


@pytest.fixture(scope="module")
def consents(system) -> SyncFHIRClient:
    return fhir_client(system.consent_url, system.token())


def of_person(personnummer: str) -> dict[str, str]:
    return {"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}


def new_identifier() -> dict[str, str]:
    return {"system": SOURCE, "value": f"client-{next(_serial)}-{new_personnummer()}"}


def token_of(identifier: dict[str, str]) -> str:
    return f"{identifier['system']}|{identifier['value']}"


def test_paging_visits_each_of_250_plans_exactly_once_while_plans_are_added(sip):
    personnummer = new_personnummer()
    made = {sip.resource("CarePlan", **care_plan(personnummer)).save().id for _ in range(PLANS)}
    assert len(made) == PLANS

    search = sip.resources("CarePlan").search(**of_person(personnummer)).limit(PAGE)
    assert search.count() == PLANS
    seen: list[str] = []
    for plan in search:  # fhirpy follows Bundle.link next, page by page
        if len(seen) == PAGE:  # another client writes while this one pages
            for _ in range(5):
                sip.resource("CarePlan", **care_plan(personnummer)).save()
        seen.append(plan.id)
    assert Counter(seen).most_common(1)[0][1] == 1, "a plan was visited twice"
    assert made <= set(seen), "a plan that existed when paging began was missed"
    assert len(search.fetch_all()) == PLANS + 5
    assert search.count() == PLANS + 5


def test_create_read_search_and_count_plans(sip):
    personnummer = new_personnummer()
    created = sip.resource("CarePlan", **care_plan(personnummer)).save()
    assert created.id and created.meta.versionId == "1"

    read = sip.reference("CarePlan", created.id).to_resource()
    assert read.id == created.id
    assert read.status == "draft"
    assert read.subject.identifier.value == personnummer

    found = sip.resources("CarePlan").search(**of_person(personnummer), status="draft")
    assert [plan.id for plan in found.fetch()] == [created.id]
    assert found.count() == 1
    assert found.first().id == created.id
    assert found.get().id == created.id
    assert sip.resources("CarePlan").search(**of_person(personnummer), status="active").count() == 0


def test_get_or_create_makes_one_plan_however_often_it_is_retried(sip):
    identifier = new_identifier()
    plan = {**care_plan(new_personnummer()), "identifier": [identifier]}
    by_identifier = sip.resources("CarePlan").search(identifier=token_of(identifier))

    first, created = by_identifier.get_or_create(sip.resource("CarePlan", **plan))
    assert created
    for _ in range(3):  # a retry after a lost answer
        again, created = by_identifier.get_or_create(sip.resource("CarePlan", **plan))
        assert not created
        assert again.id == first.id
    assert [p.id for p in by_identifier.fetch_all()] == [first.id]
    assert by_identifier.count() == 1


def test_get_or_create_refuses_a_condition_the_resource_would_not_meet(sip):
    """A condition naming another identifier could never stop the next retry: a 400, and
    nothing is made."""
    plan = {**care_plan(new_personnummer()), "identifier": [new_identifier()]}
    other = new_identifier()
    search = sip.resources("CarePlan").search(identifier=token_of(other))
    with pytest.raises(OperationOutcome) as refused:
        search.get_or_create(sip.resource("CarePlan", **plan))
    assert "identifier" in str(refused.value)
    assert search.count() == 0
    by_status = sip.resources("CarePlan").search(status="draft")
    with pytest.raises(OperationOutcome):  # not a condition this server keeps
        by_status.get_or_create(sip.resource("CarePlan", **plan))


def test_consents_through_the_library(consents):
    personnummer = new_personnummer()
    given = consents.resource("Consent", **consent(personnummer)).save()
    assert consents.reference("Consent", given.id).to_resource().status == "active"

    about_person = consents.resources("Consent").search(
        **{"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
    )
    assert [c.id for c in about_person.fetch_all()] == [given.id]
    assert about_person.count() == 1

    identifier = new_identifier()
    recorded = {**consent(personnummer), "identifier": [identifier]}
    by_identifier = consents.resources("Consent").search(identifier=token_of(identifier))
    first, created = by_identifier.get_or_create(consents.resource("Consent", **recorded))
    again, created_again = by_identifier.get_or_create(consents.resource("Consent", **recorded))
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert about_person.count() == 2


def test_an_outsider_with_the_library_sees_nothing_of_the_plans(system, sip):
    personnummer = new_personnummer()
    for _ in range(3):
        sip.resource("CarePlan", **care_plan(personnummer)).save()
    outsider = fhir_client(system.sip_url, system.token(organization=OTHER_REGION))
    theirs = outsider.resources("CarePlan").search(**of_person(personnummer))
    assert theirs.count() == 0
    assert theirs.fetch_all() == []


def test_the_library_gets_a_400_for_a_total_hint_that_means_nothing(sip):
    hinted: Any = sip.resources("CarePlan").search(_totalMethod="guess")
    with pytest.raises(OperationOutcome) as refused:
        hinted.fetch()
    assert "_totalMethod" in str(refused.value)


def test_a_condition_given_both_as_header_and_query_is_refused_and_nothing_is_made(system, sip):
    """Which one would count is not for the server to guess; `_format` is no condition."""
    identifier = new_identifier()
    plan = {**care_plan(new_personnummer()), "identifier": [identifier]}
    both = system.sip.post(
        "/fhir/CarePlan",
        params={"identifier": token_of(identifier)},
        json=plan,
        headers={"Content-Type": "application/fhir+json", "If-None-Exist": "identifier=x|y"},
    )
    assert both.status_code == 400, both.text
    assert both.json()["issue"][0]["expression"] == ["If-None-Exist"]
    by_identifier = sip.resources("CarePlan").search(identifier=token_of(identifier))
    assert by_identifier.count() == 0
    for expected in (201, 200):
        answer = system.sip.post(
            "/fhir/CarePlan",
            params={"identifier": token_of(identifier), "_format": "json"},
            json=plan,
            headers={"Content-Type": "application/fhir+json"},
        )
        assert answer.status_code == expected, answer.text
    assert by_identifier.count() == 1


README = Path(__file__).parent.parent / "README.md"


def readme_block() -> str:
    """The README's fhirpy example, as a newcomer copies it."""
    section = README.read_text().split("## Integrating with a FHIR client library", 1)[1]
    return re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)[0]


def test_the_readme_example_runs_as_written(system, monkeypatch, capsys):
    """Against these services in place of `make up`'s, with the token `sip token` would print
    for the organisation it names; run twice, the second run finds the plan of the first."""
    code = readme_block().replace("http://127.0.0.1:8000", system.sip_url)
    monkeypatch.setenv("TOKEN", system.token("integration", organization=DEMO_REGION))
    for _ in range(2):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "draft plans" in printed
    assert printed.count("made now") == 1 and printed.count("made before") == 1, printed


def test_operations_through_the_library(sip):
    """A custom operation as the library calls one: a Parameters posted to the instance."""
    plan = sip.resource("CarePlan", **care_plan(new_personnummer())).save()
    need = {"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "Bo kvar"}]}
    changed = sip.reference("CarePlan", plan.id).execute("$record-need", data=need)
    assert changed["resourceType"] == "CarePlan"
    assert changed["meta"]["versionId"] == "2"
    with pytest.raises(OperationOutcome) as refused:  # the refusal names what to change
        sip.reference("CarePlan", plan.id).execute(
            "$record-need", data={"resourceType": "Parameters"}
        )
    assert "text" in str(refused.value)


def test_an_include_through_the_library_brings_the_plans_goals(sip):
    personnummer = new_personnummer()
    plan = sip.resource("CarePlan", **care_plan(personnummer)).save()
    reference = sip.reference("CarePlan", plan.id)
    for operation, name, value in (("$record-need", "text", "Bo kvar"),
                                   ("$set-goal", "text", "Klara mig hemma")):  # fmt: skip
        parameter = [{"name": name, "valueString": value}]
        if operation == "$set-goal":
            parameter.append({"name": "need", "valueString": "need-1"})
        reference.execute(operation, data={"resourceType": "Parameters", "parameter": parameter})
    search = sip.resources("CarePlan").search(**of_person(personnummer)).include("CarePlan", "goal")
    bundle = search.fetch_raw()
    kinds = sorted((e.resource.resourceType, e.search.mode) for e in bundle.entry)
    assert kinds == [("CarePlan", "match"), ("Goal", "include")]
    assert [p.id for p in search.fetch()] == [plan.id]  # the library keeps the matches


def test_the_async_client_pages_and_get_or_creates_the_same(system):
    """fhirpy's AsyncFHIRClient (aiohttp underneath) against the same conventions."""
    personnummer = new_personnummer()
    identifier = new_identifier()

    async def integrate() -> tuple[list[str], set[bool], set[str]]:
        client = AsyncFHIRClient(f"{system.sip_url}/fhir", authorization=f"Bearer {system.token()}")
        for _ in range(7):
            await client.resource("CarePlan", **care_plan(personnummer)).save()
        paged = (
            await client.resources("CarePlan")
            .search(**of_person(personnummer))
            .limit(3)
            .fetch_all()
        )
        plan = {**care_plan(personnummer), "identifier": [identifier]}
        search = client.resources("CarePlan").search(identifier=token_of(identifier))
        answers = [
            await search.get_or_create(client.resource("CarePlan", **plan)) for _ in range(2)
        ]
        return (
            [p.id for p in paged],
            {created for _, created in answers},
            {p.id for p, _ in answers},
        )

    paged, created, ids = asyncio.run(integrate())
    assert len(paged) == len(set(paged)) == 7
    assert created == {True, False} and len(ids) == 1
