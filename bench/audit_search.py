"""An auditor's AuditEvent search, paged in SQL (`AccessLogIndex.page`), against reading all
of the organisation's records into memory and slicing a page of them, as the search did.

    python bench/audit_search.py [--records 100000] [--postgres postgresql://postgres@127.0.0.1:5432/]

Seeds a scratch access-log table (SQLite in a temporary folder; PostgreSQL in a database made
and dropped for the run, if a URL is given) with records of one organisation over a year, then
times, 20 runs each, the first page of 50, a page deep in the log reached by its cursor, the
`patient` filter, and the whole read the old search made.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from postgres_db import scratch_database
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from services.common.access_log_views import AccessLogIndex, access_log, row_key

ORGANIZATION = "SE2321000032-BENCH"


def seed(engine: Engine, records: int) -> None:
    AccessLogIndex.create_scratch_tables(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "record_id": str(uuid.uuid4()),
            "recorded_at": start + timedelta(seconds=i * 300),
            "interaction": "read",
            "action": "R",
            "outcome": "0",
            "user_id": f"user-{i % 40}",
            "user_role": "coordinator",
            "organization": ORGANIZATION,
            "unit": ORGANIZATION,
            "custodian": ORGANIZATION,
            "patient_system": "http://electronichealth.se/identifier/personnummer",
            "patient_value": f"19800101{i % 5000:04d}",
            "entity": "CarePlan/x",
            "consents": "[]",
            "query": None,
            "detail": None,
        }
        for i in range(records)
    ]
    with engine.begin() as connection:
        for first in range(0, records, 5000):
            connection.execute(access_log.insert(), rows[first : first + 5000])


def timed(run: Callable[[], Any], times: int = 20) -> str:
    spent = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        spent.append((time.perf_counter() - began) * 1000)
    return f"median {statistics.median(spent):7.1f} ms, max {max(spent):7.1f} ms"


def measure(name: str, engine: Engine, records: int) -> None:
    seed(engine, records)
    # No event store and no key store here: the seeded rows hold the numbers in clear.
    index = AccessLogIndex(SimpleNamespace(mapper=None), engine)  # type: ignore[arg-type]
    index.catch_up = lambda stop=None: 0  # type: ignore[method-assign]  # no event store here
    deep = index.search(auditor_organization=ORGANIZATION, limit=records)[records * 9 // 10]
    person = [[{"patient_value": "198001010042"}]]
    print(f"{name}, {records} records of one organisation:")
    print("  first page of 50           ", timed(lambda: index.page(ORGANIZATION, [], {}, 50)))
    print(
        "  the same, _total=none      ",
        timed(lambda: index.page(ORGANIZATION, [], {}, 50, with_total=False)),
    )
    print(
        "  a page at 90 % by cursor   ",
        timed(lambda: index.page(ORGANIZATION, [], {"after": row_key(deep)}, 50)),
    )
    print("  one person's first page    ", timed(lambda: index.page(ORGANIZATION, person, {}, 50)))
    print(
        "  all read, as before (old)  ",
        timed(lambda: index.search(auditor_organization=ORGANIZATION, limit=records), 5),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--postgres", help="a server URL, e.g. postgresql://postgres@127.0.0.1:5432/"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'log.db'}")
        measure("SQLite", engine, arguments.records)
        engine.dispose()
    if arguments.postgres:
        with scratch_database("bench_audit", arguments.postgres) as url:
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            try:
                measure("PostgreSQL", engine, arguments.records)
            finally:
                engine.dispose()


if __name__ == "__main__":
    main()
