"""A subscription across a kill -9 of the services: a record system is told every change of
its plans, in order per plan, though the service was killed mid-stream and the receiver was
down meanwhile; what it missed it fetches by number with `$events`."""

from __future__ import annotations

import threading

import httpx
import pytest

from contracts.subscription_topics import PLAN_CHANGED
from tests.fhir_data import FHIR_JSON, REGION, care_plan, consent, new_personnummer, parameters
from tests.record_system import RecordSystem, notified_in, numbered, subscribe, subscription
from tests.servers import http_client, wait_until
from tests.sip_up import SipUp

pytestmark = pytest.mark.processes


def record_system_client(sip_up: SipUp, backend) -> httpx.Client:
    token = backend.issuer.mint(
        subject="record-system", role="integration", organization=REGION,
        scopes=("system/Subscription.cruds", "system/*.rs"),
    )  # fmt: skip
    return http_client(
        f"http://127.0.0.1:{sip_up.sip_port}", headers={"Authorization": f"Bearer {token}"}
    )


def keep_writing(sip_up: SipUp, personnummer: str, acknowledged: dict, stop: threading.Event):
    """Plans and their needs, as fast as they are answered: plan id -> newest version
    acknowledged."""
    while not stop.is_set():
        try:
            created = sip_up.sip.post(
                "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
            )
            if created.status_code != 201:
                continue
            plan_id = created.json()["id"]
            acknowledged[plan_id] = 1
            need = sip_up.sip.post(
                f"/fhir/CarePlan/{plan_id}/$record-need",
                json=parameters(text="Stöd i vardagen"), headers=FHIR_JSON,
            )  # fmt: skip
            if need.status_code == 200:
                acknowledged[plan_id] = int(need.json()["meta"]["versionId"])
        except httpx.HTTPError:
            return  # the services are gone


def test_every_change_is_told_across_a_kill_9_and_events_fills_the_gap(backend, monkeypatch):
    monkeypatch.setenv("SIP_SUBSCRIPTION_ENDPOINTS", "loopback")
    receiver = RecordSystem()
    personnummer = new_personnummer()
    first = SipUp(backend)
    second = None
    try:
        first.wait_ready()
        receiver.public_keys = first.sip.get("/events/checkpoint-keys").json()
        first.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
        client = record_system_client(first, backend)
        subscription_id = subscribe(client, subscription(PLAN_CHANGED, receiver.url))
        acknowledged: dict[str, int] = {}
        stop = threading.Event()
        writer = threading.Thread(
            target=keep_writing, args=(first, personnummer, acknowledged, stop)
        )
        writer.start()
        assert wait_until(lambda: len(acknowledged) >= 5, seconds=30)
        receiver.down = True  # the record system goes down too, for a while
        assert wait_until(lambda: len(acknowledged) >= 10, seconds=30)
        first.crash()
        stop.set()
        writer.join(timeout=15)

        second = SipUp(backend)
        second.wait_ready()
        client = record_system_client(second, backend)
        receiver.down = False
        expected = sum(acknowledged.values())  # a plan-changed notification per version

        # Versions answered as the kill began may have landed too: at least the acknowledged.
        assert wait_until(lambda: numbered(client, subscription_id) >= expected, seconds=60), (
            numbered(client, subscription_id),
            expected,
        )
        pushed = {e.number: e for e in receiver.events(subscription_id)}
        missing = sorted(set(range(1, numbered(client, subscription_id) + 1)) - set(pushed))
        fetched = {}
        if missing:
            answer = client.get(
                f"/fhir/Subscription/{subscription_id}/$events",
                params={"eventsSinceNumber": missing[0], "eventsUntilNumber": missing[-1]},
            )
            assert answer.status_code == 200, answer.text
            fetched = {e.number: e for e in notified_in(answer.json(), subscription_id)}
        told = {**fetched, **pushed}
        assert sorted(told) == list(range(1, numbered(client, subscription_id) + 1)), (
            "every number, pushed or fetched"
        )
        for plan_id, version in acknowledged.items():
            about = [told[n].part for n in sorted(told) if told[n].focus == f"CarePlan/{plan_id}"]
            assert about[:version] == ["status", "need"][:version], (plan_id, about)
        assert all(r.signature_verified for r in receiver.all())
    finally:
        receiver.close()
        for sip_up in (first, second):
            if sip_up is not None and sip_up.process.poll() is None:
                sip_up.stop()
