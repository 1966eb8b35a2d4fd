"""The OpenAPI tells the truth about both services (services/common/openapi_fhir.py): every
documented operation is a route and every route is documented (or deliberately not, from a
short list); the request bodies real clients send, and the answers they get, fit the schemas
declared for them; the documentation page loads with nothing from another site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from contracts.consent_decision import ConsentCheckRequest
from contracts.identifiers import PERSONNUMMER_SYSTEM
from contracts.subscription_topics import PLAN_CHANGED
from services.common.fhir_time import fhir_instant, now
from services.common.settings import SERVICE_HSA_ID, SERVICE_SUBJECT
from services.sip.discharge.payment import PaymentModel
from tests.communication_http import found, mark_read, message, send
from tests.discharge_http import a_stays_whole_life
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    active_plan,
    care_plan,
    consent,
    new_personnummer,
    parameters,
    run,
    withdrawal,
)
from tests.record_system import subscription
from tests.test_role_matrix import _parameters as role_matrix_parameters

# Served but not API: health checks, the landing page and FHIR base redirect, the docs.
UNDOCUMENTED = {
    "/healthz", "/readyz", "/", "/fhir", "/fhir/", "/docs", "/docs/oauth2-redirect",
    "/openapi.json", "/static-offline-docs",
}  # fmt: skip
# The rest of a plan's life after `active_plan`, each step by whoever may take it.
LATER_STEPS = [
    "record-need", "revise-goal", "assess-goal", "set-intervention-status", "schedule-meeting",
    "record-meeting", "record-follow-up", "allocate-cost", "agree-cost-allocation",
    "report-deviation", "answer-deviation", "approve-changes", "record-need", "reject-changes",
    "close",
]  # fmt: skip
BY_MUNICIPALITY = {"agree-cost-allocation", "answer-deviation", "accept-invitation"}


@dataclass
class Exchange:
    service: str
    method: str
    path: str
    content_type: str
    body: bytes
    status: int
    answer_type: str
    answer: bytes


@contextmanager
def recording(urls: dict[str, str]) -> Iterator[list[Exchange]]:
    """Every request the test clients send to the services, with its answer."""
    exchanges: list[Exchange] = []
    send = httpx.Client.send

    def recorded(client: httpx.Client, request: httpx.Request, **options: Any) -> httpx.Response:
        response = send(client, request, **options)
        base = f"{request.url.scheme}://{request.url.netloc.decode()}"
        service = next((name for name, url in urls.items() if url == base), None)
        if service is not None:
            response.read()
            exchanges.append(
                Exchange(service, request.method, request.url.raw_path.decode(),
                         request.headers.get("content-type", ""), request.content,
                         response.status_code, response.headers.get("content-type", ""),
                         response.content)
            )  # fmt: skip
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", recorded)
        yield exchanges


def a_plans_whole_life(system) -> dict[str, str]:
    """A plan from creation to closing and its person's consents from given to withdrawn, as
    the clients of the suite drive them; the ids the paths of the documentation take."""
    plan_id, personnummer = active_plan(system)
    municipality = system.as_caller(organization=MUNICIPALITY)
    accepted = run(municipality.sip, plan_id, "accept-invitation", contact="Omar, 016-710 00 00")
    assert accepted.status_code == 200, accepted.text
    a_meetings_life(system, plan_id)
    for step in LATER_STEPS:
        caller = municipality if step in BY_MUNICIPALITY else system
        variant = {"approve-changes": "meeting", "reject-changes": "meeting"}.get(step)
        values = role_matrix_parameters(step, variant or "goals-reached", "region")
        answer = run(caller.sip, plan_id, step, **values)
        assert answer.status_code == 200, (step, answer.text)
    as_of = system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": "2026-01-01"})
    assert as_of.status_code in (200, 404), as_of.text
    found = system.sip.post(
        "/fhir/CarePlan/_search",
        data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}", "_count": "5"},
    )
    assert found.status_code == 200, found.text
    for kind in ("transaction", "batch"):
        answered = system.sip.post("/fhir", json=a_plan_in_one_go(kind), headers=FHIR_JSON)
        assert answered.status_code == 200, answered.text
    # A record system's subscription, made paused: nothing is sent to the address.
    paused = {**subscription(PLAN_CHANGED, "https://1.1.1.1/sip-notify"), "status": "off"}
    record_system = system.as_caller("integration", REGION).sip
    subscribed = record_system.post("/fhir/Subscription", json=paused, headers=FHIR_JSON)
    assert subscribed.status_code == 201, subscribed.text
    made = f"/fhir/Subscription/{subscribed.json()['id']}"
    for operation, given in (
        ("$status", []),
        ("$events", [{"name": "eventsSinceNumber", "valueString": "1"}]),
    ):
        body = {"resourceType": "Parameters", "parameter": given}
        answer = record_system.post(f"{made}/{operation}", json=body, headers=FHIR_JSON)
        assert answer.status_code == 200, (operation, answer.text)
    searches = (
        ("Subscription", {"status": "off"}),
        ("SubscriptionTopic", {"_count": "5"}),
        ("Encounter", {"patient": f"Patient/{personnummer}", "status": "finished"}),
        ("Task", {"status": "completed", "_count": "5"}),
    )
    a_stays_whole_life(system, personnummer)  # every Encounter operation, by its clients
    a_message_read(system, plan_id)
    for path, form in searches:
        found = record_system.post(f"/fhir/{path}/_search", data=form)
        assert found.status_code == 200, (path, found.text)
    ids = {"plan": plan_id, "personnummer": personnummer, **consents_life(system, personnummer)}
    searches_and_reads_by_post(system, ids)
    return ids


def a_meetings_life(system, plan_id: str) -> None:
    """A meeting invitation answered (by operation and by POST AppointmentResponse), moved,
    cancelled, and searched by POST."""
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    invited = run(system.sip, plan_id, "invite-to-meeting",
                  **role_matrix_parameters("invite-to-meeting", None, "region"))  # fmt: skip
    assert invited.status_code == 200, invited.text
    for caller, step in ((municipality, "answer-meeting"), (system.sip, "reschedule-meeting")):
        values = {**role_matrix_parameters(step, None, "region"), "meeting": "meeting-1"}
        answer = run(caller, plan_id, step, **values)
        assert answer.status_code == 200, (step, answer.text)
    meeting = f"Appointment/{plan_id}-meeting-1"
    answer = {"resourceType": "AppointmentResponse", "appointment": {"reference": meeting},
              "participantStatus": "tentative", "start": "2027-03-01T10:00:00Z",
              "end": "2027-03-01T11:00:00Z", "comment": "Hellre i mars"}  # fmt: skip
    answered = municipality.post("/fhir/AppointmentResponse", json=answer, headers=FHIR_JSON)
    assert answered.status_code == 201, answered.text
    # One meeting; two answers: the acceptance of the first time, the proposal after the move.
    for path, form, total in (
        ("Appointment", {"actor": MUNICIPALITY, "part-status": "tentative"}, 1),
        ("AppointmentResponse", {"appointment": meeting}, 2),
    ):
        found = municipality.post(f"/fhir/{path}/_search", data=form)
        assert found.status_code == 200 and found.json()["total"] == total, (path, found.text)
    cancelled = run(system.sip, plan_id, "cancel-meeting", meeting="meeting-1", reason="Sjuk")
    assert cancelled.status_code == 200, cancelled.text


def a_message_read(system, plan_id: str) -> None:
    """A message about the plan to the municipality, found unread there and marked read."""
    sent = send(system.sip, message(plan=plan_id, to=(MUNICIPALITY,)))
    assert sent.status_code == 201, sent.text
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    unread = {"recipient": MUNICIPALITY, "received:missing": "true"}
    assert sent.json()["id"] in found(municipality, **unread)
    assert mark_read(municipality, sent.json()["id"]).status_code == 200


def searches_and_reads_by_post(system, ids: dict[str, str]) -> None:
    """Every search by POST to _search, and the operations that read, by POST as R4 lets
    every operation be called."""
    auditor = system.as_caller("auditor")
    person = {"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{ids['personnummer']}"}
    for service, target in (("sip", f"CarePlan/{ids['plan']}"),
                            ("consent", f"Consent/{ids['consent']}")):  # fmt: skip
        for client, path, form in (
            (getattr(auditor, service), "AuditEvent", {**person, "_count": "5"}),
            (getattr(system, service), "Provenance", {"target": target, "_count": "5"}),
            (getattr(system, service), "OperationDefinition", {"_count": "5"}),
        ):
            found = client.post(f"/fhir/{path}/_search", data=form)
            assert found.status_code == 200, (service, path, found.text)
        extract = getattr(auditor, service).post(
            f"/fhir/Patient/{ids['personnummer']}/$access-log",
            json={"resourceType": "Parameters"},
            headers=FHIR_JSON,
        )
        assert extract.status_code == 200, extract.text
    as_of = system.sip.post(
        f"/fhir/CarePlan/{ids['plan']}/$as-of",
        json=parameters(instant=fhir_instant(now())),
        headers=FHIR_JSON,
    )
    assert as_of.status_code == 200, as_of.text
    # The municipality's payment report, with a daily amount for the year asked.
    system.sip_app.state.payment_model = PaymentModel(daily_amounts={2026: Decimal("8000")})
    report = system.as_caller(organization=MUNICIPALITY).sip.post(
        "/fhir/Encounter/$payment-report",
        json=parameters(municipality=MUNICIPALITY, month="2026-03"),
        headers=FHIR_JSON,
    )
    assert report.status_code == 200, report.text


def a_plan_in_one_go(kind: str) -> dict[str, Any]:
    """A plan and its first need in one Bundle (the need only where entries may refer)."""
    plan = "urn:uuid:8f0c5a52-6c1e-4a0e-9a51-2f3c1d1e7b10"
    entries: list[dict[str, Any]] = [
        {"fullUrl": plan, "resource": care_plan(new_personnummer()),
         "request": {"method": "POST", "url": "CarePlan"}},
    ]  # fmt: skip
    if kind == "transaction":
        entries.append(
            {"resource": parameters(text="Bo kvar hemma"),
             "request": {"method": "POST", "url": f"CarePlan/{plan}/$record-need"}}
        )  # fmt: skip
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def consents_life(system, personnummer: str) -> dict[str, str]:
    given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    block = consent(personnummer, organizations=(REGION,), categories=())
    block["provision"]["type"] = "deny"
    blocked = system.consent.post("/fhir/Consent", json=block, headers=FHIR_JSON)
    assert given.status_code == blocked.status_code == 201, (given.text, blocked.text)
    consent_id, block_id = given.json()["id"], blocked.json()["id"]
    professional = system.as_caller(
        "professional", MUNICIPALITY, scopes=("user/CarePlan.rus", "user/Consent.rus", "user/*.rs")
    )
    in_an_hour = fhir_instant(now() + timedelta(hours=1))
    overridden = professional.consent.post(
        f"/fhir/Consent/{block_id}/$override-block",
        json=parameters(reason="Akut", basis="emergency", until=in_an_hour),
        headers=FHIR_JSON,
    )
    # The SIP service asks on behalf of the organisation that reads (a trusted peer).
    peer = system.as_caller("integration", organization=SERVICE_HSA_ID, subject=SERVICE_SUBJECT)
    question = ConsentCheckRequest(
        patient_system=PERSONNUMMER_SYSTEM,
        patient_value=personnummer,
        actor=MUNICIPALITY,
        source=REGION,
        category="sip-plan",
    )
    check = peer.consent.post(
        "/fhir/Consent/$check", json=question.to_parameters(), headers=FHIR_JSON
    )
    withdrawn = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    corrected = system.consent.post(
        f"/fhir/Consent/{block_id}/$mark-entered-in-error",
        json=parameters(reason="Fel person"),
        headers=FHIR_JSON,
    )
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": consent(personnummer), "request": {"method": "POST", "url": "Consent"}}
    ]}  # fmt: skip
    in_a_batch = system.consent.post("/fhir", json=batch, headers=FHIR_JSON)
    found = system.consent.post(
        "/fhir/Consent/_search",
        data={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
    )
    for answer in (overridden, check, withdrawn, corrected, in_a_batch, found):
        assert answer.status_code == 200, answer.text
    return {"consent": consent_id}


@pytest.fixture(scope="module")
def traffic(system) -> tuple[list[Exchange], dict[str, str]]:
    with recording({"sip": system.sip_url, "consent": system.consent_url}) as exchanges:
        ids = a_plans_whole_life(system)
    return exchanges, ids


def documents(system) -> dict[str, dict[str, Any]]:
    return {"sip": system.sip_app.openapi(), "consent": system.consent_app.openapi()}


def template_of(document: dict[str, Any], method: str, path: str) -> str | None:
    """The documented path a request's path is an instance of."""
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
        if method.lower() in operations and re.match(pattern, path):
            return template
    return None


def validator(document: dict[str, Any], *pointer: str) -> Draft202012Validator:
    """Validates against the schema at `pointer` in the document, its $refs resolved there."""
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    escaped = "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in pointer)
    return Draft202012Validator({"$ref": f"urn:openapi#/{escaped}"}, registry=registry)


def test_every_route_is_documented_and_every_documented_operation_is_routed(system):
    for service, app in (("sip", system.sip_app), ("consent", system.consent_app)):
        document = app.openapi()
        routes = {
            (context.path, method.lower())
            for context in iter_route_contexts(app.router.routes)
            if context.path is not None
            for method in context.methods or {"get"}
            if method != "HEAD"
        }
        documented = {
            (path, method)
            for path, operations in document["paths"].items()
            for method in operations
        }
        assert documented - routes == set(), service
        assert {path for path, _ in routes - documented} == UNDOCUMENTED, service


def test_every_documented_operation_answers_at_its_address(system, traffic):
    """Over HTTP, with real ids: no documented path is the router's 404 or a 405."""
    _, ids = traffic
    token = {"Authorization": f"Bearer {system.token()}"}
    values = {"id": ids["plan"], "vid": "1", "record_id": "unknown",
              "personnummer": ids["personnummer"]}  # fmt: skip
    for service, document in documents(system).items():
        url = {"sip": system.sip_url, "consent": system.consent_url}[service]
        if service == "consent":
            values["id"] = ids["consent"]
        with httpx.Client(base_url=url, headers=token, timeout=10) as client:
            for template, operations in document["paths"].items():
                path = re.sub(r"\{([a-z_]+)\}", lambda m: values[m[1]], template)
                for method in operations:
                    body = {"resourceType": "Parameters", "parameter": []}
                    answer = client.request(method, path, json=body if method == "post" else None)
                    assert answer.status_code != 405, (method, template)
                    router_miss = answer.status_code == 404 and '"Not Found"' in answer.text
                    assert not router_miss, (method, template, answer.text)


def test_the_request_bodies_real_clients_send_fit_the_declared_schemas(system, traffic):
    exchanges, _ = traffic
    docs = documents(system)
    checked: set[tuple[str, str, str]] = set()
    for exchange in exchanges:
        if exchange.method != "POST" or not exchange.body or exchange.status >= 300:
            continue
        document = docs[exchange.service]
        template = template_of(document, exchange.method, urlsplit(exchange.path).path)
        assert template is not None, exchange.path
        content_type = exchange.content_type.split(";")[0]
        content = document["paths"][template]["post"]["requestBody"]["content"]
        assert content_type in content, (template, content_type)
        body = (
            dict(parse_qsl(exchange.body.decode()))
            if content_type == "application/x-www-form-urlencoded"
            else httpx.Response(200, content=exchange.body).json()
        )
        pointer = ("paths", template, "post", "requestBody", "content", content_type, "schema")
        errors = [e.message for e in validator(document, *pointer).iter_errors(body)]
        assert not errors, (template, errors[:3], body)
        checked.add((exchange.service, template, content_type))
    with_bodies = {
        (service, path)
        for service, document in docs.items()
        for path, operations in document["paths"].items()
        if "requestBody" in operations.get("post", {})
    }
    # $activate is the one with no parameters: real clients post it without a body.
    unchecked = (
        with_bodies - {(s, t) for s, t, _ in checked} - {("sip", "/fhir/CarePlan/{id}/$activate")}
    )
    assert not unchecked, f"no accepted request was checked against: {sorted(unchecked)}"


def test_the_answers_real_clients_get_fit_the_declared_schemas(system, traffic):
    exchanges, _ = traffic
    docs = documents(system)
    statuses: set[int] = set()
    for exchange in exchanges:
        if not exchange.answer_type.startswith("application/fhir+json") or not exchange.answer:
            continue
        document = docs[exchange.service]
        template = template_of(document, exchange.method, urlsplit(exchange.path).path)
        assert template is not None, exchange.path
        responses = document["paths"][template][exchange.method.lower()]["responses"]
        status = str(exchange.status)
        key = status if status in responses else f"{status[0]}XX"
        assert key in responses, (exchange.method, template, status)
        pointer = ("paths", template, exchange.method.lower(), "responses", key, "content",
                   "application/fhir+json", "schema")  # fmt: skip
        body = httpx.Response(200, content=exchange.answer).json()
        errors = [e.message for e in validator(document, *pointer).iter_errors(body)]
        assert not errors, (exchange.method, template, status, errors[:3])
        statuses.add(exchange.status)
    assert {200, 201} <= statuses


def test_refusals_are_declared_as_operation_outcomes(system):
    refused = system.sip.post(
        "/fhir/CarePlan", json={"resourceType": "CarePlan"}, headers=FHIR_JSON
    )
    assert refused.status_code in (400, 422)
    document = documents(system)["sip"]
    pointer = ("paths", "/fhir/CarePlan", "post", "responses", "4XX", "content",
               "application/fhir+json", "schema")  # fmt: skip
    assert validator(document, *pointer).is_valid(refused.json())
    assert not validator(document, *pointer).is_valid({"detail": "Not Found"})
    for document in documents(system).values():
        assert "HTTPValidationError" not in document["components"]["schemas"]
        for operations in document["paths"].values():
            for operation in operations.values():
                assert "4XX" in operation["responses"] and "422" not in operation["responses"]


def test_the_documentation_loads_with_nothing_from_another_site(system):
    for url in (system.sip_url, system.consent_url):
        with httpx.Client(base_url=url, timeout=10) as browser:
            page = browser.get("/docs")
            assert page.status_code == 200
            host = urlsplit(url).netloc
            foreign = [
                found
                for found in re.findall(r"(?:https?:)?//([A-Za-z0-9.\-:\[\]]+)", page.text)
                if found != host
            ]
            assert not foreign, foreign
            assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
            assert any(a.endswith(".js") for a in assets), assets
            for asset in assets:
                loaded = browser.get(asset)
                assert loaded.status_code == 200, asset
                assert len(loaded.content) > 100, asset


def test_every_declared_search_parameter_is_one_the_search_knows(system):
    """A value may be refused as a value, never the parameter as unknown."""
    for service, document in documents(system).items():
        client = {"sip": system.sip, "consent": system.consent}[service]
        for path, operations in document["paths"].items():
            query = [
                p for p in operations.get("get", {}).get("parameters", []) if p["in"] == "query"
            ]
            if not path.endswith(("CarePlan", "Consent")):
                continue
            assert len(query) > 5, path
            for parameter in query:
                answer = client.get(path, params={parameter["name"]: "x"})
                assert "unsupported search parameter" not in answer.text, (path, parameter["name"])
