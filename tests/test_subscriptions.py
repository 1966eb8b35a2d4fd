"""Subscriptions (FHIR Subscriptions Backport IG): a record system subscribes for its
organisation and is told every change of its plans, in order, signed, and nothing it may not
read at the moment of delivery; bad requests are refused with an OperationOutcome."""

from __future__ import annotations

import time
from uuid import UUID

import httpx
import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from contracts.subscription_topics import (
    CONSENT_WITHDRAWN,
    DEVIATION_REPORTED,
    FOLLOW_UP_OVERDUE,
    ORGANIZATION_INVITED,
    PLAN_CHANGED,
)
from services.sip.subscription_topics import PART_OF_EVENT
from tests.conftest import running_system
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    active_plan,
    care_plan,
    consent,
    created_or_ok,
    new_personnummer,
    run,
    withdrawal,
)
from tests.record_system import RecordSystem, notified_in, numbered, subscribe, subscription
from tests.servers import wait_until


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(
        module_backend, subscription_endpoints=("loopback",), subscription_check_seconds=0.2
    ) as system:
        yield system


@pytest.fixture
def receiver(system):
    keys = httpx.get(f"{system.sip_url}/events/checkpoint-keys").json()
    record_system = RecordSystem(public_keys=keys)
    yield record_system
    record_system.close()


def integration(system, organization=REGION):
    return system.as_caller("integration", organization, subject=f"rs-{organization}").sip


def plan_parts_in_log(system, plan_id):
    """The part each stored event of the plan changed, in the log's order."""
    stored = system.sip_app.state.plans.events.get(UUID(plan_id))
    return [PART_OF_EVENT[type(e).__name__] for e in stored if type(e).__name__ in PART_OF_EVENT]


def test_a_subscriber_is_told_every_change_of_its_plans_in_order_and_an_outsider_nothing(
    system, receiver
):
    region = integration(system)
    mine = subscribe(region, subscription(PLAN_CHANGED, receiver.url))
    outsider = subscribe(
        integration(system, OTHER_REGION), subscription(PLAN_CHANGED, receiver.url)
    )
    plan_id, _ = active_plan(system)
    created_or_ok(run(system.sip, plan_id, "record-need", text="Mer stöd på kvällar"))
    expected = plan_parts_in_log(system, plan_id)

    def told():
        return [e for e in receiver.events(mine) if e.focus == f"CarePlan/{plan_id}"]

    assert wait_until(lambda: len(told()) >= len(expected)), (len(told()), expected)
    numbers = [e.number for e in receiver.events(mine)]
    assert numbers == sorted(set(numbers)), "each number once, in order"
    assert [e.part for e in told()] == expected
    assert all(r.signature_verified for r in receiver.all(subscription=mine))
    assert receiver.all("handshake", outsider) and not receiver.all("event-notification", outsider)
    # $status counts what is committed: the last notification may arrive just before.
    assert wait_until(lambda: numbered(region, mine) == numbers[-1])


def test_full_resource_carries_the_plan_as_the_subscriber_may_read_it(system, receiver):
    personnummer = new_personnummer()
    municipality = integration(system, MUNICIPALITY)
    subscribe(
        municipality,
        subscription(PLAN_CHANGED, receiver.url, patient=personnummer, payload="full-resource"),
    )
    created_or_ok(
        system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    )
    plan = care_plan(personnummer)
    plan_id = created_or_ok(system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON))["id"]
    invitation = {"organization": MUNICIPALITY, "kind": "municipality"}
    created_or_ok(run(system.sip, plan_id, "invite-organization", **invitation))
    created_or_ok(run(system.sip, plan_id, "record-need", text="Ett behov"))
    assert wait_until(lambda: any(e.part == "need" for e in receiver.events()))
    told = [e for e in receiver.events() if e.part == "need"][-1].resource
    read = municipality.get(f"/fhir/CarePlan/{plan_id}").json()
    assert {k: v for k, v in told.items() if k != "meta"} == {
        k: v for k, v in read.items() if k != "meta"
    }


@pytest.mark.latency
def test_notifications_about_a_person_stop_within_a_second_of_the_consent_withdrawal(
    system, receiver
):
    plan_id, personnummer = active_plan(system)
    municipality = integration(system, MUNICIPALITY)
    changes = subscribe(
        municipality, subscription(PLAN_CHANGED, receiver.url, patient=personnummer, part="need")
    )
    told_of_withdrawal = subscribe(municipality, subscription(CONSENT_WITHDRAWN, receiver.url))
    created_or_ok(run(system.sip, plan_id, "record-need", text="Före"))
    assert wait_until(lambda: receiver.events(changes)), "a change with consent is told"
    consent_id = next(
        c["id"]
        for c in system.consent.get(
            "/fhir/Consent",
            params={
                "patient:identifier": f"http://electronichealth.se/identifier/personnummer|{personnummer}"
            },
        ).json()["entry"]
        for c in [c["resource"]]
    )
    withdrawn_at = time.monotonic()
    response = system.consent.post(
        f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
    )
    assert response.status_code == 200, response.text
    changed_later = 0
    while time.monotonic() < withdrawn_at + 2.0:  # the region goes on recording its entries
        # 409 when the SIP service notes the withdrawal on the plan at the same moment
        answer = run(system.sip, plan_id, "record-need", text="Efter")
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 200 and time.monotonic() > withdrawn_at + 1.0:
            changed_later += 1
        time.sleep(0.1)
    assert changed_later, "changes more than a second after the withdrawal, to be not told"
    time.sleep(0.3)
    late = [r for r in receiver.all("event-notification", changes) if r.at > withdrawn_at + 1.0]
    assert not late, f"{len(late)} notifications more than a second after the withdrawal"
    withdrawal_told = receiver.events(told_of_withdrawal)
    assert [e.focus for e in withdrawal_told] == [f"CarePlan/{plan_id}"]
    assert "Consent" not in str(
        receiver.all(subscription=told_of_withdrawal)[-1].bundle["entry"][1:]
    )


def test_each_delivery_and_each_fetch_is_an_access_record_of_the_subscriber(system, receiver):
    """What a record system is told about a person is in the person's log as any read is:
    one record per notification delivered, one per notification fetched with `$events`, with
    the record system as the one who accessed it."""
    personnummer = new_personnummer()
    subject = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
    region = integration(system)
    mine = subscribe(region, subscription(PLAN_CHANGED, receiver.url, patient=personnummer))
    created_or_ok(
        system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    )
    plan = care_plan(personnummer)
    plan_id = created_or_ok(system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON))["id"]
    for text in ("Ett behov", "Ett till"):
        created_or_ok(run(system.sip, plan_id, "record-need", text=text))
    assert wait_until(lambda: numbered(region, mine) >= 3)
    delivered = {e.number for e in receiver.events(mine)}
    fetched = region.get(f"/fhir/Subscription/{mine}/$events", params={"eventsSinceNumber": 2})
    assert fetched.status_code == 200, fetched.text

    auditor = system.as_caller("auditor", subject="ivo")
    log = auditor.sip.get("/fhir/AuditEvent", params={"patient:identifier": subject}).json()
    told = [
        e["resource"]
        for e in log["entry"]
        if e["resource"]["subtype"][0]["code"] == "subscription-notification"
    ]
    assert len(told) == len(delivered) + 2, "each delivery, then the two fetched"
    for record in told:
        assert record["action"] == "R" and record["outcome"] == "0"
        assert record["agent"][0]["who"]["identifier"]["value"] == f"rs-{REGION}"
        assert record["entity"][0]["what"]["identifier"]["value"] == personnummer
        assert record["entity"][1]["what"]["reference"] == f"CarePlan/{plan_id}"
    told_numbers = sorted(int(r["outcomeDesc"].split(" event ")[1].split()[0]) for r in told)
    assert told_numbers == sorted([*delivered, 2, 3]), told_numbers
    assert all(r["outcomeDesc"].startswith(f"Subscription/{mine} ") for r in told)


@pytest.mark.parametrize(
    "parameter, named",
    [
        ({"name": "eventsSinceNumber", "valueString": "abc"}, "eventsSinceNumber"),
        ({"name": "eventsSinceNumber", "valueString": "0"}, "eventsSinceNumber"),
        ({"name": "eventsUntilNumber", "valueString": "-1"}, "eventsUntilNumber"),
        ({"name": "eventsUntilNumber", "valueString": "9" * 30}, "eventsUntilNumber"),
        ({"name": "content", "valueCode": "everything"}, "content"),
        ({"name": "eventsSince", "valueString": "1"}, "eventsSince"),
    ],
)
def test_events_by_post_refuses_what_is_not_an_event_number_naming_it(
    system, receiver, parameter, named
):
    region = integration(system)
    mine = subscribe(region, subscription(PLAN_CHANGED, receiver.url))
    body = {"resourceType": "Parameters", "parameter": [parameter]}
    answer = region.post(f"/fhir/Subscription/{mine}/$events", json=body, headers=FHIR_JSON)
    assert answer.status_code == 400, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome" and named in answer.text
    outsider = integration(system, MUNICIPALITY)
    fine = {"resourceType": "Parameters", "parameter": []}
    assert (
        outsider.post(
            f"/fhir/Subscription/{mine}/$events", json=fine, headers=FHIR_JSON
        ).status_code
        == 404
    )


def test_an_invitation_and_a_deviation_are_told_to_the_organisation_concerned(system, receiver):
    municipality = integration(system, MUNICIPALITY)
    invited = subscribe(municipality, subscription(ORGANIZATION_INVITED, receiver.url))
    deviations = subscribe(municipality, subscription(DEVIATION_REPORTED, receiver.url))
    regions_deviations = subscribe(
        integration(system), subscription(DEVIATION_REPORTED, receiver.url)
    )
    plan_id, _ = active_plan(system)
    # The municipality is responsible for intervention-1 (prepare_for_activation).
    created_or_ok(
        run(system.sip, plan_id, "report-deviation", intervention="intervention-1", text="Uteblev")
    )
    focus = f"CarePlan/{plan_id}"
    assert wait_until(lambda: [e.focus for e in receiver.events(deviations)] == [focus])
    assert [e.focus for e in receiver.events(invited)] == [focus]
    time.sleep(0.3)
    assert not receiver.events(regions_deviations), "the reporter is not told of its own report"


def test_an_overdue_follow_up_is_told_once(system, receiver):
    region = integration(system)
    overdue = subscribe(region, subscription(FOLLOW_UP_OVERDUE, receiver.url))
    personnummer = new_personnummer()
    plan = care_plan(personnummer)
    plan_id = created_or_ok(system.sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON))["id"]
    created_or_ok(run(system.sip, plan_id, "set-follow-up", date="2026-01-15"))
    focus = f"CarePlan/{plan_id}"
    assert wait_until(lambda: focus in [e.focus for e in receiver.events(overdue)])
    time.sleep(1.0)  # several checks later
    assert [e.focus for e in receiver.events(overdue)].count(focus) == 1


def test_events_fetches_what_a_receiver_missed_by_number(system, receiver):
    region = integration(system)
    mine = subscribe(region, subscription(PLAN_CHANGED, receiver.url))
    plan_id, _ = active_plan(system)
    assert wait_until(lambda: numbered(region, mine) >= 3)  # committed, not only sent
    fetched = region.get(
        f"/fhir/Subscription/{mine}/$events",
        params={"eventsSinceNumber": 2, "eventsUntilNumber": 3},
    )
    assert fetched.status_code == 200, fetched.text
    events = notified_in(fetched.json(), mine)
    assert [e.number for e in events] == [2, 3]
    assert all(e.focus == f"CarePlan/{plan_id}" for e in events)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"channel": {"type": "rest-hook", "endpoint": "http://10.0.0.1/x"}}, 422),
        ({"channel": {"type": "rest-hook", "endpoint": "https://169.254.169.254/latest"}}, 422),
        ({"channel": {"type": "rest-hook", "endpoint": "ftp://example.org/x"}}, 422),
        ({"channel": {"type": "rest-hook", "endpoint": "https://user:pw@example.org/x"}}, 422),
        ({"channel": {"type": "email", "endpoint": "mailto:a@b.se"}}, 422),
        ({"criteria": "https://example.org/SubscriptionTopic/nope"}, 422),
        ({"criteria": 42}, 400),
        ({"status": "active", "resourceType": "Patient"}, 400),
        (
            {
                "_criteria": {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
                            "valueString": f"CarePlan?organization={MUNICIPALITY}",
                        }
                    ]
                }
            },
            422,
        ),
        (
            {
                "_criteria": {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
                            "valueString": "CarePlan?patient=x|1",
                        }
                    ]
                }
            },
            422,
        ),
        (
            {
                "_criteria": {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
                            "valueString": "CarePlan?part=secrets",
                        }
                    ]
                }
            },
            422,
        ),
        (
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
                        "valueUnsignedInt": 0,
                    }
                ]
            },
            422,
        ),
    ],
)
def test_bad_subscriptions_are_refused_with_an_operation_outcome(system, receiver, change, status):
    body = {**subscription(PLAN_CHANGED, receiver.url), **change}
    response = integration(system).post("/fhir/Subscription", json=body, headers=FHIR_JSON)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_only_the_owner_sees_or_changes_a_subscription_and_only_a_record_system_makes_one(
    system, receiver
):
    region = integration(system)
    mine = subscribe(region, subscription(PLAN_CHANGED, receiver.url))
    other = integration(system, MUNICIPALITY)
    for method in ("GET", "DELETE"):
        assert other.request(method, f"/fhir/Subscription/{mine}").status_code == 404
    assert other.get(f"/fhir/Subscription/{mine}/$events").status_code == 404
    body = {**subscription(PLAN_CHANGED, receiver.url), "id": mine}
    assert other.put(f"/fhir/Subscription/{mine}", json=body, headers=FHIR_JSON).status_code == 404
    assert mine not in other.get("/fhir/Subscription").text
    coordinator = system.sip  # a person's user, not a record system
    answer = coordinator.post("/fhir/Subscription", json=body, headers=FHIR_JSON)
    assert answer.status_code == 403 and answer.json()["resourceType"] == "OperationOutcome"
    assert region.get("/fhir/Subscription/not-a-subscription").status_code == 404
    assert region.get(f"/fhir/Subscription/{mine}").json()["status"] == "active"
    assert region.delete(f"/fhir/Subscription/{mine}").status_code == 204
    assert region.get(f"/fhir/Subscription/{mine}").status_code == 404


def test_the_topics_are_readable_and_in_the_capability_statement(system):
    topics = integration(system).get("/fhir/SubscriptionTopic").json()
    codes = {entry["resource"]["id"] for entry in topics["entry"]}
    assert codes == {
        PLAN_CHANGED,
        ORGANIZATION_INVITED,
        DEVIATION_REPORTED,
        FOLLOW_UP_OVERDUE,
        CONSENT_WITHDRAWN,
    }
    statement = httpx.get(f"{system.sip_url}/fhir/metadata").json()
    subscription_entry = next(
        r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"
    )
    assert len(subscription_entry["extension"]) == 5


def test_a_quiet_subscription_gets_heartbeats(system, receiver):
    quiet = subscribe(
        integration(system, OTHER_REGION), subscription(PLAN_CHANGED, receiver.url, heartbeat=1)
    )
    assert wait_until(lambda: len(receiver.all("heartbeat", quiet)) >= 2, seconds=5)
    assert all(r.signature_verified for r in receiver.all(subscription=quiet))
