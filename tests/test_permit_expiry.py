"""Withdrawal and expiry take effect within one second across SIP replicas (issue 12).

Two SIP service instances on the same database and one consent service, over real HTTP on
both backends. Each instance keeps its own permit cache; the consent feed's shared position
makes the plan notes happen once, while each instance follows the feed for its own cache. A
cached permit also ends at its `validUntil` (the consent's period end). The figures are
printed (`pytest -s`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta

import pytest

from services.common.fhir_time import fhir_instant, now
from tests.conftest import Backend, System
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    sees_region_entries,
    withdrawal,
)
from tests.servers import ask_to_stop, serve, wait_until


@pytest.fixture
def replicas(backend: Backend) -> Iterator[tuple[System, list]]:
    """One consent service, two SIP instances on one database: the system (through the first
    instance) and the municipality's reader on each instance."""
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    with ExitStack() as stack:
        consent = consent_app(backend.settings("consent"))
        consent_url = stack.enter_context(serve(consent))
        apps = [sip_app(backend.settings("sip", consent_service_url=consent_url)) for _ in "ab"]
        urls = [stack.enter_context(serve(app)) for app in apps]
        system = System(urls[0], consent_url, backend.issuer)
        system.sip_app, system.consent_app, system.backend = apps[0], consent, backend
        token = system.token(organization=MUNICIPALITY)
        readers = [system.client(url, {"Authorization": f"Bearer {token}"}) for url in urls]
        yield system, readers
        system.close()
        ask_to_stop(*urls, consent_url)


def shared_plan(system: System, period: dict[str, str] | None = None) -> tuple[str, str]:
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    given = system.consent.post(
        "/fhir/Consent", json=consent(personnummer, period=period), headers=FHIR_JSON
    )
    assert given.status_code == 201, given.text
    activated = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activated.status_code == 200, activated.text
    return plan_id, given.json()["id"]


def both_read(readers: list, plan_id: str) -> None:
    """Each instance has the permit in its cache, and its feed is current."""
    for reader in readers:
        for _ in range(3):
            assert sees_region_entries(reader, plan_id)


def seconds_until_both_deny(readers: list, plan_id: str) -> float:
    """Monotonic time at which every instance has denied the plan (and keeps denying)."""
    denied_at: dict[int, float] = {}

    def all_denied() -> bool:
        for index, reader in enumerate(readers):
            if index in denied_at:
                continue
            if not sees_region_entries(reader, plan_id):
                denied_at[index] = time.monotonic()
        return len(denied_at) == len(readers)

    assert wait_until(all_denied, seconds=10, interval=0.005), "a replica still discloses"
    for reader in readers:
        assert not sees_region_entries(reader, plan_id)
    return max(denied_at.values())


ROUNDS = 3


@pytest.mark.latency
def test_a_withdrawal_stops_every_replica_within_a_second(replicas):
    system, readers = replicas
    latencies = []
    for _ in range(ROUNDS):
        plan_id, consent_id = shared_plan(system)
        both_read(readers, plan_id)
        withdrawn_at = time.monotonic()
        response = system.consent.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        )
        assert response.status_code == 200, response.text
        latencies.append(seconds_until_both_deny(readers, plan_id) - withdrawn_at)
    print(
        f"\n[{system.backend.name}] withdrawal to denial on both of 2 replicas: "
        + ", ".join(f"{latency:.3f} s" for latency in latencies)
    )
    assert max(latencies) < 1.0


def short_consent_only(system: System, seconds: float) -> tuple[str, datetime]:
    """An active plan whose only consent ends `seconds` from now: activated on an open-ended
    consent, which is then withdrawn, so that the setup does not eat into the short one."""
    plan_id, opening = shared_plan(system)
    personnummer = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["subject"]["identifier"]
    system.consent.post(f"/fhir/Consent/{opening}/$withdraw", json=withdrawal(), headers=FHIR_JSON)
    end = now() + timedelta(seconds=seconds)
    period = {"start": "2026-01-01", "end": fhir_instant(end)}
    given = system.consent.post(
        "/fhir/Consent", json=consent(personnummer["value"], period=period), headers=FHIR_JSON
    )
    assert given.status_code == 201, given.text
    return plan_id, end


@pytest.mark.latency
def test_an_expiry_stops_every_replica_within_a_second(replicas):
    system, readers = replicas
    latencies = []
    for _ in range(ROUNDS):
        plan_id, end = short_consent_only(system, seconds=2)
        both_read(readers, plan_id)
        assert now() < end, "the setup took longer than the consent lasted"
        denied = seconds_until_both_deny(readers, plan_id)
        # From the period's end (wall clock) to the moment both deny (monotonic): map one
        # onto the other through the present.
        latencies.append((now() - end).total_seconds() - (time.monotonic() - denied))
    print(
        f"\n[{system.backend.name}] consent period end to denial on both of 2 replicas: "
        + ", ".join(f"{latency:.3f} s" for latency in latencies)
    )
    assert max(latencies) < 1.0


class _Counting:
    """A consent service that permits until a fixed moment, counting how often it is asked."""

    def __init__(self, valid_until):
        self.asked, self.valid_until = 0, valid_until

    def check(self, request):
        from contracts.consent_decision import ConsentDecision

        self.asked += 1
        return ConsentDecision(
            decision="permit", reason="permitted", consents=("c1",), valid_until=self.valid_until
        )


def test_the_cache_drops_a_permit_at_its_valid_until_by_the_wall_clock():
    from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
    from services.sip.consent_gate import CachingConsentGate

    start = now().replace(microsecond=0)  # the wire carries milliseconds
    clock = [start]
    service = _Counting(start + timedelta(seconds=2))
    gate = CachingConsentGate(service, wall_clock=lambda: clock[0])
    gate.feed_reached()
    request = ConsentCheckRequest(
        patient_system="s", patient_value="v", actor="a", source="b", category="sip-plan"
    )
    gate.check(request), gate.check(request)
    assert service.asked == 1  # remembered
    clock[0] = start + timedelta(seconds=2)
    gate.check(request)
    assert service.asked == 2  # its moment came: asked again, and not remembered past it
    gate.check(request)
    assert service.asked == 3
    decision = ConsentDecision(
        decision="permit", reason="r", consents=("c1",), valid_until=service.valid_until
    )
    assert ConsentDecision.from_parameters(decision.to_parameters()) == decision


def test_a_permit_answered_across_a_forgetting_is_not_remembered():
    """The feed made the cache forget while the consent service was being asked: the answer
    may predate the withdrawal the feed saw, so it is used once and not remembered."""
    from contracts.consent_decision import ConsentCheckRequest
    from services.sip.consent_gate import CachingConsentGate

    service = _Counting(None)
    gate = CachingConsentGate(service)
    gate.feed_reached()
    asking = service.check

    def withdrawn_meanwhile(request):
        gate.forget_consent("c1")
        return asking(request)

    service.check = withdrawn_meanwhile
    request = ConsentCheckRequest(
        patient_system="s", patient_value="v", actor="a", source="b", category="sip-plan"
    )
    gate.check(request)
    service.check = asking
    gate.check(request)
    assert service.asked == 2
    gate.check(request)
    assert service.asked == 2  # remembered once nothing intervened
