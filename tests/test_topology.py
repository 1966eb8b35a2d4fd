"""The production topology as an operator runs it (issue 19): two replicas of each service on
PostgreSQL, started at the same instant after `sip migrate` runs at the same instant, behind
Debian's nginx running the shipped `deploy/nginx.conf`. Checked, in order, on one topology:
every replica comes up; a write through nginx is read and found by search on each replica;
the same `If-Match` sent to both SIP replicas at once succeeds once; a withdrawal is denied
on both SIP replicas within a second (50 trials); a SIP replica killed with SIGKILL under
load loses no acknowledged write; the audit chain verifies and the read models equal a
rebuild. One test, so that pytest-xdist never sets the topology up twice. Figures are
printed (`pytest -s`). Beside it, without a database (it holds no data), the web client's
replicas behind the same nginx.conf share their users' sessions by WEB_SESSION_SECRET alone.

nginx missing is a skip, except under CI=true (where `.ci/run` installs it): a failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
import pytest

from services.cli import service_command
from services.common.auth.tokens import DevIssuer, default_scopes
from tests.balancer import nginx_binary, running_nginx
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    person,
    prepare_for_activation,
    run,
    sees_region_entries,
    withdrawal,
)
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

WITHDRAWAL_TRIALS = 50
CONFLICT_ROUNDS = 20
LOAD_SECONDS, WRITERS = 10.0, 4


@dataclass
class Topology:
    replicas: dict[str, list[Replica]]
    balanced: dict[str, str]  # each service's URL through nginx
    env: dict[str, str]
    issuer: DevIssuer

    def client(self, url: str, role: str = "coordinator", organization: str = REGION):
        token = self.issuer.mint(
            subject=f"{role}-1", role=role, organization=organization, scopes=default_scopes(role)
        )
        return http_client(url, headers={"Authorization": f"Bearer {token}"})


def _nginx_or_skip() -> None:
    if nginx_binary():
        return
    problem = "nginx is not installed (apt-get install nginx-light)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}; CI needs it for the topology test (.ci/run installs it)")
    pytest.skip(problem)


@pytest.fixture
def topology(postgres_pool, tmp_path: Path) -> Iterator[Topology]:
    _nginx_or_skip()
    urls = database_urls(f"sip_topology_{uuid.uuid4().hex[:8]}")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = environment(data_dir, urls)
    listen = {"sip": free_port(), "consent": free_port()}
    ports = {service: [free_port(), free_port()] for service in ("sip", "consent")}
    # The SIP replicas reach the consent service through the balancer, as in deploy/.
    env["CONSENT_SERVICE_URL"] = f"http://127.0.0.1:{listen['consent']}"
    replicas = {
        service: [Replica(service, port, env, tmp_path / f"{service}-{port}.log") for port in p]
        for service, p in ports.items()
    }
    everyone = [*replicas["consent"], *replicas["sip"]]
    try:
        with running_nginx(tmp_path / "nginx", listen, ports) as balanced:
            problems = migrate_at_once(env, runs=len(everyone))
            problems += start_together(everyone)
            assert not problems, problems  # 1. every replica comes up
            yield Topology(replicas, balanced, env, DevIssuer(data_dir))
    finally:
        for replica in everyone:
            replica.stop()
        drop_databases(urls)


def _new_plan(coordinator: httpx.Client) -> tuple[str, str]:
    personnummer = new_personnummer()
    created = coordinator.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    return created.json()["id"], personnummer


def _found(client: httpx.Client, plan_id: str, subject: str) -> bool:
    if client.get(f"/fhir/CarePlan/{plan_id}").status_code != 200:
        return False
    return client.get("/fhir/CarePlan", params={"subject:identifier": subject}).json()["total"] == 1


def check_read_after_write(topology: Topology, plans: int = 10) -> float:
    """A plan created through nginx is read, and found by search, on each SIP replica."""
    worst = 0.0
    with topology.client(topology.balanced["sip"]) as coordinator:
        direct = [topology.client(replica.url) for replica in topology.replicas["sip"]]
        for _ in range(plans):
            started = time.monotonic()
            plan_id, personnummer = _new_plan(coordinator)
            subject = f"{person(personnummer)['system']}|{personnummer}"
            for replica in direct:
                assert wait_until(
                    lambda r=replica, p=plan_id, s=subject: _found(r, p, s),
                    seconds=2,
                    interval=0.002,
                ), f"plan {plan_id} not found on {replica.base_url} within 2 s"
            worst = max(worst, time.monotonic() - started)
        for client in direct:
            client.close()
    assert worst < 1.0, f"read-after-write across replicas took {worst:.3f} s"
    return worst


def check_conflicting_writes(topology: Topology) -> dict[int, int]:
    """The same `If-Match` sent to both SIP replicas at the same instant: one succeeds, the
    other is refused as a conflict (409 when both passed the version check and the event
    store's unique key refused the second, 412 when the first had already saved)."""
    refusals: dict[int, int] = {}
    with topology.client(topology.balanced["sip"]) as coordinator:
        plan_id, _ = _new_plan(coordinator)
        direct = [topology.client(replica.url) for replica in topology.replicas["sip"]]
        for round_number in range(CONFLICT_ROUNDS):
            etag = coordinator.get(f"/fhir/CarePlan/{plan_id}").headers["ETag"]
            answers = at_once([
                lambda client=client, e=etag, n=f"need {round_number}-{index}": client.post(
                    f"/fhir/CarePlan/{plan_id}/$record-need",
                    json={"resourceType": "Parameters",
                          "parameter": [{"name": "text", "valueString": n}]},
                    headers={**FHIR_JSON, "If-Match": e},
                ).status_code
                for index, client in enumerate(direct)
            ])  # fmt: skip
            assert sorted(answers)[0] == 200 and sorted(answers)[1] in (409, 412), answers
            refusal = max(answers)
            refusals[refusal] = refusals.get(refusal, 0) + 1
        for client in direct:
            client.close()
    return refusals


def _shared_plan(sip: httpx.Client, consent_service: httpx.Client) -> tuple[str, str]:
    plan_id, personnummer = _new_plan(sip)
    prepare_for_activation(sip, plan_id)
    given = consent_service.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
    assert given.status_code == 201, given.text
    activated = sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activated.status_code == 200, activated.text
    return plan_id, given.json()["id"]


def _seconds_until_denied(
    readers: list[httpx.Client], plan_id: str, withdrawn_at: float, within: float
) -> float | None:
    """Seconds from the withdrawal until every reader was denied; None if not `within`."""
    denied_at: dict[int, float] = {}

    def all_denied() -> bool:
        for index, reader in enumerate(readers):
            if index not in denied_at and not sees_region_entries(reader, plan_id):
                denied_at[index] = time.monotonic()
        return len(denied_at) == len(readers)

    if not wait_until(all_denied, seconds=within, interval=0.005):
        return None
    return max(denied_at.values()) - withdrawn_at


def check_withdrawal_denied_on_both(topology: Topology) -> list[float]:
    """From sending a withdrawal (through nginx) to the moment both SIP replicas, read
    directly, no longer show the region's entries to the municipality."""
    sip = topology.client(topology.balanced["sip"])
    consent_service = topology.client(topology.balanced["consent"])
    readers = [topology.client(r.url, organization=MUNICIPALITY) for r in topology.replicas["sip"]]
    latencies, misses = [], 0
    for _ in range(WITHDRAWAL_TRIALS):
        plan_id, consent_id = _shared_plan(sip, consent_service)
        for reader in readers:  # each replica has the permit cached
            assert wait_until(lambda r=reader, p=plan_id: sees_region_entries(r, p), seconds=5)
            assert sees_region_entries(reader, plan_id)
        withdrawn_at = time.monotonic()
        response = consent_service.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        )
        assert response.status_code == 200, response.text
        denied = _seconds_until_denied(readers, plan_id, withdrawn_at, within=1.0)
        if denied is None:
            misses += 1
            denied = _seconds_until_denied(readers, plan_id, withdrawn_at, within=60)
            assert denied is not None, f"plan {plan_id} still disclosed after 60 s"
        for reader in readers:
            assert not sees_region_entries(reader, plan_id)  # and it stays denied
        latencies.append(denied)
    for client in (sip, consent_service, *readers):
        client.close()
    assert misses == 0 and max(latencies) < 1.0, (
        f"{misses} of {WITHDRAWAL_TRIALS} withdrawals not denied on both replicas within 1 s; "
        f"slowest {max(latencies):.3f} s"
    )
    return latencies


def check_kill_under_load(topology: Topology) -> dict[str, int]:
    """WRITERS clients record needs through nginx for LOAD_SECONDS; halfway one SIP replica
    gets SIGKILL and is started again. Every need acknowledged (2xx) is in its plan after."""
    victim = topology.replicas["sip"][0]
    with topology.client(topology.balanced["sip"]) as coordinator:
        plans = [_new_plan(coordinator)[0] for _ in range(WRITERS)]
    acknowledged: list[list[str]] = [[] for _ in plans]
    refused: list[int] = []
    stop = threading.Event()

    def write(index: int) -> None:
        with topology.client(topology.balanced["sip"]) as client:
            number = 0
            while not stop.is_set():
                text = f"need {index}-{number}"
                number += 1
                try:
                    response = run(client, plans[index], "record-need", text=text)
                except httpx.HTTPError:
                    refused.append(-1)
                    continue
                if response.is_success:
                    acknowledged[index].append(text)
                else:
                    refused.append(response.status_code)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in writers:
        thread.start()
    time.sleep(LOAD_SECONDS / 2)
    acknowledged_before_kill = sum(map(len, acknowledged))
    victim.process.kill()  # SIGKILL
    victim.process.wait(timeout=10)
    killed_at = time.monotonic()
    victim.readiness_seen.clear()
    victim.start()  # nginx sends it requests once it listens (open-source nginx has no
    # active checks). It is ready once the read models it shares are within the bound of the
    # log: under load, the access log's (caught up when queried) may be thousands behind.
    ready_after: list[float] = []
    watcher = threading.Thread(
        target=lambda: victim.ready(seconds=90) and ready_after.append(time.monotonic())
    )
    watcher.start()
    time.sleep(LOAD_SECONDS / 2)
    stop.set()
    for thread in [*writers, watcher]:
        thread.join(timeout=100)
    assert ready_after, f"the killed replica did not come back: {victim.output()}"
    back_after = ready_after[0] - killed_at
    total = sum(map(len, acknowledged))
    assert acknowledged_before_kill > 0 and total > acknowledged_before_kill, "no load"
    lost = []
    with topology.client(topology.balanced["sip"]) as reader:
        for plan_id, texts in zip(plans, acknowledged, strict=True):
            stored = reader.get(f"/fhir/CarePlan/{plan_id}").text
            lost += [text for text in texts if f'"{text}"' not in stored]
    assert not lost, f"{len(lost)} of {total} acknowledged writes lost: {lost[:5]}"
    return {
        "acknowledged": total,
        "refused or cut off": len(refused),
        "ready again after (s)": round(back_after, 1),
        "its /readyz before": victim.readiness_seen,
    }


def check_audit_and_rebuild(topology: Topology) -> None:
    for command in (["audit", "verify"], ["projections", "rebuild", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *command],
            env=topology.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"sip {' '.join(command)}: {done.stdout}{done.stderr}"


@pytest.mark.latency
@pytest.mark.postgres
@pytest.mark.processes
def test_two_replicas_of_each_service_behind_nginx(topology: Topology):
    started = time.monotonic()
    for replica in [*topology.replicas["sip"], *topology.replicas["consent"]]:
        assert httpx.get(f"{replica.url}/readyz").status_code == 200
    for url in topology.balanced.values():
        assert httpx.get(f"{url}/readyz").status_code == 200
    read_after_write = check_read_after_write(topology)
    refusals = check_conflicting_writes(topology)
    latencies = check_withdrawal_denied_on_both(topology)
    load = check_kill_under_load(topology)
    check_audit_and_rebuild(topology)
    print(
        f"\n[topology] read-after-write on both SIP replicas: slowest {read_after_write:.3f} s"
        f"\n[topology] same If-Match on both SIP replicas, {CONFLICT_ROUNDS} rounds: one 200"
        f" each, refusals {refusals}"
        f"\n[topology] withdrawal to denial on both SIP replicas, {len(latencies)} trials:"
        f" p50 {median(latencies):.3f} s, max {max(latencies):.3f} s, 0 misses"
        f"\n[topology] SIGKILL of a SIP replica under load: {load}, none lost"
        f"\n[topology] checks took {time.monotonic() - started:.1f} s"
    )


def _web_replica(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            service_command("services.web.app", "127.0.0.1", port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _goes_to(client: httpx.Client, base_url: str, session: str) -> str:
    """Where the start page sends this session: /worklist when signed in, else /signin."""
    answer = client.get(f"{base_url}/", headers={"Cookie": f"sip_session={session}"})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


@pytest.mark.processes
def test_web_client_replicas_behind_nginx_share_sessions_by_their_secret(tmp_path: Path):
    """Two web client replicas behind the shipped nginx.conf's web server, each with a key
    directory of its own and the one WEB_SESSION_SECRET: a sign-in form from one replica is
    taken by the other, and the session is known on both and through nginx; a replica with
    another secret (the secret rotated) sends the same user to sign in."""
    _nginx_or_skip()
    web = [free_port(), free_port(), free_port()]  # the third has another secret
    listen = {"sip": free_port(), "consent": free_port(), "web": free_port()}
    unused = {service: [free_port(), free_port()] for service in ("sip", "consent")}
    processes = []
    try:
        for index, port in enumerate(web):
            env = {
                **os.environ,
                "SIP_DEV_ISSUER": "enabled",  # the development sign-in, to have a session
                "SIP_DATA_DIR": str(tmp_path / f"web-{port}"),
                "WEB_SESSION_SECRET": "shared-" * 8 if index < 2 else "rotated-" * 8,
                "WEB_PUBLIC_URL": f"http://127.0.0.1:{listen['web']}",
                "SIP_SERVICE_URL": f"http://127.0.0.1:{listen['sip']}",
                "CONSENT_SERVICE_URL": f"http://127.0.0.1:{listen['consent']}",
            }
            processes.append(_web_replica(port, env, tmp_path / f"web-{port}.log"))
        urls = [f"http://127.0.0.1:{port}" for port in web]
        for url, process in zip(urls, processes, strict=True):
            assert wait_until(
                lambda u=url: httpx.get(f"{u}/healthz").status_code == 200, seconds=30
            ), f"web replica {url} did not come up (exit {process.poll()})"
        replicas = {**unused, "web": web[:2]}
        with (
            running_nginx(tmp_path / "nginx", listen, replicas) as balanced,
            httpx.Client(timeout=10) as client,
        ):
            form = client.get(f"{urls[0]}/signin")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            signed_in = client.post(
                f"{urls[1]}/signin/dev",
                data={"csrf_token": token, "user": "region-coordinator"},
                headers={"Cookie": f"sip_session={form.cookies['sip_session']}"},
            )
            assert signed_in.status_code == 303, signed_in.text
            assert signed_in.headers["location"] == "/worklist"
            session = signed_in.cookies["sip_session"]
            for url in urls[:2]:
                assert _goes_to(client, url, session) == "/worklist"
            for _ in range(4):  # round robin: each replica, twice, through nginx
                assert _goes_to(client, balanced["web"], session) == "/worklist"
            healthz = client.get(f"{balanced['web']}/healthz")
            assert healthz.status_code == 200 and healthz.headers["cache-control"] == "no-store"
            assert _goes_to(client, urls[2], session) == "/signin"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
