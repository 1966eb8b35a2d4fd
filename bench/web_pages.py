"""The web client's page response times on the demo data, beside the FHIR calls each page
makes, measured in one run:

    python bench/web_pages.py [--requests 60]

It starts `sip up --demo` as a newcomer does (SQLite, three processes), signs in each demo
user through the development sign-in, and asks each main screen `--requests` times, one at a
time from a keep-alive client, after a few warm-up requests. Beside each page it times the
FHIR requests that page makes, sent straight to the services one after another with the same
user's token: the ratio is what rendering, the session and the extra hop cost. Every read is
written to the access log before it is answered, in both columns.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.common.auth.tokens import DevIssuer
from services.common.demo_identities import DEMO_USERS, MUNICIPALITY, PEOPLE, REGION

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Demo:
    def __init__(self, data_dir: Path) -> None:
        self.ports = {name: free_port() for name in ("SIP_PORT", "CONSENT_PORT", "WEB_PORT")}
        env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}}
        for variable in ("SIP_DATABASE_URL", "CONSENT_DATABASE_URL"):
            env.pop(variable, None)
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo", "--data-dir", str(data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        while not any("Press Ctrl-C" in line for line in self.lines):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("sip up did not start:\n" + "".join(self.lines))
            time.sleep(0.1)
        self.plans = {
            m.group(1): m.group(2)
            for line in self.lines
            if (m := re.search(r"demo: (.+?): CarePlan/([0-9a-f-]+)", line))
        }

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def signed_in(demo: Demo, user_key: str) -> httpx.Client:
    client = httpx.Client(base_url=demo.url("WEB_PORT"), follow_redirects=True, timeout=30)
    page = client.get("/signin")
    client.post(
        "/signin/dev", data={"csrf_token": CSRF.search(page.text).group(1), "user": user_key}
    ).raise_for_status()
    return client


def api_client(demo: Demo, user_key: str) -> httpx.Client:
    user = next(u for u in DEMO_USERS if u.key == user_key)
    token = user.token(DevIssuer(demo.data_dir))
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)


def timed(call: Callable[[], httpx.Response], requests: int) -> list[float]:
    for _ in range(3):
        call().raise_for_status()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call().raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def screens(demo: Demo) -> list[tuple[str, str, Callable, Callable]]:
    """(screen, user, the page, the FHIR calls it makes)."""
    active = demo.plans[PEOPLE[0].name]
    sip, consent = f"{demo.url('SIP_PORT')}/fhir", f"{demo.url('CONSENT_PORT')}/fhir"
    person = f"{PERSONNUMMER_SYSTEM}|{PEOPLE[0].personnummer}"

    def plan_reads(api: httpx.Client) -> httpx.Response:
        plan = api.get(f"{sip}/CarePlan/{active}")
        api.get(f"{sip}/CareTeam/{active}-team")
        for goal in plan.json().get("goal", []):
            api.get(f"{sip}/{goal['reference']}")
        return plan

    def find(api: httpx.Client) -> httpx.Response:
        api.post(f"{consent}/Consent/_search", data={"patient:identifier": person})
        return api.post(f"{sip}/CarePlan/_search", data={"subject:identifier": person})

    def timeline(api: httpx.Client) -> httpx.Response:
        api.get(f"{sip}/Provenance", params={"target": f"CarePlan/{active}"})
        return api.get(f"{sip}/CarePlan/{active}/_history")

    def worklist(organization: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda api: api.post(
            f"{sip}/CarePlan/_search", data={"care-team-organization": organization}
        )

    def mine(api: httpx.Client) -> httpx.Response:
        return api.post(f"{sip}/CarePlan/_search", data={"subject:identifier": person})

    def consents(api: httpx.Client) -> httpx.Response:
        return api.post(f"{consent}/Consent/_search", data={"patient:identifier": person})

    return [
        ("worklist", "region-coordinator", lambda w: w.get("/worklist"), worklist(REGION)),
        (
            "worklist (municipality)",
            "municipality-coordinator",
            lambda w: w.get("/worklist"),
            worklist(MUNICIPALITY),
        ),
        ("plan", "region-coordinator", lambda w: w.get(f"/plans/{active}"), plan_reads),
        (
            "printable plan",
            "region-coordinator",
            lambda w: w.get(f"/plans/{active}/print"),
            plan_reads,
        ),
        ("timeline", "region-auditor", lambda w: w.get(f"/plans/{active}/timeline"), timeline),
        (
            "find a person",
            "region-coordinator",
            lambda w: w.post(
                "/find",
                data={
                    "csrf_token": CSRF.search(w.get("/find").text).group(1),
                    "personnummer": PEOPLE[0].personnummer,
                },
            ),
            find,
        ),
        ("my plans", "person", lambda w: w.get("/me"), mine),
        ("my plan", "person", lambda w: w.get(f"/me/plans/{active}"), plan_reads),
        ("my consents", "person", lambda w: w.get("/me/consents"), consents),
    ]


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--requests", type=int, default=60)
    requests = arguments.parse_args().requests
    with tempfile.TemporaryDirectory() as folder:
        demo = Demo(Path(folder) / "data")
        try:
            print(
                f"{'screen':26} {'page p50':>9} {'p95':>7} {'FHIR p50':>9} {'p95':>7} {'ratio':>6}"
            )
            for name, user, page, calls in screens(demo):
                web, api = signed_in(demo, user), api_client(demo, user)
                pages = timed(lambda page=page, web=web: page(web), requests)
                fhir = timed(lambda calls=calls, api=api: calls(api), requests)
                print(
                    f"{name:26} {percentile(pages, 0.5):8.1f}ms {percentile(pages, 0.95):6.1f}ms"
                    f" {percentile(fhir, 0.5):8.1f}ms {percentile(fhir, 0.95):6.1f}ms"
                    f" {statistics.median(pages) / statistics.median(fhir):5.2f}x"
                )
                web.close()
                api.close()
        finally:
            demo.stop()
    print(f"({requests} requests per screen and column, one at a time, SQLite, after 3 warm-ups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
