"""`--workers 2`: each service runs two server processes on one port and one database, on
SQLite (one file in WAL mode) and on PostgreSQL. The kernel hands each connection to one of
them; the test finds which from /proc (the worker holding the connection's server end) and
keeps a client on each. Through the two workers: writes through both reach one log and each
worker reads the other's; a write on a version the other worker has moved past is refused
(412, or 409 when both passed the version check at once); a consent withdrawn through the
consent service stops disclosure on both workers within a second; a subscription is
delivered once."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from contracts.subscription_topics import PLAN_CHANGED
from services.common.auth.tokens import DevIssuer, default_scopes
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    created_or_ok,
    new_personnummer,
    run,
    sees_region_entries,
    whole_feed,
    withdrawal,
)
from tests.record_system import RecordSystem, numbered, subscribe, subscription
from tests.replicas import (
    Replica,
    at_once,
    database_urls,
    drop_databases,
    environment,
    migrate_at_once,
    start_together,
)
from tests.servers import free_port, http_client, wait_until
from tests.test_topology import _seconds_until_denied, _shared_plan

pytestmark = [
    pytest.mark.processes,
    pytest.mark.latency,  # a withdrawal acts within a second
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]
WORKERS = 2
WITHDRAWAL_TRIALS = 5
CONFLICT_ROUNDS = 10


def _children(parent: int) -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.add(int(entry))
    return children


def _peer_ports(replica: Replica) -> dict[int, set[int]]:
    """Each worker process of the replica: the client ports of its open connections."""
    sockets: dict[str, int] = {}  # socket inode -> client port, of connections to the replica
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, remote_port = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if local_port == replica.port and fields[3] == "01":  # established
                sockets[fields[9]] = remote_port
    ports: dict[int, set[int]] = {}
    for pid in _children(replica.process.pid):
        ports[pid] = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in sockets:
                    ports[pid].add(sockets[target[8:-1]])
        except OSError:
            continue
    return ports


def _local_port(client: httpx.Client) -> int:
    """The client's own port on its one kept-alive connection (httpx keeps no public name)."""
    (connection,) = client._transport._pool.connections  # type: ignore[attr-defined]
    stream = connection._connection._network_stream
    return stream.get_extra_info("socket").getsockname()[1]


def worker_of(client: httpx.Client, replica: Replica) -> int:
    """The worker process that answered the client's last request (on a kept connection)."""
    port = _local_port(client)
    (pid,) = [pid for pid, ports in _peer_ports(replica).items() if port in ports]
    return pid


def one_client_per_worker(replica: Replica, make) -> dict[int, httpx.Client]:
    """New clients until each worker holds the connection of one; {worker: client}."""
    pinned: dict[int, httpx.Client] = {}
    for _ in range(60):
        client = make()
        assert client.get("/healthz").status_code == 200
        pid = worker_of(client, replica)
        if pid in pinned:
            client.close()
        else:
            pinned[pid] = client
        if len(pinned) == WORKERS:
            return pinned
    raise AssertionError(f"60 connections reached only the workers {sorted(pinned)}")


class Workers:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.issuer = DevIssuer(tmp_path)
        consent_port = free_port()
        env["CONSENT_SERVICE_URL"] = f"http://127.0.0.1:{consent_port}"
        self.consent = Replica("consent", consent_port, env, tmp_path / "consent.log")
        self.sip = Replica("sip", free_port(), env, tmp_path / "sip.log")
        self.consent.workers = self.sip.workers = WORKERS
        self.env = env

    def client(self, url: str, role: str = "coordinator", organization: str = REGION):
        token = self.issuer.mint(
            subject=f"{role}-{organization}", role=role, organization=organization,
            scopes=default_scopes(role),
        )  # fmt: skip
        return http_client(url, headers={"Authorization": f"Bearer {token}"})

    def pinned(self, role: str = "coordinator", organization: str = REGION):
        return one_client_per_worker(
            self.sip, lambda: self.client(self.sip.url, role, organization)
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def workers(request, tmp_path):
    urls: dict[str, str] = {}
    if request.param == "postgres":
        request.getfixturevalue("postgres_pool")
        urls = database_urls(f"sip_workers_{uuid.uuid4().hex[:8]}")
        env = environment(tmp_path, urls)
    else:
        env = {**os.environ, "SIP_DATA_DIR": str(tmp_path), "SIP_DEV_ISSUER": "enabled"}
        env.pop("SIP_DATABASE_URL", None)
        env.pop("CONSENT_DATABASE_URL", None)
    env["SIP_SUBSCRIPTION_ENDPOINTS"] = "loopback"
    system = Workers(tmp_path, env)
    try:
        assert not migrate_at_once(env, runs=1)
        assert not start_together([system.consent])
        assert not start_together([system.sip])
        yield system
    finally:
        system.sip.stop()
        system.consent.stop()
        if urls:
            drop_databases(urls)


def test_writes_through_both_workers_reach_one_log(workers):
    coordinators = workers.pinned()
    (first, a), (second, b) = coordinators.items()
    plans = {}
    for pid, client, other in ((first, a, b), (second, b, a)):
        personnummer = new_personnummer()
        plan_id = created_or_ok(
            client.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
        )["id"]
        created_or_ok(run(client, plan_id, "record-need", text=f"Behov via {pid}"))
        assert worker_of(client, workers.sip) == pid
        plans[plan_id] = pid
        read = other.get(f"/fhir/CarePlan/{plan_id}")  # the other worker reads it at once
        assert read.status_code == 200 and f"Behov via {pid}" in read.text, read.text
        assert read.headers["ETag"] == 'W/"2"'
        # Each worker's read models catch up with the other's writes (search by the person).
        subject = f"{PERSONNUMMER_SYSTEM}|{personnummer}"
        for reader in (client, other):
            assert wait_until(
                lambda r=reader, s=subject: (
                    r.get("/fhir/CarePlan", params={"subject:identifier": s}).json()["total"] == 1
                ),
                seconds=2,
            ), f"plan {plan_id} not found by search through {reader}"
    systems = workers.pinned(role="integration")  # the feed is for systems and auditors
    for client in systems.values():
        events, _ = whole_feed(client, type="Plan")
        positions = [e["position"] for e in events]
        assert positions == sorted(set(positions))  # one log: one sequence, no repeats
        written = Counter(e["aggregate_id"] for e in events if e["aggregate_id"] in plans)
        assert written == {plan_id: 2 for plan_id in plans}, written
    for client in (a, b, *systems.values()):
        client.close()


def test_a_stale_write_through_the_other_worker_is_refused(workers):
    (first, a), (second, b) = workers.pinned().items()
    plan_id = created_or_ok(
        a.post("/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON)
    )["id"]
    etag = b.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"]  # b's worker keeps version 1
    moved = a.post(
        f"/fhir/CarePlan/{plan_id}/$record-need",
        json={"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "a"}]},
        headers={**FHIR_JSON, "If-Match": etag},
    )
    assert moved.status_code == 200, moved.text
    stale = b.post(
        f"/fhir/CarePlan/{plan_id}/$record-need",
        json={"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "b"}]},
        headers={**FHIR_JSON, "If-Match": etag},
    )
    assert stale.status_code == 412, stale.text
    assert [worker_of(a, workers.sip), worker_of(b, workers.sip)] == [first, second]
    assert b.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"] == 'W/"2"'
    # The same version sent through both at the same instant: one succeeds, once.
    for round_number in range(CONFLICT_ROUNDS):
        etag = a.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"]
        answers = at_once([
            lambda client=client, e=etag, n=f"need {round_number}-{index}": client.post(
                f"/fhir/CarePlan/{plan_id}/$record-need",
                json={"resourceType": "Parameters",
                      "parameter": [{"name": "text", "valueString": n}]},
                headers={**FHIR_JSON, "If-Match": e},
            ).status_code
            for index, client in enumerate((a, b))
        ])  # fmt: skip
        assert sorted(answers)[0] == 200 and sorted(answers)[1] in (409, 412), answers
    assert a.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"] == f'W/"{2 + CONFLICT_ROUNDS}"'
    for client in (a, b):
        client.close()


def test_a_withdrawal_stops_disclosure_on_every_worker_within_a_second(workers):
    sip = workers.client(workers.sip.url)
    consents = workers.client(workers.consent.url)
    readers = workers.pinned(role="coordinator", organization=MUNICIPALITY)
    latencies = []
    for _ in range(WITHDRAWAL_TRIALS):
        plan_id, consent_id = _shared_plan(sip, consents)
        for reader in readers.values():  # each worker has the permit cached
            assert wait_until(lambda r=reader, p=plan_id: sees_region_entries(r, p), seconds=5)
        withdrawn_at = time.monotonic()
        response = consents.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        )
        assert response.status_code == 200, response.text
        denied = _seconds_until_denied(list(readers.values()), plan_id, withdrawn_at, within=1.0)
        assert denied is not None, f"plan {plan_id} still disclosed by a worker after 1 s"
        assert {worker_of(r, workers.sip) for r in readers.values()} == set(readers)
        latencies.append(denied)
    print(f"\n[workers] withdrawal to denial on both workers: max {max(latencies):.3f} s")
    for client in (sip, consents, *readers.values()):
        client.close()


def test_each_notification_is_delivered_once_by_the_two_workers(workers):
    receiver = RecordSystem()
    try:
        (_, a), (_, b) = workers.pinned().items()
        record_systems = workers.pinned(role="integration")
        ids = [
            subscribe(
                list(record_systems.values())[i % 2], subscription(PLAN_CHANGED, receiver.url)
            )
            for i in range(4)
        ]
        changes = 0
        for i in range(6):  # writes through both workers, interleaved
            client = (a, b)[i % 2]
            plan_id = created_or_ok(
                client.post("/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON)
            )["id"]
            created_or_ok(run((a, b)[(i + 1) % 2], plan_id, "record-need", text=f"Behov {i}"))
            changes += 2
        reader = next(iter(record_systems.values()))
        for subscription_id in ids:
            assert wait_until(
                lambda s=subscription_id: (
                    numbered(reader, s) >= changes and len(receiver.events(s)) >= changes
                ),
                seconds=30,
            ), (numbered(reader, subscription_id), len(receiver.events(subscription_id)))
        told = Counter((e.subscription, e.number) for e in receiver.events())
        assert set(told.values()) == {1}, "a notification delivered twice"
        assert len(told) == len(ids) * changes
        for client in (a, b, *record_systems.values()):
            client.close()
    finally:
        receiver.close()
