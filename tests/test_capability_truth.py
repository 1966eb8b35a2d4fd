"""Each service's CapabilityStatement held against the service, on SQLite and PostgreSQL:
for every declared interaction, search parameter, include and operation, one request made
from what the statement says must be served (not 400, 404 or 405). A parameter, interaction
or operation added to the statement without being served fails here; one served without an
example value here fails too, so the examples grow with the statement."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from contracts.canonical import CONSENT_CATEGORIES
from contracts.identifiers import PERSONNUMMER_SYSTEM
from contracts.subscription_topics import PLAN_CHANGED
from services.sip.discharge.application import Stays
from tests.communication_http import message, send
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    active_plan,
    care_plan,
    consent,
    new_personnummer,
    run,
)
from tests.record_system import subscription

UNSERVED = (400, 404, 405)
# A value that matches something, by parameter; the FHIR type's, for a date.
EXAMPLES: dict[str, str] = {
    "status": "active",
    "identifier": "urn:example:record-system|not-given",
    "care-team-organization": REGION,
    "responsible-organization": REGION,
    "invitation-pending": REGION,
    "follow-up-due": "le2030-12-31",
    "actor": REGION,
    "category": next(iter(CONSENT_CATEGORIES)),
    "agent": "someone",
    "organization": REGION,
    "action": "R",
    "subtype": "read",
    "deadline-missed": "false",
    "part-status": "needs-action",
    "overdue": "false",
}
BY_TYPE = {"date": "le2030-12-31"}
# Where a resource type's parameter takes other values than the name's example.
EXAMPLES_OF_TYPE: dict[tuple[str, str], str] = {
    ("Encounter", "status"): "in-progress",
    ("Appointment", "status"): "pending",
    ("AppointmentResponse", "part-status"): "accepted",
    ("Task", "status"): "requested",
    ("Communication", "category"): "admission-notice",
    ("Task", "owner"): f"Organization/{REGION}",
    ("Task", "encounter"): f"Encounter/{uuid4()}",
    ("Task", "focus"): f"Encounter/{uuid4()}",
}
# Reference parameters that name another type than the person: (its type, found how).
REFERENCED = {"based-on": "CarePlan", "supporting-info": "CarePlan", "appointment": "Appointment"}


class Target:
    """What the requests need: a plan, its person, a consent, and callers of each kind."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.plan_id, self.personnummer = active_plan(system)
        meeting = run(system.sip, self.plan_id, "schedule-meeting", start="2027-02-01T09:00:00Z",
                      end="2027-02-01T10:00:00Z", location="Kommunhuset")  # fmt: skip
        assert meeting.status_code == 200, meeting.text
        answer = {"resourceType": "AppointmentResponse", "participantStatus": "accepted",
                  "appointment": {"reference": f"Appointment/{self.invite()}"}}  # fmt: skip
        answered = system.sip.post("/fhir/AppointmentResponse", json=answer, headers=FHIR_JSON)
        assert answered.status_code == 201, answered.text
        # A stay of the same person at the region's ward: the Encounter to read and find.
        hospital = {"subject": "ward-doctor", "role": "professional", "organization": REGION,
                    "unit": f"{REGION}-WARD"}  # fmt: skip
        stays = Stays(system.sip_app.state.plans, consent_gate=None)
        self.stay_id = stays.admit(
            subject={"system": PERSONNUMMER_SYSTEM, "value": self.personnummer},
            ward=f"{REGION}-WARD", admitted_at=datetime.now(UTC), by=hospital,
        ).id  # fmt: skip
        # Care judged needed: the stay has a duty (a Task to read and find).
        stays.judge_care_needed(
            self.stay_id, principals=["region"], at=datetime.now(UTC), by=hospital
        )
        # A message about the plan to the municipality: the Communication to read and find.
        assert _create(self, "Communication").status_code == 201
        self.auditor = system.as_caller("auditor")
        self.record_system = system.as_caller("integration", REGION)

    def invite(self) -> str:
        """A meeting invitation to the region itself, for its AppointmentResponses."""
        invited = run(self.system.sip, self.plan_id, "invite-to-meeting",
                      start="2027-02-02T09:00:00Z", end="2027-02-02T10:00:00Z",
                      location="Kommunhuset", organization=[REGION])  # fmt: skip
        assert invited.status_code == 200, invited.text
        return invited.json()["id"]

    def client(self, service: str, resource_type: str) -> httpx.Client:
        caller = {"AuditEvent": self.auditor, "Subscription": self.record_system}.get(
            resource_type, self.system
        )
        return getattr(caller, service)

    def some_id(self, client: httpx.Client, resource_type: str) -> str:
        """An id of the type the caller may read, from its type history or its search."""
        for path in (f"/fhir/{resource_type}/_history", f"/fhir/{resource_type}"):
            response = client.get(path, params={"_count": "1"})
            if response.status_code == 200 and response.json().get("entry"):
                return response.json()["entry"][0]["resource"]["id"]
        raise AssertionError(f"no {resource_type} to read")

    def required(self, service: str, resource_type: str) -> dict[str, str]:
        """What a search of the type always needs (Provenance: its target)."""
        if resource_type != "Provenance":
            return {}
        return {
            "target": self.value(service, resource_type, {"name": "target", "type": "reference"})
        }

    def value(self, service: str, resource_type: str, parameter: dict[str, Any]) -> str:
        name, kind = parameter["name"], parameter["type"]
        if name == "_id":
            return self.some_id(self.client(service, resource_type), resource_type)
        if (resource_type, name) in EXAMPLES_OF_TYPE:
            return EXAMPLES_OF_TYPE[(resource_type, name)]
        if kind == "reference" and name == "target":
            owner = "CarePlan" if service == "sip" else "Consent"
            return f"{owner}/{self.some_id(self.client(service, owner), owner)}"
        if kind == "reference" and resource_type == "Communication":
            return {
                "recipient": MUNICIPALITY,
                "sender": REGION,
                "encounter": f"Encounter/{self.stay_id}",
                "based-on": f"CarePlan/{self.plan_id}",
            }[name]
        if kind == "reference" and name in REFERENCED:
            owner = REFERENCED[name]
            return f"{owner}/{self.some_id(self.client(service, owner), owner)}"
        if kind == "reference":
            return f"Patient/{self.personnummer}"
        if kind == "uri":
            found = self.client(service, "OperationDefinition").get("/fhir/OperationDefinition")
            return found.json()["entry"][0]["resource"]["url"]
        example = (
            EXAMPLES_OF_TYPE.get((resource_type, name)) or EXAMPLES.get(name) or BY_TYPE.get(kind)
        )
        assert example, f"{resource_type}.{name} ({kind}) has no example value in this test"
        return example


@pytest.fixture(scope="module")
def target(system) -> Target:
    return Target(system)


def statement(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    return response.json()


def resources(target: Target, service: str) -> list[dict[str, Any]]:
    return statement(getattr(target.system, service))["rest"][0]["resource"]


def served(response: httpx.Response, what: str) -> None:
    assert response.status_code not in UNSERVED, f"{what}: {response.status_code} {response.text}"


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_every_declared_search_parameter_and_include_is_served(target, service):
    for resource in resources(target, service):
        resource_type = resource["type"]
        client = target.client(service, resource_type)
        for parameter in resource.get("searchParam", []):
            value = target.value(service, resource_type, parameter)
            what = f"{resource_type}?{parameter['name']}"
            extra = {} if parameter["name"] == "target" else target.required(service, resource_type)
            by_get = client.get(
                f"/fhir/{resource_type}", params={parameter["name"]: value, **extra}
            )
            served(by_get, what)
            by_post = client.post(
                f"/fhir/{resource_type}/_search", data={parameter["name"]: value, **extra}
            )
            served(by_post, f"POST {what}")
        for include in resource.get("searchInclude", []):
            served(client.get(f"/fhir/{resource_type}", params={"_include": include}), include)
        for key in _sort_keys(resource):
            extra = target.required(service, resource_type)
            for sort in (key, f"-{key}"):
                asked = {"_sort": sort, "_count": "2", **extra}
                served(client.get(f"/fhir/{resource_type}", params=asked), f"_sort={sort}")


def _sort_keys(resource: dict[str, Any]) -> list[str]:
    """What the search interaction's documentation says `_sort` takes."""
    for interaction in resource["interaction"]:
        said = re.search(r"_sort takes ([^.]+)\.", interaction.get("documentation", ""))
        if said and said[1] != "nothing":
            return said[1].split(", ")
    return []


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_every_declared_interaction_is_served(target, service):
    for resource in resources(target, service):
        resource_type = resource["type"]
        client = target.client(service, resource_type)
        codes = [interaction["code"] for interaction in resource["interaction"]]
        if "search-type" in codes:
            extra = target.required(service, resource_type)
            for result in ({"_count": "1"}, {"_summary": "true"}, {"_total": "accurate"}):
                served(client.get(f"/fhir/{resource_type}", params={**extra, **result}), "search")
            served(client.post(f"/fhir/{resource_type}/_search", data=extra), "POST _search")
        if "history-type" in codes:
            for asked in ({}, {"_since": "2020-01-01"}, {"_count": "2"}, {"_elements": "id"}):
                served(client.get(f"/fhir/{resource_type}/_history", params=asked), "history")
        if "create" in codes:
            served(_create(target, resource_type), f"create {resource_type}")
        if {"update", "delete"} & set(codes):
            _update_and_delete(target, resource_type, codes)
        if not {"read", "vread", "history-instance"} & set(codes):
            continue
        resource_id = target.some_id(client, resource_type)
        path = f"/fhir/{resource_type}/{resource_id}"
        if "read" in codes:
            served(client.get(path), f"read {resource_type}")
        if "history-instance" in codes:
            for asked in ({}, {"_at": "2099-01-01T00:00:00Z"}, {"_since": "2020-01-01"}):
                served(client.get(f"{path}/_history", params=asked), f"history {resource_type}")
        if "vread" in codes:
            version = client.get(path).json()["meta"]["versionId"]
            served(client.get(f"{path}/_history/{version}"), f"vread {resource_type}")


def _update_and_delete(target: Target, resource_type: str, codes: list[str]) -> None:
    assert resource_type == "Subscription", resource_type
    made = _create(target, resource_type)
    path = f"/fhir/Subscription/{made.json()['id']}"
    if "update" in codes:
        changed = {**made.json(), "reason": "changed by the truth test"}
        served(target.record_system.sip.put(path, json=changed, headers=FHIR_JSON), "update")
    if "delete" in codes:
        served(target.record_system.sip.delete(path), "delete Subscription")


def _create(target: Target, resource_type: str) -> httpx.Response:
    if resource_type == "Subscription":  # paused: nothing is sent to the address
        paused = {**subscription(PLAN_CHANGED, "https://1.1.1.1/sip-notify"), "status": "off"}
        return target.record_system.sip.post("/fhir/Subscription", json=paused, headers=FHIR_JSON)
    if resource_type == "CarePlan":
        return target.system.sip.post(
            "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
        )
    if resource_type == "Communication":
        about_the_plan = message(plan=target.plan_id, to=(MUNICIPALITY,))
        return send(target.system.sip, about_the_plan)
    if resource_type == "AppointmentResponse":
        answer = {"resourceType": "AppointmentResponse", "participantStatus": "accepted",
                  "appointment": {"reference": f"Appointment/{target.invite()}"}}  # fmt: skip
        return target.system.sip.post("/fhir/AppointmentResponse", json=answer, headers=FHIR_JSON)
    assert resource_type == "Consent", resource_type
    personnummer = new_personnummer()
    person = target.system.as_caller("patient", organization=None, patient=personnummer)
    return person.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_every_declared_operation_has_a_served_definition_and_route(target, service):
    client = getattr(target.system, service)
    for resource in resources(target, service):
        for operation in resource.get("operation", []):
            definition = client.get(operation["definition"])
            assert definition.status_code == 200, operation["definition"]
            declared = definition.json()
            assert declared["code"] == operation["name"]
            # The canonical URL finds it as well.
            found = client.get("/fhir/OperationDefinition", params={"url": declared["url"]})
            assert found.json()["total"] == 1
            response = _call(target, client, resource["type"], declared)
            # A route that is served reads the parameters the definition declares: called
            # without them it names the first one missing, never 404 or 405.
            assert response.status_code not in (404, 405), (declared["id"], response.text)
            if response.status_code == 400:
                required = [
                    p["name"] for p in declared["parameter"] if p["use"] == "in" and p["min"]
                ]
                assert required and any(name in response.text for name in required), (
                    declared["id"], response.text,
                )  # fmt: skip


def _call(
    target: Target, client: httpx.Client, resource_type: str, declared: dict[str, Any]
) -> httpx.Response:
    """The operation called on the target as the statement describes it."""
    if resource_type == "Patient":
        instance = target.personnummer
        client = target.auditor.sip if client is target.system.sip else target.auditor.consent
    elif resource_type == "CarePlan":
        instance = target.plan_id
    elif resource_type == "Subscription":
        client = target.record_system.sip
        instance = _create(target, resource_type).json()["id"]
    else:
        instance = target.some_id(client, resource_type)
    path = f"/fhir/{resource_type}"
    path += f"/{instance}/${declared['code']}" if declared["instance"] else f"/${declared['code']}"
    # R4 (operations.html): every operation is invoked by POST; one that changes nothing
    # may be invoked by GET too.
    empty = {"resourceType": "Parameters", "parameter": []}
    return client.post(path, json=empty, headers=FHIR_JSON)


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_every_declared_system_interaction_is_served(target, service):
    client = getattr(target.system, service)
    owner = "CarePlan" if service == "sip" else "Consent"
    read = {"request": {"method": "GET", "url": f"{owner}/{target.some_id(client, owner)}"}}
    for interaction in statement(client)["rest"][0].get("interaction", []):
        code = interaction["code"]
        assert code in ("transaction", "batch"), f"{code}: no request for it in this test"
        bundle = {"resourceType": "Bundle", "type": code, "entry": [read]}
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        served(response, code)
        assert response.json()["type"] == f"{code}-response"
