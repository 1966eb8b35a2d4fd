"""`sip up` as a user runs it: two processes, stopped with Ctrl-C or killed outright,
started again on the same data, and everything is still there at the same versions."""

import subprocess
import threading

import httpx
import pytest

from services import demo
from tests.fhir_data import (
    FHIR_JSON,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    parameters,
    prepare_for_activation,
)
from tests.servers import wait_until
from tests.sip_up import SipUp

pytestmark = pytest.mark.processes


@pytest.fixture
def launch(backend):
    """Starts `sip up`; whatever a failing test leaves running is stopped afterwards."""
    launched: list[SipUp] = []

    def start(*arguments, organization=REGION) -> SipUp:
        launched.append(SipUp(backend, *arguments, organization=organization))
        return launched[-1]

    yield start
    for sip_up in launched:
        if sip_up.process.poll() is None:
            try:
                sip_up.stop()  # Ctrl-C, so that it stops its two services too
            except subprocess.TimeoutExpired:
                sip_up.process.kill()


def test_everything_survives_a_restart_at_the_same_versions(backend, launch):
    personnummer = new_personnummer()
    first = launch()
    first.wait_ready()
    given = first.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    plan = first.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    prepare_for_activation(first.sip, plan.json()["id"])
    activated = first.sip.post(f"/fhir/CarePlan/{plan.json()['id']}/$activate")
    assert activated.status_code == 200, activated.text
    draft = first.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    output = first.stop()
    assert first.process.returncode == 0, output
    assert "stopped" in output
    assert personnummer not in output

    second = launch()  # stopped by the fixture should an assertion fail
    second.wait_ready()
    for client, path, expected in (
        (second.consent, f"/fhir/Consent/{given.json()['id']}", given.json()),
        (second.sip, f"/fhir/CarePlan/{plan.json()['id']}", activated.json()),
        (second.sip, f"/fhir/CarePlan/{draft.json()['id']}", draft.json()),
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == expected
        assert response.headers["ETag"] == f'W/"{expected["meta"]["versionId"]}"'
    found = second.sip.get(
        "/fhir/CarePlan", params={"subject:identifier": f"|{personnummer}"}
    ).json()
    assert found["total"] == 2
    output = second.stop()  # the second run stops on Ctrl-C as cleanly as the first
    assert second.process.returncode == 0, output
    assert "stopped" in output
    assert personnummer not in output


def test_nothing_acknowledged_is_lost_when_the_services_are_killed(backend, launch):
    """Writes keep coming while every process is killed with SIGKILL; each write that was
    answered 201 or 200 is there after a restart, at its version, and found by search."""
    personnummer = new_personnummer()
    first = launch()
    first.wait_ready()
    given = first.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    assert given.status_code == 201
    acknowledged: dict[str, dict] = {}
    crashing = threading.Event()

    def keep_writing() -> None:
        while not crashing.is_set():
            try:
                created = first.sip.post(
                    "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
                )
                if created.status_code != 201:
                    continue
                acknowledged[created.json()["id"]] = created.json()
                need = first.sip.post(
                    f"/fhir/CarePlan/{created.json()['id']}/$record-need",
                    json=parameters(text="Stöd i vardagen"), headers=FHIR_JSON,
                )  # fmt: skip
                if need.status_code == 200:
                    acknowledged[need.json()["id"]] = need.json()
            except httpx.HTTPError:
                return  # the services are gone

    writer = threading.Thread(target=keep_writing)
    writer.start()
    assert wait_until(lambda: len(acknowledged) >= 10, seconds=30)
    first.crash()
    crashing.set()
    writer.join(timeout=15)

    second = launch()
    second.wait_ready()
    try:
        for plan_id, expected in acknowledged.items():
            response = second.sip.get(f"/fhir/CarePlan/{plan_id}")
            assert response.status_code == 200, plan_id
            assert int(response.json()["meta"]["versionId"]) >= int(
                expected["meta"]["versionId"]
            )  # a write answered after the kill began may have landed too
            read_back = second.sip.get(
                f"/fhir/CarePlan/{plan_id}/_history/{expected['meta']['versionId']}"
            )
            assert read_back.json() == expected
        found = second.sip.get(
            "/fhir/CarePlan", params={"subject:identifier": f"|{personnummer}", "_count": 1000}
        ).json()
        assert set(acknowledged) <= {entry["resource"]["id"] for entry in found["entry"]}
        assert second.consent.get(f"/fhir/Consent/{given.json()['id']}").status_code == 200
    finally:
        second.stop()


@pytest.mark.parametrize("backend_kind", ["sqlite"], indirect=True)
def test_sip_up_demo_loads_plans_in_different_states_once(launch):
    first = launch("--demo", organization=demo.REGION)
    first.wait_ready()
    assert wait_until(lambda: first.printed("Press Ctrl-C"), seconds=60)
    statuses = sorted(
        entry["resource"]["status"] for entry in first.sip.get("/fhir/CarePlan").json()["entry"]
    )
    assert statuses == ["active", "draft", "draft"]
    withdrawn = first.consent.get("/fhir/Consent", params={"status": "inactive"}).json()
    assert withdrawn["total"] == 1
    # One stay in progress, ready for discharge (its SIP call still to come).
    stays = first.sip.get("/fhir/Encounter", params={"status": "in-progress"}).json()
    assert stays["total"] == 1, stays
    output = first.stop()
    assert "demo: Tolvan Tolvansson: CarePlan/" in output
    assert f"demo: {demo.STAY_PERSON.name}: Encounter/" in output
    assert "http://127.0.0.1:" in output

    second = launch("--demo", organization=demo.REGION)
    second.wait_ready()
    assert wait_until(lambda: second.printed("Press Ctrl-C"), seconds=60)
    assert second.sip.get("/fhir/CarePlan").json()["total"] == 3
    assert second.sip.get("/fhir/Encounter").json()["total"] == 1
    output = second.stop()
    assert output.count("already loaded") == 4  # three plans and the stay
