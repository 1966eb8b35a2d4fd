"""An admission happens once (services/sip/discharge/admission.py), over HTTP on both backends:
sent twice, in sequence or at once, with `If-None-Exist` on its identifier, it makes one stay;
an identifier reused for another person, or without the condition, is a 409 that tells nothing
of the stay; a malformed condition or identifier is a 400 naming it; another organisation's
identical identifier is its own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import Any

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from tests.discharge_http import WARD, log_extract, staff
from tests.fhir_data import FHIR_JSON, OTHER_REGION, REGION, new_personnummer, parameters

ENCOUNTER_NUMBER = "https://sjukhus.example.se/vardkontakt"
IDENTIFIER = "Parameters.parameter.where(name='identifier')"
_serial = count(1)


def encounter_number() -> dict[str, str]:
    return {"system": ENCOUNTER_NUMBER, "value": f"VK-{next(_serial)}-{new_personnummer()}"}


def admission(personnummer: str, *identifiers: dict[str, Any]) -> dict[str, Any]:
    body = parameters(ward=WARD)
    body["parameter"] += [
        {"name": "patient",
         "valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": personnummer}},
        *({"name": "identifier", "valueIdentifier": i} for i in identifiers),
    ]  # fmt: skip
    return body


def admit(client: Any, body: dict[str, Any], condition: str | None = None) -> Any:
    headers = {**FHIR_JSON, **({"If-None-Exist": condition} if condition else {})}
    return client.post("/fhir/Encounter/$admit", json=body, headers=headers)


def on(identifier: dict[str, str]) -> str:
    return f"identifier={identifier['system']}|{identifier['value']}"


def stays_of(client: Any, personnummer: str) -> list[str]:
    found = client.post(
        "/fhir/Encounter/_search",
        data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
    )
    assert found.status_code == 200, found.text
    return [entry["resource"]["id"] for entry in found.json().get("entry", [])]


def expression_of(response: Any) -> list[str]:
    return [e for issue in response.json()["issue"] for e in issue.get("expression", [])]


def test_the_same_admission_sent_twice_is_one_stay(system):
    ward = staff(system, REGION, WARD)
    personnummer, number = new_personnummer(), encounter_number()
    body = admission(personnummer, number)
    first = admit(ward, body, on(number))
    assert first.status_code == 200, first.text
    assert first.json()["identifier"] == [number]
    again = admit(ward, body, on(number))
    assert again.status_code == 200, again.text
    stay_id = first.json()["id"]
    assert again.json()["id"] == stay_id
    assert again.headers["Location"].endswith(f"/fhir/Encounter/{stay_id}/_history/1")
    assert stays_of(ward, personnummer) == [stay_id]


def test_concurrent_admissions_with_one_identifier_make_one_stay(system):
    personnummer, number = new_personnummer(), encounter_number()
    body = admission(personnummer, number)
    wards = [staff(system, REGION, WARD) for _ in range(8)]

    def send(client: Any) -> Any:
        return admit(client, body, on(number))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, wards))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert stays_of(wards[0], personnummer) == list(ids)


def test_an_identifier_reused_for_another_person_is_refused_and_tells_nothing(system):
    ward = staff(system, REGION, WARD)
    first_person, number = new_personnummer(), encounter_number()
    made = admit(ward, admission(first_person, number), on(number))
    assert made.status_code == 200, made.text
    other_person = new_personnummer()
    for condition in (on(number), None):
        refused = admit(ward, admission(other_person, number), condition)
        assert refused.status_code == 409, refused.text
        assert expression_of(refused) == [IDENTIFIER]
        assert first_person not in refused.text and made.json()["id"] not in refused.text
        assert "Location" not in refused.headers
    assert stays_of(ward, other_person) == []


def test_a_plain_admission_with_a_used_identifier_is_a_conflict(system):
    ward = staff(system, REGION, WARD)
    personnummer, number = new_personnummer(), encounter_number()
    body = admission(personnummer, number)
    assert admit(ward, body).status_code == 200
    again = admit(ward, body)
    assert again.status_code == 409, again.text
    assert expression_of(again) == [IDENTIFIER] and "If-None-Exist" in again.text
    assert len(stays_of(ward, personnummer)) == 1


def test_another_organisation_neither_collides_with_nor_learns_of_the_identifier(system):
    number = encounter_number()
    ours = admit(staff(system, REGION, WARD), admission(new_personnummer(), number), on(number))
    other_ward = staff(system, OTHER_REGION, f"{OTHER_REGION.partition('-')[0]}-WARD2")
    theirs = admit(other_ward, admission(new_personnummer(), number), on(number))
    assert ours.status_code == theirs.status_code == 200, theirs.text
    assert ours.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize(
    "header",
    [
        "identifier=",
        "identifier=no-bar",
        f"subject:identifier={ENCOUNTER_NUMBER}|x",
        f"identifier={ENCOUNTER_NUMBER}|other",  # not the posted admission's identifier
        f"identifier={ENCOUNTER_NUMBER}|x&status=in-progress",
        "status=in-progress",
    ],
)
def test_a_malformed_if_none_exist_is_refused_by_name(system, header):
    ward = staff(system, REGION, WARD)
    personnummer = new_personnummer()
    body = admission(personnummer, {"system": ENCOUNTER_NUMBER, "value": "x"})
    refused = admit(ward, body, header)
    assert refused.status_code == 400, refused.text
    assert expression_of(refused) == ["If-None-Exist"]
    assert stays_of(ward, personnummer) == []


@pytest.mark.parametrize(
    "identifiers",
    [
        [{"system": "not a uri", "value": "1"}],
        [{"system": ENCOUNTER_NUMBER, "value": ""}],
        [{"system": ENCOUNTER_NUMBER, "value": "x" * 129}],
        [{"system": PERSONNUMMER_SYSTEM, "value": "191212121212"}],
        [{"system": ENCOUNTER_NUMBER, "value": "1"}, {"system": ENCOUNTER_NUMBER, "value": "1"}],
        [{"system": ENCOUNTER_NUMBER, "value": "1", "use": "official"}],
    ],
)
def test_a_malformed_identifier_is_refused_by_name(system, identifiers):
    ward = staff(system, REGION, WARD)
    personnummer = new_personnummer()
    refused = admit(ward, admission(personnummer, *identifiers))
    assert refused.status_code == 400, refused.text
    assert expression_of(refused) == [IDENTIFIER]
    assert stays_of(ward, personnummer) == []


def test_an_admission_and_its_replay_are_each_in_the_persons_log_extract(system):
    """The replay answers with the stay the first made: a disclosure of the stay, logged as
    a read of it; an admission refused for reusing the identifier for another person leaves
    nothing about the stay in that person's extract."""
    ward = staff(system, REGION, WARD)
    personnummer, number = new_personnummer(), encounter_number()
    body = admission(personnummer, number)
    stay_id = admit(ward, body, on(number)).json()["id"]
    assert admit(ward, body, on(number)).status_code == 200
    logged = [
        (
            record["subtype"][0]["code"],
            [e.get("what", {}).get("reference") for e in record["entity"]],
        )
        for record in log_extract(system, personnummer)
    ]
    assert sorted(logged) == [
        ("create", [None, f"Encounter/{stay_id}/_history/1"]),
        ("read", [None, f"Encounter/{stay_id}"]),
    ], logged
    other = new_personnummer()
    assert admit(ward, admission(other, number), on(number)).status_code == 409
    assert stay_id not in str(log_extract(system, other))
