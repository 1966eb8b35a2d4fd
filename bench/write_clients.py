"""Writes through the HTTP API with one client and with four: requests a second, side by side
in one run, on SQLite and PostgreSQL.

    python bench/write_clients.py [--plans 400] [--seconds 8] [--skip-postgres]

Seeds a fresh SIP system (bench/scaling.py's seed: draft plans of the region, through the
application layer), starts it as an operator does (`sip up`), and has 1 and then 4 keep-alive
clients, each a thread of its own, send `$record-need` as the region's coordinator for
`--seconds` each, every write on a plan of its own client's share (no client waits for
another's plan: what is measured is the sharing of the service and its database, not
optimistic-concurrency refusals). Each write is answered only once it is committed, its
access record and chain links with it, so the figures count durable writes.

The goal (issue 15): four clients faster than one, by sharing commits (group commit).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from postgres_db import POSTGRES, on_server
from scaling import FHIR_JSON, Running, seed

CLIENTS = (1, 4)


def write_for(client: httpx.Client, plans: list[str], until: float, latencies: list[float]) -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": "Stöd"}]}
    number = 0
    while time.perf_counter() < until:
        plan = plans[number % len(plans)]
        number += 1
        started = time.perf_counter()
        response = client.post(f"/CarePlan/{plan}/$record-need", json=body, headers=FHIR_JSON)
        if response.status_code != 200:
            raise SystemExit(f"{plan}: {response.status_code} {response.text[:300]}")
        latencies.append((time.perf_counter() - started) * 1000)


def throughput(running: Running, ids: list[str], clients: int, seconds: float) -> dict:
    """Writes a second and the p50 latency with `clients` clients writing at once."""
    shares = [ids[number::clients] for number in range(clients)]
    base = running.client
    connections = [
        httpx.Client(base_url=base.base_url, headers=base.headers, timeout=60)
        for _ in range(clients)
    ]
    for connection, share in zip(connections, shares, strict=True):  # warm: connect, cache
        write_for(connection, share[:2], time.perf_counter() + 0.5, [])
    latencies: list[list[float]] = [[] for _ in range(clients)]
    until = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=write_for, args=(connection, share, until, latency))
        for connection, share, latency in zip(connections, shares, latencies, strict=True)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    every = [value for latency in latencies for value in latency]
    return {"per_second": len(every) / elapsed, "p50": statistics.median(every)}


def measure(label: str, database_url: str | None, plans: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        ids = seed(data_dir, plans, database_url)
        # On PostgreSQL `sip up` trusts the development issuer only when told to (trials only).
        urls = {"SIP_DATABASE_URL": database_url, "SIP_DEV_ISSUER": "enabled"}
        running = Running(data_dir, urls if database_url else None)
        try:
            results = {}
            for clients in CLIENTS:
                results[clients] = throughput(running, ids, clients, seconds)
                print(
                    f"{label:>9} {clients:>8} {results[clients]['per_second']:>10.1f} "
                    f"{results[clients]['p50']:>8.2f}",
                    flush=True,
                )
            return results
        finally:
            running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=8.0, help="per number of clients")
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if not arguments.skip_postgres:
        backends.append(("postgres", POSTGRES))
    print(f"{'backend':>9} {'clients':>8} {'writes/s':>10} {'p50 ms':>8}")
    summary = []
    for label, server in backends:
        with on_server("bench_writes", server, create=False) as database_url:  # made by the seed
            results = measure(label, database_url, arguments.plans, arguments.seconds)
        ratio = results[CLIENTS[-1]]["per_second"] / results[CLIENTS[0]]["per_second"]
        summary.append(f"{label}: {CLIENTS[-1]} clients / {CLIENTS[0]} client = {ratio:.2f}x")
    print("\n".join(summary))


if __name__ == "__main__":
    sys.exit(main())
