"""Issue 11's reproductions of hostile input: each is a 4xx OperationOutcome, nothing is
written, and search and the access log keep working for everyone afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_SYSTEM,
    InvalidIdentifier,
    parse_hsa_id,
    parse_person_identifier,
)
from services.common.fhir_time import InvalidDateTime, parse_fhir_date, parse_fhir_datetime
from services.common.resource_routes import storable_text
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    parameters,
)


def assert_refused(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def assert_still_working(system: Any, personnummer: str | None = None) -> None:
    assert system.sip.get("/fhir/CarePlan").status_code == 200
    assert system.consent.get("/fhir/Consent").status_code == 200
    auditor = system.as_caller("auditor")
    assert auditor.sip.get("/fhir/AuditEvent").status_code == 200
    assert auditor.consent.get("/fhir/AuditEvent").status_code == 200
    if personnummer:
        patient = system.as_caller("patient", organization=None, patient=personnummer)
        assert patient.sip.get(f"/fhir/Patient/{personnummer}/$access-log").status_code == 200


def new_plan(system: Any) -> tuple[str, str]:
    personnummer = new_personnummer()
    response = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"], personnummer


def plan_version(system: Any, plan_id: str) -> str:
    return system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"]


def operation(system: Any, plan_id: str, name: str, body: Any) -> Any:
    return system.sip.post(f"/fhir/CarePlan/{plan_id}/${name}", json=body, headers=FHIR_JSON)


def one(name: str, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": name, **value}]}


# Finding 1: JSON null, and wrong shapes of Parameters (finding 5), at every operation.
NULL_AND_SHAPES = {
    "invite-null-name": (
        "invite-organization",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "organization", "valueIdentifier": {"value": "SE2120000357-K0001"}},
                {"name": "kind", "valueCode": "municipality"},
                {"name": "name", "valueString": None},
            ],
        },
    ),
    "invite-null-organization": ("invite-organization", one("organization", valueString=None)),
    "need-null-text": ("record-need", one("text", valueString=None)),
    "goal-null-text": ("set-goal", one("text", valueString=None)),
    "meeting-null-start": ("schedule-meeting", one("start", valueDateTime=None)),
    "follow-up-null-date": ("set-follow-up", one("date", valueDate=None)),
    "parameter-is-5": ("record-need", {"resourceType": "Parameters", "parameter": 5}),
    "parameter-is-true": ("record-need", {"resourceType": "Parameters", "parameter": True}),
    "parameter-item-5": ("record-need", {"resourceType": "Parameters", "parameter": [5]}),
    "part-is-5": (
        "allocate-cost",
        {"resourceType": "Parameters", "parameter": [{"name": "share", "part": 5}]},
    ),
    "need-text-5": ("record-need", one("text", valueString=5)),
    "need-text-list": ("record-need", one("text", valueString=["a"])),
    "need-text-nul": ("record-need", one("text", valueString="a\x00b")),
    "need-text-too-long": ("record-need", one("text", valueString="x" * 10_001)),
    "meeting-year-1": (
        "schedule-meeting",
        parameters(start="0001-01-01T00:00:00Z", end="0001-01-01T01:00:00Z"),
    ),
    "meeting-year-9999": (
        "schedule-meeting",
        parameters(start="9999-12-31T23:00:00Z", end="9999-12-31T23:59:59Z"),
    ),
    "follow-up-year-9999": ("set-follow-up", parameters(date="9999-12-31")),
    "follow-up-year-1": ("set-follow-up", parameters(date="0001-01-01")),
    "invite-arabic-indic-hsa": (
        "invite-organization",
        parameters(organization="SE٢١٢٠٠٠٠٣٥٧-K0001", kind="municipality"),
    ),
}


@pytest.mark.parametrize("case", NULL_AND_SHAPES, ids=list(NULL_AND_SHAPES))
def test_bad_operation_parameters_are_refused_and_nothing_is_written(system, case):
    plan_id, personnummer = new_plan(system)
    before = plan_version(system, plan_id)
    name, body = NULL_AND_SHAPES[case]
    issue = assert_refused(operation(system, plan_id, name, body), 400, 422)
    if case.endswith("null-text"):
        assert issue["expression"] == ["Parameters.parameter.where(name='text').valueString"]
    assert plan_version(system, plan_id) == before
    assert_still_working(system, personnummer)


def raw_post(client: Any, path: str, content: bytes, **headers: str) -> Any:
    return client.post(path, content=content, headers={**FHIR_JSON, **headers})


def test_deep_nesting_is_refused_without_recursing(system):
    for body in (b"[" * 100_000, b'{"a":' * 100_000, b"[" * 65 + b"]" * 65):
        assert_refused(raw_post(system.sip, "/fhir/CarePlan", body), 400)
        assert_refused(raw_post(system.consent, "/fhir/Consent", body), 400)
    assert_still_working(system)


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceType":"\\ud800"}',
        b'{"resourceType":"CarePlan","title":"a\\u0000b"}',
        b'{"resourceType":"CarePlan","title":"\\udfff"}',
    ],
    ids=["lone-surrogate-type", "nul-in-title", "lone-low-surrogate"],
)
def test_nul_and_lone_surrogates_in_a_body_are_refused(system, body):
    issue = assert_refused(raw_post(system.sip, "/fhir/CarePlan", body), 400)
    assert issue.get("expression")
    assert_refused(raw_post(system.consent, "/fhir/Consent", body), 400)
    assert_still_working(system)


@pytest.mark.parametrize(
    ("element", "expression"),
    [
        (("title",), "CarePlan.title"),
        (("author", "identifier"), "CarePlan.author.identifier"),
        (("subject", "identifier", "value"), "CarePlan.subject.identifier.value"),
    ],
)
def test_a_null_in_a_resource_is_refused_by_its_path(system, element, expression):
    plan = care_plan(new_personnummer())
    target = plan
    for key in element[:-1]:
        target = target[key]
    target[element[-1]] = None
    before = system.sip.get("/fhir/CarePlan").json()["total"]
    response = system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON)
    assert assert_refused(response, 400)["expression"] == [expression]
    assert system.sip.get("/fhir/CarePlan").json()["total"] == before


def test_a_null_in_a_consent_is_refused(system):
    for path in (("provision", "period", "end"), ("dateTime",), ("performer",)):
        given = consent(new_personnummer())
        target = given
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = None
        response = system.consent.post("/fhir/Consent", json=given, headers=FHIR_JSON)
        assert assert_refused(response, 400)["expression"] == ["Consent." + ".".join(path)]


def test_a_surrogate_in_a_need_text_is_refused(system):
    plan_id, personnummer = new_plan(system)
    before = plan_version(system, plan_id)
    body = b'{"resourceType":"Parameters","parameter":[{"name":"text","valueString":"\\ud800"}]}'
    response = raw_post(system.sip, f"/fhir/CarePlan/{plan_id}/$record-need", body)
    assert assert_refused(response, 400)["expression"] == ["Parameters.parameter[0].valueString"]
    assert plan_version(system, plan_id) == before
    assert_still_working(system, personnummer)


def test_a_body_over_the_size_limit_is_413(system):
    plan = care_plan(new_personnummer())
    plan["description"] = "x" * (1024 * 1024 + 10)
    before = system.sip.get("/fhir/CarePlan").json()["total"]
    assert_refused(system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON), 413)

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(2 * 1024):
            yield b" " * 1024

    response = system.sip.post("/fhir/CarePlan", content=chunks(), headers=FHIR_JSON)
    assert_refused(response, 413)
    assert system.sip.get("/fhir/CarePlan").json()["total"] == before
    assert_still_working(system)


def test_a_charset_other_than_utf8_is_415(system):
    body = care_plan(new_personnummer())
    content = json.dumps(body).encode("latin-1")
    response = system.sip.post(
        "/fhir/CarePlan",
        content=content,
        headers={"Content-Type": "application/json; charset=latin-1"},
    )
    assert_refused(response, 415)
    ok = system.sip.post(
        "/fhir/CarePlan",
        content=content,
        headers={"Content-Type": "application/fhir+json; charset=UTF-8"},
    )
    assert ok.status_code == 201, ok.text


def test_control_characters_in_paths_and_queries_are_refused_before_logging(system):
    plan_id, personnummer = new_plan(system)
    auditor = system.as_caller("auditor")
    for client, path in [
        (system.sip, f"/fhir/Goal/{plan_id}-goal-%00"),
        (system.sip, f"/fhir/CarePlan/{plan_id}%01"),
        (auditor.sip, "/fhir/AuditEvent?_format=%00"),
        (system.sip, "/fhir/CarePlan?subject:identifier=%00"),
        (system.sip, "/fhir/CarePlan?title=a%1Fb"),
        (system.consent, "/fhir/Consent?patient:identifier=%00"),
        (system.sip, f"/fhir/Patient/{personnummer}/$access-log?_format=%00"),
        (system.sip, "/events?type=%00"),
    ]:
        assert_refused(client.get(path), 400)
    for odd_version in ("%C2%B2", "9" * 5000, "%D9%A1"):
        path = f"/fhir/CarePlan/{plan_id}/_history/{odd_version}"
        assert_refused(system.sip.get(path), 404)
    assert_still_working(system, personnummer)


@pytest.mark.parametrize(
    "if_match", ['W/"²"', 'W/"' + "9" * 5000 + '"', 'W/"-1"', 'W/"١"'], ids=str
)
def test_odd_if_match_versions_are_refused(system, if_match):
    plan_id, personnummer = new_plan(system)
    before = plan_version(system, plan_id)
    response = system.sip.post(
        f"/fhir/CarePlan/{plan_id}/$record-need",
        json=parameters(text="behov"),
        headers={**FHIR_JSON, "If-Match": if_match.encode()},
    )
    assert_refused(response, 400, 412)
    assert plan_version(system, plan_id) == before
    assert_still_working(system, personnummer)


@pytest.mark.parametrize(
    "query",
    ["_count=-1", "_count=1001", "_count=abc", "_count=%C2%B2", "_count=1e3"],
)  # `_count=0` asks for the total only (tests/test_paging.py)
def test_count_out_of_range_is_400(system, query):
    assert_refused(system.sip.get(f"/fhir/CarePlan?{query}"), 400)
    assert_refused(system.consent.get(f"/fhir/Consent?{query}"), 400)
    assert_refused(system.sip.get(f"/fhir/CarePlan/_history?{query}"), 400)


def test_count_limits_a_search(system):
    for _ in range(2):
        new_plan(system)
    bundle = system.sip.get("/fhir/CarePlan?_count=1").json()
    assert len(bundle["entry"]) == 1


@pytest.mark.parametrize(
    "query", ["after=99999999999999999999", "after=%C2%B2", "after=-1", "limit=0", "limit=1e3"]
)
def test_odd_event_feed_cursors_are_400(system, query):
    reader = system.as_caller("integration", scopes=("system/Event.rs",))
    response = reader.sip.get(f"/events?{query}")
    assert_refused(response, 400)


DATE_QUERIES = [
    "/fhir/CarePlan?date=le9999-12-31",
    "/fhir/CarePlan?date=ge0001-01-01",
    "/fhir/CarePlan?date=gt9999-12-31",
    "/fhir/CarePlan?date=lt0001-01-01",
    "/fhir/CarePlan?follow-up-due=lt0001-01-01",
    "/fhir/CarePlan?follow-up-due=le9999-12-31",
    "/fhir/CarePlan/_history?_since=0001-01-01",
    "/fhir/CarePlan/_history?_since=9999-12-31T23:59:59Z",
    "/fhir/Consent?_lastUpdated=le9999-12-31",
    "/fhir/Consent?_lastUpdated=ge0001-01-01",
    "/fhir/Consent/_history?_since=0001-01-01",
]


@pytest.mark.parametrize("path", DATE_QUERIES)
def test_dates_at_the_edges_are_400(system, path):
    client = system.consent if "Consent" in path else system.sip
    assert_refused(client.get(path), 400)
    assert_still_working(system)


def test_time_travel_to_year_one_is_400(system):
    plan_id, personnummer = new_plan(system)
    for query in ("_at=0001-01-01", "_at=9999-12-31"):
        assert_refused(system.sip.get(f"/fhir/CarePlan/{plan_id}?{query}"), 400)
    for query in ("_at=0001-01-01", "_at=9999-12-31", "_since=0001-01-01"):
        assert_refused(system.sip.get(f"/fhir/CarePlan/{plan_id}/_history?{query}"), 400)
    assert_still_working(system, personnummer)


def test_a_consent_period_at_the_edges_is_refused(system):
    before = system.consent.get("/fhir/Consent").json()["total"]
    for period in ({"start": "2026-01-01", "end": "9999-12-31"}, {"start": "0001-01-01"}):
        resource = consent(new_personnummer(), period=period)
        response = system.consent.post("/fhir/Consent", json=resource, headers=FHIR_JSON)
        assert_refused(response, 400, 422)
    assert system.consent.get("/fhir/Consent").json()["total"] == before
    assert_still_working(system)


def give_block(system: Any) -> str:
    block = consent(new_personnummer(), organizations=(REGION,), categories=())
    block["provision"]["type"] = "deny"
    response = system.consent.post("/fhir/Consent", json=block, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("until", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", None, 5])
def test_an_override_until_at_the_edges_is_refused(system, until):
    block_id = give_block(system)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueString": "akut"},
            {"name": "basis", "valueCode": "emergency"},
            {"name": "until", "valueDateTime": until},
        ],
    }
    professional = system.as_caller(
        "professional",
        organization=MUNICIPALITY,
        scopes=("user/CarePlan.rus", "user/Consent.rus", "user/*.rs"),
    )
    response = professional.consent.post(
        f"/fhir/Consent/{block_id}/$override-block", json=body, headers=FHIR_JSON
    )
    # Outside the supported years, or not a dateTime: 400; beyond the longest override: 422.
    assert_refused(response, 400, 422)
    assert_still_working(system)


@pytest.mark.parametrize("parameter", [5, [5], [None], True, "x"], ids=str)
def test_withdraw_with_odd_parameters_is_400(system, parameter):
    consent_id = system.consent.post(
        "/fhir/Consent", json=consent(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    response = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw",
        json={"resourceType": "Parameters", "parameter": parameter},
        headers=FHIR_JSON,
    )
    assert_refused(response, 400)
    assert system.consent.get(f"/fhir/Consent/{consent_id}").json()["status"] == "active"


def check_body(**overrides: Any) -> dict[str, Any]:
    values = {
        "patient": {"valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": "191212121212"}},
        "actor": {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": REGION}},
        "source": {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": REGION}},
        "category": {"valueCode": "sip-plan"},
        **overrides,
    }
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": k, **v} for k, v in values.items()],
    }


@pytest.mark.parametrize(
    "override",
    [
        {"category": {"valueCode": 5}},
        {"category": {"valueCode": ["sip-plan"]}},
        {"purpose": {"valueCode": {"a": 1}}},
        {"patient": {"valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": 5}}},
        {"patient": {"valueIdentifier": {"system": 5, "value": "191212121212"}}},
        {"patient": {"valueIdentifier": {"system": ["x"], "value": "191212121212"}}},
        {"actor": {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": 5}}},
        {"patient": {"valueIdentifier": {"system": PERSONNUMMER_SYSTEM, "value": "١٩١٢١٢١٢١٢١٢"}}},
    ],
    ids=[
        "category-5",
        "category-list",
        "purpose-object",
        "value-5",
        "system-5",
        "system-list",
        "actor-5",
        "arabic-indic-personnummer",
    ],
)
def test_check_with_non_string_values_is_400(system, override):
    integration = system.as_caller("integration").consent
    response = integration.post("/fhir/Consent/$check", json=check_body(**override))
    assert_refused(response, 400, 422)


ARABIC_INDIC_PERSONNUMMER = "١٩٧٠٠٧٠٧٧٠٧١"


def test_a_personnummer_in_other_digits_is_refused_everywhere(system):
    plan = care_plan(new_personnummer())
    plan["subject"]["identifier"]["value"] = ARABIC_INDIC_PERSONNUMMER
    assert_refused(system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON), 400, 422)
    given = consent(new_personnummer())
    given["patient"]["identifier"]["value"] = ARABIC_INDIC_PERSONNUMMER
    assert_refused(system.consent.post("/fhir/Consent", json=given, headers=FHIR_JSON), 400, 422)
    token = f"{PERSONNUMMER_SYSTEM}|{ARABIC_INDIC_PERSONNUMMER}"
    assert_refused(system.sip.get(f"/fhir/CarePlan?subject:identifier={token}"), 400)
    assert_refused(system.consent.get(f"/fhir/Consent?patient:identifier={token}"), 400)
    extract = f"/fhir/Patient/{ARABIC_INDIC_PERSONNUMMER}/$access-log"
    assert_refused(system.as_caller("auditor").sip.get(extract), 400)
    assert_still_working(system)


@pytest.mark.parametrize(
    "value", ["١٩٧٠٠٧٠٧٧٠٧١", "１９７００７０７７０７１", "19700707707١", "1970070770712\n"]
)
def test_person_identifiers_take_ascii_digits_only(value):
    assert parse_person_identifier(PERSONNUMMER_SYSTEM, "197007077071").value == "197007077071"
    with pytest.raises(InvalidIdentifier):
        parse_person_identifier(PERSONNUMMER_SYSTEM, value)


@pytest.mark.parametrize("value", ["SE٢١٢٠٠٠٠٣٥٧-K0001", "SE2120000357-K0001\n"])
def test_hsa_ids_take_ascii_digits_only(value):
    with pytest.raises(InvalidIdentifier):
        parse_hsa_id(value)


@pytest.mark.parametrize(
    "value", ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01", "٢٠٢٦-01-01", "9999"]
)
def test_dates_outside_the_supported_years_are_refused(value):
    with pytest.raises(InvalidDateTime):
        parse_fhir_datetime(value, end_of_period=True)
    with pytest.raises(InvalidDateTime):
        parse_fhir_datetime(value)
    if len(value) == 10:
        with pytest.raises(InvalidDateTime):
            parse_fhir_date(value)


def test_the_supported_years_work_at_both_edges():
    assert parse_fhir_datetime("1900-01-01").year == 1899  # Swedish midnight is 23:00 UTC
    assert parse_fhir_datetime("2199-12-31", end_of_period=True).year == 2199
    assert parse_fhir_date("2199-12-31").year == 2199


def test_an_access_record_never_holds_a_nul_or_a_lone_surrogate():
    assert storable_text("Goal/x-goal-\x00\ud800") == "Goal/x-goal-\\u0000\\ud800"
    assert storable_text("åäö") == "åäö"
