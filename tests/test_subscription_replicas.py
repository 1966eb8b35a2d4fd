"""Two replicas of the SIP service on one PostgreSQL database deliver each notification
exactly once: each claims the subscriptions it works on with `FOR UPDATE SKIP LOCKED`, so
the other passes them over, and no coordinator of our own decides who delivers."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from contracts.subscription_topics import PLAN_CHANGED
from services.common.auth.tokens import DevIssuer, default_scopes
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    consent,
    created_or_ok,
    new_personnummer,
    run,
)
from tests.record_system import RecordSystem, numbered, subscribe, subscription
from tests.replicas import (
    Replica,
    database_urls,
    drop_databases,
    environment,
    migrate_at_once,
    start_together,
)
from tests.servers import free_port, http_client, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.processes]
SUBSCRIPTIONS = 6


def caller(issuer: DevIssuer, url: str, role: str, organization: str):
    token = issuer.mint(
        subject=f"{role}-{organization}", role=role, organization=organization,
        scopes=default_scopes(role),
    )  # fmt: skip
    return http_client(url, headers={"Authorization": f"Bearer {token}"})


def test_two_replicas_deliver_each_notification_once(postgres_pool, tmp_path):
    urls = database_urls(f"sip_subs_{uuid.uuid4().hex[:8]}")
    env = {**environment(tmp_path, urls), "SIP_SUBSCRIPTION_ENDPOINTS": "loopback"}
    consent_port = free_port()
    env["CONSENT_SERVICE_URL"] = f"http://127.0.0.1:{consent_port}"
    replicas = [Replica("consent", consent_port, env, tmp_path / "consent.log")] + [
        Replica("sip", port, env, tmp_path / f"sip-{port}.log")
        for port in (free_port(), free_port())
    ]
    receiver = RecordSystem()
    try:
        assert not migrate_at_once(env, runs=2)
        assert not start_together(replicas)
        issuer = DevIssuer(tmp_path)
        sips = [caller(issuer, r.url, "coordinator", REGION) for r in replicas[1:]]
        record_systems = [caller(issuer, r.url, "integration", REGION) for r in replicas[1:]]
        ids = [
            subscribe(record_systems[i % 2], subscription(PLAN_CHANGED, receiver.url))
            for i in range(SUBSCRIPTIONS)
        ]
        personnummer = new_personnummer()
        consents = caller(issuer, replicas[0].url, "coordinator", REGION)
        created_or_ok(consents.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON))
        changes = 0
        for i in range(8):  # writes to both replicas, interleaved
            sip = sips[i % 2]
            plan = care_plan(personnummer)
            plan_id = created_or_ok(sip.post("/fhir/CarePlan", json=plan, headers=FHIR_JSON))["id"]
            created_or_ok(run(sips[(i + 1) % 2], plan_id, "record-need", text=f"Behov {i}"))
            invitation = {"organization": MUNICIPALITY, "kind": "municipality"}
            created_or_ok(run(sip, plan_id, "invite-organization", **invitation))
            changes += 3
        for subscription_id in ids:
            assert wait_until(
                lambda s=subscription_id: (
                    numbered(record_systems[0], s) >= changes and len(receiver.events(s)) >= changes
                ),
                seconds=30,
            ), (numbered(record_systems[0], subscription_id), len(receiver.events(subscription_id)))
        told = Counter((e.subscription, e.number) for e in receiver.events())
        assert set(told.values()) == {1}, "a notification delivered twice"
        assert len(told) == SUBSCRIPTIONS * changes
        handshakes = Counter(r.subscription for r in receiver.all("handshake"))
        assert set(handshakes.values()) == {1}
    finally:
        receiver.close()
        for replica in replicas:
            replica.stop()
        drop_databases(urls)
