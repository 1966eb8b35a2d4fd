"""Transactions and batches at the base (`POST /fhir`, services/common/bundles/), over HTTP on
both backends: all or nothing, urn:uuid references, each entry checked as its single request,
per-entry answers of a batch, and a conditional create that stays one resource under ten
concurrent retries of the same transaction."""

import json
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.cli import main as sip
from services.common.access_log import AccessRecord
from services.common.bundles.entries import MAX_ENTRIES
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    parameters,
    withdrawal,
)
from tests.test_audit import storage_arguments

SOURCE = "https://journal.example.se/sip"
UNKNOWN = "7d0c6f0e-3b7a-4a8e-9d51-0c2b1f3e5a11"  # no plan's id
_serial = count(1)


def new_identifier() -> dict[str, str]:
    return {"system": SOURCE, "value": f"tx-{next(_serial)}-{uuid4().hex[:8]}"}


def urn() -> str:
    return f"urn:uuid:{uuid4()}"


def create(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def conditional_create(resource: dict[str, Any], full_url: str | None = None) -> dict:
    (identifier,) = resource["identifier"]
    condition = f"identifier={identifier['system']}|{identifier['value']}"
    return create(resource, full_url, ifNoneExist=condition)


def operation(target: str, name: str, body: dict[str, Any], **request: str) -> dict:
    return {"resource": body, "request": {"method": "POST", "url": f"{target}/${name}", **request}}


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def identified_plan(identifier: dict[str, str] | None = None) -> dict[str, Any]:
    return {**care_plan(new_personnummer()), "identifier": [identifier or new_identifier()]}


def plan_with_needs_and_invitation(plan_urn: str, plan: dict[str, Any]) -> dict[str, Any]:
    """What a record system sends to start a plan: the plan, its first needs, its invitation."""
    target = f"CarePlan/{plan_urn}"
    return bundle(
        conditional_create(plan, plan_urn),
        operation(target, "record-need", parameters(text="Jag vill bo kvar hemma")),
        operation(target, "record-need", parameters(text="Hjälp med ekonomin")),
        operation(
            target,
            "invite-organization",
            parameters(organization=MUNICIPALITY, kind="municipality", name="Eskilstuna kommun"),
        ),
    )


def store_of(app: Any) -> Any:
    """The service's event store: its resources' and its access log's."""
    return next(iter(app.state.resources.values())).application


def head(app: Any) -> int:
    return store_of(app).recorder.max_notification_id() or 0


def events_since(app: Any, position: int) -> list[Any]:
    """Every event stored after `position`: the resources' and the access records'."""
    store = store_of(app)
    notifications = store.recorder.select_notifications(
        start=position, limit=10_000, inclusive_of_start=False
    )
    return [store.mapper.to_domain_event(n) for n in notifications]


def search_ids(client: Any, identifier: dict[str, str], resource_type: str = "CarePlan") -> list:
    token = f"{identifier['system']}|{identifier['value']}"
    found = client.get(f"/fhir/{resource_type}", params={"identifier": token})
    assert found.status_code == 200, found.text
    return [entry["resource"]["id"] for entry in found.json().get("entry", [])]


def post(client: Any, body: Any) -> Any:
    return client.post("/fhir", json=body, headers=FHIR_JSON)


def expressions(response: Any) -> list[str]:
    return [e for issue in response.json()["issue"] for e in issue.get("expression", [])]


def statuses(response: Any) -> list[str]:
    return [entry["response"]["status"] for entry in response.json()["entry"]]


# ---- a transaction --------------------------------------------------------------------------


def test_a_plan_its_first_needs_and_its_invitation_in_one_transaction(system):
    plan_urn, identifier = urn(), new_identifier()
    before = head(system.sip_app)
    answer = post(system.sip, plan_with_needs_and_invitation(plan_urn, identified_plan(identifier)))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["type"] == "transaction-response"
    assert statuses(answer) == ["201 Created", "200 OK", "200 OK", "200 OK"]
    (plan_id,) = search_ids(system.sip, identifier)
    created = result["entry"][0]["response"]
    assert created["location"] == f"{system.sip_url}/fhir/CarePlan/{plan_id}/_history/1"
    assert [e["response"]["etag"] for e in result["entry"]] == [f'W/"{n}"' for n in (1, 2, 3, 4)]
    assert plan_urn not in answer.text  # every reference was resolved
    plan = system.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert plan.status_code == 200 and plan.headers["ETag"] == 'W/"4"'
    assert "Jag vill bo kvar hemma" in plan.text and "Hjälp med ekonomin" in plan.text
    assert MUNICIPALITY in system.sip.get(f"/fhir/CareTeam/{plan_id}-team").text  # invited
    # One store transaction: four versions of the plan and their four access records.
    written = events_since(system.sip_app, before)
    assert [e.originator_version for e in written if e.originator_id == UUID(plan_id)] == [
        1,
        2,
        3,
        4,
    ]
    records = [e for e in written if isinstance(e, AccessRecord.Recorded)]
    writes = [r for r in records if r.entity and "/_history/" in r.entity]
    assert sorted(r.entity for r in writes) == sorted(
        f"CarePlan/{plan_id}/_history/{n}" for n in (1, 2, 3, 4)
    )


def test_one_refused_entry_writes_nothing(system):
    plan_urn, identifier = urn(), new_identifier()
    transaction = plan_with_needs_and_invitation(plan_urn, identified_plan(identifier))
    transaction["entry"].append(
        operation(f"CarePlan/{plan_urn}", "record-need", parameters(text="x", colour="blue"))
    )
    before = head(system.sip_app)
    refused = post(system.sip, transaction)
    assert refused.status_code == 400, refused.text
    assert expressions(refused)[0].startswith("Bundle.entry[4]")
    assert "nothing was written" in refused.text
    assert head(system.sip_app) == before  # no event, no access record
    assert search_ids(system.sip, identifier) == []


@pytest.mark.parametrize(
    ("bad_entry", "status"),
    [
        # a rule of the plan: an intervention for a need it does not have
        (
            lambda target: operation(
                target,
                "assign-intervention",
                parameters(
                    text="Hemtjänst",
                    kind="support",
                    need="need-9",
                    performerOrganization=MUNICIPALITY,
                    responsiblePrincipal="municipality",
                    responsibleOrganization=MUNICIPALITY,
                ),
            ),
            409,
        ),
        # If-Match naming a version the plan will not be at
        (
            lambda target: operation(target, "record-need", parameters(text="x"), ifMatch='W/"1"'),
            412,
        ),
        # an operation no plan has
        (lambda target: operation(target, "paint", parameters(text="x")), 404),
    ],
)
def test_a_refusal_is_the_entrys_own_and_nothing_is_written(system, bad_entry, status):
    plan_urn, identifier = urn(), new_identifier()
    transaction = plan_with_needs_and_invitation(plan_urn, identified_plan(identifier))
    transaction["entry"].append(bad_entry(f"CarePlan/{plan_urn}"))
    before = head(system.sip_app)
    refused = post(system.sip, transaction)
    assert refused.status_code == status, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert expressions(refused)[0].startswith("Bundle.entry[4]")
    assert head(system.sip_app) == before
    assert search_ids(system.sip, identifier) == []


def test_an_outsiders_entry_fails_the_transaction_and_only_the_refusal_is_logged(system):
    theirs = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    assert theirs.status_code == 201, theirs.text
    their_plan = theirs.json()["id"]
    outsider = system.as_caller(organization=OTHER_REGION).sip
    identifier = new_identifier()
    own_plan = {**care_plan(new_personnummer(), OTHER_REGION), "identifier": [identifier]}
    before = head(system.sip_app)
    refused = post(
        outsider,
        bundle(
            conditional_create(own_plan, urn()),
            operation(f"CarePlan/{their_plan}", "record-need", parameters(text="intrång")),
        ),
    )
    assert refused.status_code == 404, refused.text
    assert expressions(refused)[0] == "Bundle.entry[1]"
    events = events_since(system.sip_app, before)
    assert [e.outcome for e in events] == ["4"]  # the refused attempt, logged; nothing else
    assert events[0].entity == f"CarePlan/{their_plan}"
    assert search_ids(outsider, identifier) == []
    assert "intrång" not in system.sip.get(f"/fhir/CarePlan/{their_plan}").text


@pytest.mark.parametrize(
    ("role", "organization"), [("auditor", REGION), ("professional", MUNICIPALITY)]
)
def test_a_wrong_roles_entry_is_refused_with_its_own_403(system, role, organization):
    caller = system.as_caller(role=role, organization=organization).sip
    identifier = new_identifier()
    before = head(system.sip_app)
    refused = post(caller, bundle(conditional_create(identified_plan(identifier), urn())))
    assert refused.status_code == 403, refused.text
    assert expressions(refused)[0] == "Bundle.entry[0]"
    assert head(system.sip_app) == before
    assert search_ids(system.sip, identifier) == []


def test_a_replayed_transaction_makes_nothing_twice(system):
    plan_urn, identifier = urn(), new_identifier()
    plan = identified_plan(identifier)
    only_the_plan = bundle(conditional_create(plan, plan_urn))
    first = post(system.sip, only_the_plan)
    assert statuses(first) == ["201 Created"], first.text
    again = post(system.sip, only_the_plan)
    assert statuses(again) == ["200 OK"], again.text
    assert (
        again.json()["entry"][0]["response"]["location"]
        == first.json()["entry"][0]["response"]["location"]
    )
    # With If-Match on its operations, a replay of the whole start is refused, not applied twice.
    starting = bundle(
        conditional_create(plan, plan_urn),
        operation(
            f"CarePlan/{plan_urn}", "record-need", parameters(text="Bo kvar"), ifMatch='W/"1"'
        ),
    )
    assert post(system.sip, starting).status_code == 200
    replay = post(system.sip, starting)
    assert replay.status_code == 412, replay.text
    assert expressions(replay)[0].startswith("Bundle.entry[1]")
    (plan_id,) = search_ids(system.sip, identifier)
    assert system.sip.get(f"/fhir/CarePlan/{plan_id}").text.count("Bo kvar") == 1


def test_ten_concurrent_retries_of_a_transaction_make_one_plan(system):
    plan_urn, identifier = urn(), new_identifier()
    transaction = bundle(
        conditional_create(identified_plan(identifier), plan_urn),
        operation(
            f"CarePlan/{plan_urn}", "record-need", parameters(text="En gång"), ifMatch='W/"1"'
        ),
    )
    clients = [system.as_caller().sip for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda client: post(client, transaction), clients))
    assert sorted(a.status_code for a in answers) == [200] + [412] * 9, [a.text for a in answers]
    (made,) = [a for a in answers if a.status_code == 200]
    assert statuses(made) == ["201 Created", "200 OK"]
    (plan_id,) = search_ids(system.sip, identifier)
    assert system.sip.get(f"/fhir/CarePlan/{plan_id}").text.count("En gång") == 1


def test_ten_concurrent_conditional_creates_in_transactions_make_one_plan(system):
    identifier = new_identifier()
    transaction = bundle(conditional_create(identified_plan(identifier), urn()))
    clients = [system.as_caller().sip for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda client: post(client, transaction), clients))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(statuses(a)[0] for a in answers) == ["200 OK"] * 9 + ["201 Created"]
    assert len({a.json()["entry"][0]["resource"]["id"] for a in answers}) == 1
    assert len(search_ids(system.sip, identifier)) == 1


def test_the_same_identifier_twice_in_one_transaction_is_one_plan(system):
    identifier = new_identifier()
    first, second = urn(), urn()
    answer = post(
        system.sip,
        bundle(
            conditional_create(identified_plan(identifier), first),
            conditional_create(identified_plan(identifier), second),
            operation(f"CarePlan/{second}", "record-need", parameters(text="Via den andra")),
        ),
    )
    assert statuses(answer) == ["201 Created", "200 OK", "200 OK"], answer.text
    (plan_id,) = search_ids(system.sip, identifier)
    assert "Via den andra" in system.sip.get(f"/fhir/CarePlan/{plan_id}").text


def test_consents_in_a_transaction_on_the_consent_service(system):
    given, identifier = urn(), new_identifier()
    resource = {**consent(new_personnummer()), "identifier": [identifier]}
    answer = post(
        system.consent,
        bundle(
            conditional_create(resource, given),
            operation(f"Consent/{given}", "withdraw", withdrawal()),
        ),
    )
    assert answer.status_code == 200, answer.text
    assert statuses(answer) == ["201 Created", "200 OK"]
    (consent_id,) = search_ids(system.consent, identifier, "Consent")
    assert system.consent.get(f"/fhir/Consent/{consent_id}").json()["status"] == "inactive"
    system.settle()  # the SIP service's reading of the withdrawal is logged here too
    before = head(system.consent_app)
    refused = post(
        system.consent,
        bundle(
            create({**consent(new_personnummer()), "identifier": [new_identifier()]}, urn()),
            operation(f"Consent/{uuid4()}", "withdraw", withdrawal()),
        ),
    )
    assert refused.status_code == 404, refused.text
    assert head(system.consent_app) == before


# ---- a batch --------------------------------------------------------------------------------


def test_a_batch_answers_each_entry_by_itself(system):
    good, identifier = identified_plan(), new_identifier()
    missing_subject = {k: v for k, v in care_plan(new_personnummer()).items() if k != "subject"}
    answer = post(
        system.sip,
        bundle(
            create(good),
            create(missing_subject),
            conditional_create(identified_plan(identifier)),
            operation(f"CarePlan/{urn()}", "record-need", parameters(text="x")),
            {"request": {"method": "FOO", "url": "CarePlan"}},
            {"request": {"method": "GET", "url": f"CarePlan/{uuid4()}"}},
            kind="batch",
        ),
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["type"] == "batch-response"
    assert [s.split()[0] for s in statuses(answer)] == ["201", "400", "201", "400", "400", "404"]
    made = result["entry"][0]
    assert made["response"]["location"].startswith(f"{system.sip_url}/fhir/CarePlan/")
    assert made["response"]["etag"] == 'W/"1"'
    assert made["resource"]["resourceType"] == "CarePlan"
    for refused in result["entry"][1], result["entry"][3], result["entry"][4]:
        assert refused["response"]["outcome"]["resourceType"] == "OperationOutcome"
        assert "resource" not in refused
    assert result["entry"][4]["response"]["outcome"]["issue"][0]["expression"] == [
        "Bundle.entry[4].request.method"
    ]
    assert len(search_ids(system.sip, identifier)) == 1
    read = post(
        system.sip,
        bundle({"request": {"method": "GET", "url": made["response"]["location"]}}, kind="batch"),
    )
    assert statuses(read) == ["200 OK"], read.text


def test_a_batch_entry_is_checked_for_its_caller(system):
    theirs = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    outsider = system.as_caller(organization=OTHER_REGION).sip
    answer = post(
        outsider,
        bundle(
            {"request": {"method": "GET", "url": f"CarePlan/{theirs.json()['id']}"}},
            operation(f"CarePlan/{theirs.json()['id']}", "record-need", parameters(text="x")),
            kind="batch",
        ),
    )
    assert statuses(answer) == ["404 Not Found", "404 Not Found"], answer.text
    assert theirs.json()["subject"]["identifier"]["value"] not in answer.text


# ---- what an attacker or a careless client sends ---------------------------------------------


def _entries(n: int) -> list[dict[str, Any]]:
    return [create(care_plan(new_personnummer()))] * n


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        ({"resourceType": "Patient"}, 400, "Bundle.resourceType"),
        ({"resourceType": "Bundle", "type": "searchset"}, 400, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "transaction-response"}, 400, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "transaction", "entry": {}}, 400, "Bundle.entry"),
        (bundle({"resource": care_plan(new_personnummer())}), 400, "Bundle.entry[0].request"),
        (
            bundle({"request": {"method": "FOO", "url": "CarePlan"}}),
            400,
            "Bundle.entry[0].request.method",
        ),
        (
            bundle({"request": {"method": "post", "url": "CarePlan"}}),
            400,
            "Bundle.entry[0].request.method",
        ),
        (bundle({"request": {"method": "POST"}}), 400, "Bundle.entry[0].request.url"),
        (bundle({"request": {"method": "POST", "url": ""}}), 400, "Bundle.entry[0].request.url"),
        (
            bundle({"request": {"method": "POST", "url": "?_format=json"}}),
            400,
            "Bundle.entry[0].request.url",
        ),
        (
            bundle({"request": {"method": "POST", "url": "/fhir/CarePlan"}}),
            400,
            "Bundle.entry[0].request.url",
        ),
        (
            bundle({"request": {"method": "POST", "url": "https://evil.example/fhir/CarePlan"}}),
            400,
            "Bundle.entry[0].request.url",
        ),
        (
            bundle({"request": {"method": "POST", "url": "CarePlan/../../events"}}),
            400,
            "Bundle.entry[0].request.url",
        ),
        (
            bundle({"request": {"method": "POST", "url": "CarePlan/%2e%2e"}}),
            400,
            "Bundle.entry[0].request.url",
        ),
        (
            bundle({"request": {"method": "POST", "url": "CarePlan", "ifMatch": 3}}),
            400,
            "Bundle.entry[0].request.ifMatch",
        ),
        (
            bundle({"request": {"method": "POST", "url": "CarePlan", "ifMatch": 'W/"1"\r\nX: y'}}),
            400,
            "Bundle.entry[0].request.ifMatch",
        ),
        (
            bundle({"request": {"method": "POST", "url": "CarePlan", "token": "x"}}),
            400,
            "Bundle.entry[0].request.token",
        ),
        (
            bundle({"request": {"method": "GET", "url": "CarePlan"}}),
            400,
            "Bundle.entry[0].request.method",
        ),
        (
            bundle(create(care_plan(new_personnummer()), "urn:uuid:not-a-uuid")),
            400,
            "Bundle.entry[0].fullUrl",
        ),
        (bundle(*_entries(MAX_ENTRIES + 1)), 413, "Bundle.entry"),
        (bundle(*_entries(1000)), 413, "Bundle.entry"),
    ],
)
def test_malformed_bundles_are_refused_by_name_and_write_nothing(system, body, status, expression):
    before = head(system.sip_app)
    refused = post(system.sip, body)
    assert refused.status_code == status, refused.text
    assert expression in expressions(refused)
    assert head(system.sip_app) == before


def test_references_to_no_entry_later_entries_or_round_are_refused(system):
    a, b = urn(), urn()
    plan = care_plan(new_personnummer())
    cases = [
        bundle(
            create(plan, a), operation(f"CarePlan/{urn()}", "record-need", parameters(text="x"))
        ),
        # forward: the need before the plan it names
        bundle(operation(f"CarePlan/{a}", "record-need", parameters(text="x")), create(plan, a)),
        # round: each names the other
        bundle(
            create({**plan, "basedOn": [{"reference": b}]}, a),
            create({**plan, "basedOn": [{"reference": a}]}, b),
        ),
        # itself
        bundle(create({**plan, "basedOn": [{"reference": a}]}, a)),
        # the same fullUrl twice
        bundle(create(plan, a), create(plan, a)),
        # a plan's urn where a consent is named
        bundle(create(plan, a), operation(f"Consent/{a}", "withdraw", withdrawal())),
    ]
    before = head(system.sip_app)
    for case in cases:
        refused = post(system.sip, case)
        assert refused.status_code == 400, refused.text
        assert any(e.startswith("Bundle.entry[") for e in expressions(refused)), refused.text
    assert head(system.sip_app) == before


def test_an_empty_transaction_and_an_empty_batch_answer_empty(system):
    for kind in ("transaction", "batch"):
        answer = post(system.sip, {"resourceType": "Bundle", "type": kind})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"resourceType": "Bundle", "type": f"{kind}-response", "entry": []}


def test_a_bundle_needs_a_token_and_json(system):
    assert system.without_token.sip.post("/fhir", json=bundle()).status_code == 401
    wrong = system.sip.post(
        "/fhir", content=b"<Bundle/>", headers={"Content-Type": "application/xml"}
    )
    assert wrong.status_code == 415
    assert system.sip.post("/fhir", content=b"[1]", headers=FHIR_JSON).status_code == 400


def test_the_capability_statements_declare_transaction_and_batch(system):
    for client in (system.sip, system.consent):
        rest = client.get("/fhir/metadata").json()["rest"][0]
        assert [i["code"] for i in rest["interaction"]] == ["transaction", "batch"]


def test_reads_are_refused_in_a_transaction_and_answered_in_a_batch(system):
    check = operation("Consent", "check", parameters(source=REGION))
    search = {
        "resource": {"resourceType": "Parameters"},
        "request": {"method": "POST", "url": "Consent/_search"},
    }
    before = head(system.consent_app)
    for entry in check, search:
        refused = post(system.consent, bundle(create(consent(new_personnummer())), entry))
        assert refused.status_code == 400, refused.text
        assert "Bundle.entry[1]" in refused.text and "batch" in refused.text
    assert head(system.consent_app) == before
    searched = post(system.consent, bundle(search, kind="batch"))
    assert statuses(searched) == ["200 OK"], searched.text


def test_a_read_by_id_in_a_transaction_answers_what_the_transaction_leaves(system):
    plan_urn = urn()
    answer = post(
        system.sip,
        bundle(
            create(identified_plan(), plan_urn),
            {"request": {"method": "GET", "url": f"CarePlan/{plan_urn}"}},
            operation(f"CarePlan/{plan_urn}", "record-need", parameters(text="Läst efteråt")),
            {"request": {"method": "HEAD", "url": f"CarePlan/{plan_urn}"}},
        ),
    )
    assert statuses(answer) == ["201 Created", "200 OK", "200 OK", "200 OK"], answer.text
    read = answer.json()["entry"][1]
    assert read["resource"]["meta"]["versionId"] == "2"  # the reads run after every write
    assert "Läst efteråt" in json.dumps(read["resource"], ensure_ascii=False)
    assert read["response"]["etag"] == 'W/"2"'


@pytest.mark.parametrize(
    "url",
    [
        "CarePlan",
        "CarePlan?status=draft",
        f"CarePlan/{UNKNOWN}/_history",
        f"CarePlan/{UNKNOWN}/_history/1",
        f"CarePlan/{UNKNOWN}?_at=2026-01-01",
        f"CarePlan/{UNKNOWN}/$as-of?instant=2026-01-01",
    ],
)
def test_a_transaction_reads_by_id_only(system, url):
    before = head(system.sip_app)
    refused = post(
        system.sip, bundle(create(identified_plan()), {"request": {"method": "GET", "url": url}})
    )
    assert refused.status_code == 400, refused.text
    assert expressions(refused) == ["Bundle.entry[1].request.method"]
    assert head(system.sip_app) == before


def test_a_read_the_caller_may_not_make_fails_the_transaction(system):
    theirs = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    ).json()["id"]
    outsider = system.as_caller(organization=OTHER_REGION).sip
    identifier = new_identifier()
    own_plan = {**care_plan(new_personnummer(), OTHER_REGION), "identifier": [identifier]}
    before = head(system.sip_app)
    refused = post(
        outsider,
        bundle(create(own_plan), {"request": {"method": "GET", "url": f"CarePlan/{theirs}"}}),
    )
    assert refused.status_code == 404, refused.text
    assert expressions(refused) == ["Bundle.entry[1]"]
    assert [e.outcome for e in events_since(system.sip_app, before)] == ["4"]
    assert search_ids(outsider, identifier) == []


def test_prefer_return_minimal_leaves_each_entrys_resource_out(system):
    plan_urn = urn()
    answer = system.sip.post(
        "/fhir",
        json=plan_with_needs_and_invitation(plan_urn, identified_plan()),
        headers={**FHIR_JSON, "Prefer": "return=minimal"},
    )
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created"] + ["200 OK"] * 3
    assert all("resource" not in e for e in entries)
    assert entries[0]["response"]["location"].startswith(f"{system.sip_url}/fhir/CarePlan/")
    assert entries[-1]["response"]["etag"] == 'W/"4"'


def test_the_readmes_example_transaction_works_as_it_says(system):
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Transactions and batches", 1)[1].split("\n## ", 1)[0]
    sent = section.split("-d '", 1)[1].split("}'\n", 1)[0] + "}"
    coordinator = system.as_caller(organization="SE2321000032-DEMO1").sip
    answer = post(coordinator, json.loads(sent))
    assert answer.status_code == 200, answer.text
    assert statuses(answer) == ["201 Created", "200 OK", "200 OK"]
    assert [e["response"]["etag"] for e in answer.json()["entry"]] == ['W/"1"', 'W/"2"', 'W/"3"']


def test_the_hash_chain_and_the_read_models_hold_after_transactions(system, capsys):
    """A transaction's events and records are chained in one append like any other write,
    and the read models follow them: verified from the database, rebuilt equal."""
    plan_urn, identifier = urn(), new_identifier()
    made = post(system.sip, plan_with_needs_and_invitation(plan_urn, identified_plan(identifier)))
    assert made.status_code == 200, made.text
    assert len(search_ids(system.sip, identifier)) == 1
    storage = storage_arguments(system.backend)
    assert sip(["audit", "verify", *storage]) == 0
    assert sip(["projections", "rebuild", "--check", *storage]) == 0, capsys.readouterr().out
