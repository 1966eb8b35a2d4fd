"""Who may do what: 401 without a trusted token, 403 without the right, 404 for what the
caller's organisation may not see, on every resource type and operation."""

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from services.common.auth import smart
from services.common.auth.tokens import DEV_ISSUER
from services.sip.discharge.operations import OPERATIONS as STAY_OPERATIONS
from services.sip.meetings.operations import OPERATIONS as MEETING_OPERATIONS
from services.sip.messages.operations import OPERATIONS as MESSAGE_OPERATIONS
from services.sip.operations import OPERATIONS
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    care_plan,
    consent,
    new_personnummer,
    withdrawal,
)
from tests.malformed_tokens import dev_key, malformed_tokens

UNKNOWN = "00000000-0000-0000-0000-000000000000"


# Routes anyone may call: what the service supports, and the keys to check its checkpoints.
# Discovery, before a client has a token: the CapabilityStatement, SMART's configuration.
OPEN_ROUTES = {"/fhir/metadata", "/events/checkpoint-keys", *smart.PATHS}
VIEW_PARTS = (("CareTeam", "team"), ("Goal", "goal-1"), ("Appointment", "meeting-1"))
OPERATION_BODY = {"resourceType": "Parameters", "parameter": []}


def routes(system, plan_id, consent_id, personnummer):
    """(service, method, path, body) of every route that takes a token, read from each
    service's own OpenAPI description, so a route added later is tested too."""
    ids = {
        "CarePlan": plan_id, "Consent": consent_id, "CareTeam": f"{plan_id}-team",
        "Goal": f"{plan_id}-goal-1", "Appointment": f"{plan_id}-meeting-1",
        "AuditEvent": UNKNOWN,
    }  # fmt: skip
    found = []
    for service, app in (("sip", system.sip_app), ("consent", system.consent_app)):
        for template, methods in app.openapi()["paths"].items():
            if template in OPEN_ROUTES:
                continue
            resource_type = template.split("/")[2] if template.startswith("/fhir/") else ""
            path = (
                template.replace("{id}", ids.get(resource_type, UNKNOWN))
                .replace("{record_id}", UNKNOWN)
                .replace("{plan_id}", plan_id)
                .replace("{consent_id}", consent_id)
                .replace("{vid}", "1")
                .replace("{personnummer}", personnummer)
            )
            if path.endswith("$as-of"):
                path += "?instant=2026-01-01"
            if path == "/fhir/Provenance":
                path += f"?target={resource_type_of(service)}/{ids[resource_type_of(service)]}"
            for method in methods:
                body = None
                if method == "post" and "_search" not in path:
                    created = care_plan(personnummer) if service == "sip" else consent(personnummer)
                    body = {
                        "/fhir/CarePlan": care_plan(personnummer),
                        "/fhir/Consent": consent(personnummer),
                        # The base: a transaction, whose entry is authorized as its own route.
                        "/fhir": transaction_of(created),
                    }.get(path, withdrawal() if path.endswith("$withdraw") else OPERATION_BODY)
                found.append((service, method.upper(), path, body))
    return found


def transaction_of(resource):
    request = {"method": "POST", "url": resource["resourceType"]}
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": resource, "request": request}]}  # fmt: skip


def resource_type_of(service):
    return "CarePlan" if service == "sip" else "Consent"


def test_the_routes_tested_include_every_operation_and_view(system, existing):
    listed = {(service, method, path.split("?")[0]) for service, method, path, _ in
              routes(system, *existing)}  # fmt: skip
    plan_id, consent_id, _ = existing
    for operation in (*(o.name for o in (*OPERATIONS, *MEETING_OPERATIONS)), "activate"):
        assert ("sip", "POST", f"/fhir/CarePlan/{plan_id}/${operation}") in listed
    for operation in ("withdraw", "mark-entered-in-error", "override-block"):
        assert ("consent", "POST", f"/fhir/Consent/{consent_id}/${operation}") in listed
    for view in ("CareTeam", "Goal", "Appointment", "AppointmentResponse"):
        versions = [
            p for _, _, p in listed if p.startswith(f"/fhir/{view}/") and "_search" not in p
        ]
        assert len(versions) == 4
    assert {("sip", "GET", "/events"), ("consent", "GET", "/events/checkpoint")} <= listed


@pytest.fixture
def existing(system):
    personnummer = new_personnummer()
    consent_id = system.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    ).json()["id"]
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    return plan_id, consent_id, personnummer


def call(system, service, method, path, body, token):
    # As bytes, so that a token of Latin-1 characters reaches the server as sent.
    authorization = {"Authorization": f"Bearer {token}".encode("latin-1")} if token else {}
    headers = {**FHIR_JSON, **authorization}
    client = system.without_token.sip if service == "sip" else system.without_token.consent
    return client.request(method, path, json=body, headers=headers)


def foreign_token(**claims):
    key = ECKey.generate_key("P-256", parameters={"kid": "attacker"})
    now = int(time.time())
    payload = {"iss": DEV_ISSUER, "aud": "sip-case-service", "sub": "x", "iat": now,
               "exp": now + 600, "role": "coordinator", "org": MUNICIPALITY,
               "scope": "user/*.cruds"} | claims  # fmt: skip
    return jwt.encode({"alg": "ES256", "kid": "attacker"}, payload, key)


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda system: None, id="missing"),
        pytest.param(lambda system: "not-a-jwt", id="malformed"),
        pytest.param(lambda system: foreign_token(), id="wrong-signature"),
        pytest.param(
            lambda system: system.token(lifetime_seconds=60, now=time.time() - 3600), id="expired"
        ),
        pytest.param(lambda system: system.token(audience="someone-else"), id="wrong-audience"),
        pytest.param(
            lambda system: foreign_token(iss="https://idp.example.invalid"), id="untrusted-issuer"
        ),
    ],
)
def test_every_route_refuses_an_untrusted_token_with_401(system, existing, make_token):
    token = make_token(system)
    for service, method, path, body in routes(system, *existing):
        response = call(system, service, method, path, body, token)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="sip-case-service"')
        assert response.json()["issue"][0]["code"] == "login"
        if token:
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# One of each family of malformed token, swept over every route; all the shapes are swept over
# one route of each method and service (all of them on every route costs ~40 s a backend).
ONE_OF_EACH_FAMILY = (
    "payload-array", "header-string", "kid-list", "claim-iss-list", "claim-org-list",
    "claim-exp-huge", "claim-sub-nul", "payload-not-json", "one-megabyte",
)  # fmt: skip


def test_every_route_refuses_each_family_of_malformed_token_with_401(system, existing):
    """Issue 11, finding 3, with the tokens of tests/malformed_tokens.py (most validly signed
    by the development issuer)."""
    tokens = malformed_tokens(dev_key(system.backend.data_dir))
    for service, method, path, body in routes(system, *existing):
        for name in ONE_OF_EACH_FAMILY:
            assert_invalid_token(call(system, service, method, path, body, tokens[name]), name)


def test_every_malformed_token_is_401_on_each_kind_of_route(system, existing):
    tokens = malformed_tokens(dev_key(system.backend.data_dir))
    representatives = {}
    for service, method, path, body in routes(system, *existing):
        representatives.setdefault((service, method), (service, method, path, body))
    for service, method, path, body in representatives.values():
        for name, token in tokens.items():
            assert_invalid_token(call(system, service, method, path, body, token), name)


def assert_invalid_token(response, name):
    assert response.status_code == 401, (name, response.request.url, response.text)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], name
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_token_without_scopes_is_403_on_every_route(system, existing):
    token = system.token(scopes=())
    for service, method, path, body in routes(system, *existing):
        response = call(system, service, method, path, body, token)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["issue"][0]["code"] == "forbidden"


def test_an_auditor_reads_but_cannot_write(system, existing):
    plan_id, consent_id, _ = existing
    token = system.token("auditor")
    # POSTs that only read: a search, and the reading operations R4 lets be called by POST.
    reads = ("_search", "$as-of", "$access-log", "$status", "$events")
    writes = [
        r
        for r in routes(system, *existing)
        if r[1] == "POST" and not any(read in r[2] for read in reads)
    ]
    # CarePlan: create, $activate and the plan's operations; Consent: create, $check,
    # $withdraw, $mark-entered-in-error, $override-block; a transaction on each service;
    # Subscription: create; Encounter: the stay's operations ($admit among them);
    # Communication: create and its operations; the meeting invitations' operations and
    # AppointmentResponse: create.
    writes_count = 2 + len(OPERATIONS) + 5 + 2 + 1 + len(STAY_OPERATIONS)
    writes_count += len(MEETING_OPERATIONS) + 1
    assert len(writes) == writes_count + 1 + len(MESSAGE_OPERATIONS)
    for service, method, path, body in writes:
        response = call(system, service, method, path, body, token)
        assert response.status_code == 403, (method, path, response.text)
    auditor = system.as_caller("auditor")
    assert auditor.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    assert auditor.consent.get(f"/fhir/Consent/{consent_id}/_history").status_code == 200
    assert auditor.sip.get("/fhir/AuditEvent").status_code == 200


def test_only_auditors_read_the_access_log(system, existing):
    for caller in (system.as_caller("coordinator"), system.as_caller("integration")):
        assert caller.sip.get("/fhir/AuditEvent").status_code == 403
        assert caller.consent.get("/fhir/AuditEvent").status_code == 403


def test_an_organisation_outside_the_plan_finds_nothing_by_any_route(system, existing):
    plan_id, consent_id, personnummer = existing
    outsider = system.as_caller("coordinator", organization=OTHER_REGION)
    subject = f"http://electronichealth.se/identifier/personnummer|{personnummer}"
    for path in (
        f"/fhir/CarePlan/{plan_id}",
        f"/fhir/CarePlan/{plan_id}?_at=2030-01-01",
        f"/fhir/CarePlan/{plan_id}/_history",
        f"/fhir/CarePlan/{plan_id}/_history/1",
        f"/fhir/CarePlan/{plan_id}/$as-of?instant=2030-01-01",
        f"/fhir/Provenance?target=CarePlan/{plan_id}",
        *(
            f"/fhir/{view}/{plan_id}-{part}{suffix}"
            for view, part in VIEW_PARTS
            for suffix in ("", "/_history", "/_history/1", "?_at=2030-01-01")
        ),
    ):
        assert outsider.sip.get(path).status_code == 404, path
    for view in ("CareTeam", "Goal", "Appointment"):
        assert plan_id not in str(outsider.sip.get(f"/fhir/{view}/_history").json())
    everything = outsider.sip.get("/fhir/CarePlan/_history").json()
    assert plan_id not in str(everything)
    assert outsider.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 404
    assert (
        outsider.sip.get("/fhir/CarePlan", params={"subject:identifier": subject}).json()["total"]
        == 0
    )
    assert (
        outsider.sip.post("/fhir/CarePlan/_search", data={"subject:identifier": subject}).json()[
            "total"
        ]
        == 0
    )
    for path in (
        f"/fhir/Consent/{consent_id}",
        f"/fhir/Consent/{consent_id}/_history",
        f"/fhir/Consent/{consent_id}/_history/1",
        f"/fhir/Provenance?target=Consent/{consent_id}",
    ):
        assert outsider.consent.get(path).status_code == 404, path
    assert consent_id not in str(outsider.consent.get("/fhir/Consent/_history").json())
    response = outsider.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert response.status_code == 404
    assert (
        outsider.consent.get("/fhir/Consent", params={"patient:identifier": subject}).json()[
            "total"
        ]
        == 0
    )
    # A 404 for a hidden resource is the same as for one that does not exist.
    hidden = outsider.sip.get(f"/fhir/CarePlan/{plan_id}").json()
    missing = outsider.sip.get(f"/fhir/CarePlan/{UNKNOWN}").json()
    assert hidden["issue"][0]["code"] == missing["issue"][0]["code"] == "not-found"
    # Its auditor sees nothing of it in the access log either.
    auditor = system.as_caller("auditor", organization=OTHER_REGION)
    events = auditor.sip.get("/fhir/AuditEvent").json()["entry"]
    assert all(plan_id not in str(event) for event in events)


def test_an_integration_client_acts_only_for_its_own_organisation(system):
    integration = system.as_caller("integration", organization=MUNICIPALITY)
    response = integration.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    assert response.status_code == 403
    own = integration.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer(), MUNICIPALITY), headers=FHIR_JSON
    )
    assert own.status_code == 201


def test_a_patient_sees_their_own_plan_and_consents_and_may_withdraw(system, existing):
    plan_id, consent_id, personnummer = existing
    patient = system.as_caller("patient", organization=None, patient=personnummer)
    stranger = system.as_caller("patient", organization=None, patient=new_personnummer())
    assert patient.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    assert stranger.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 404
    assert patient.consent.get("/fhir/Consent").json()["total"] == 1
    assert stranger.consent.get("/fhir/Consent").json()["total"] == 0
    assert patient.sip.post("/fhir/CarePlan", json=care_plan(personnummer)).status_code == 403
    assert (
        stranger.consent.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        ).status_code
        == 404
    )
    withdrawn = patient.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "inactive"
    assert patient.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 403


def test_an_outsider_changes_nothing_by_any_operation_and_each_refusal_is_logged(system, existing):
    plan_id, consent_id, personnummer = existing
    outsider = system.as_caller("coordinator", organization=OTHER_REGION, subject="olle")
    before = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"]
    looked_up = 0
    for operation in [*OPERATIONS, "activate"]:
        name = getattr(operation, "name", operation)
        response = outsider.sip.post(
            f"/fhir/CarePlan/{plan_id}/${name}", json=OPERATION_BODY, headers=FHIR_JSON
        )
        # Parameters are read before the plan is looked up: a missing one is a 400 that
        # would be the same for a plan that does not exist, so it discloses nothing.
        assert response.status_code in (400, 404), name
        assert response.json()["resourceType"] == "OperationOutcome", name
        unknown = outsider.sip.post(
            f"/fhir/CarePlan/{UNKNOWN}/${name}", json=OPERATION_BODY, headers=FHIR_JSON
        )
        # The same answer as for a plan that does not exist: its existence does not leak.
        assert unknown.status_code == response.status_code, name
        assert response.text.replace(plan_id, UNKNOWN) == unknown.text, name
        looked_up += response.status_code == 404
    for name in ("withdraw", "mark-entered-in-error"):
        response = outsider.consent.post(
            f"/fhir/Consent/{consent_id}/${name}", json=withdrawal(), headers=FHIR_JSON
        )
        assert response.status_code == 404, name
    after = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"]
    assert after == before
    auditor = system.as_caller("auditor")
    subject = f"http://electronichealth.se/identifier/personnummer|{personnummer}"
    log = auditor.sip.get("/fhir/AuditEvent", params={"patient:identifier": subject}).json()
    refused = [
        entry["resource"]
        for entry in log["entry"]
        if entry["resource"]["outcome"] == "4"
        and any(
            agent["who"]["identifier"]["value"] == "olle" for agent in entry["resource"]["agent"]
        )
    ]
    assert looked_up >= 2  # at least $activate and the operations without required parameters
    assert len(refused) == looked_up
