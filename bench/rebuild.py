"""Rebuild and verify rates, SQLite and PostgreSQL side by side in one run.

    python bench/rebuild.py [--plans N] [--skip-postgres]

Writes a SIP workload straight through the application (each plan drawn up over seven
requests and activated, with the access records each request writes), then measures in
events/s: rebuilding every read model from zero (`sip projections rebuild`), and
recomputing the hash chain (`sip audit verify`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from postgres_db import postgres_reachable, scratch_database

from contracts.consent_decision import ConsentDecision
from contracts.identifiers import PERSONNUMMER_SYSTEM, with_check_digit
from services.common.access_log import WriteContext, writing
from services.common.migrations.runner import migrate_service
from services.ops.offline import open_service
from services.ops.verify import database_links, verify_links

REGION, MUNICIPALITY = "SE2321000032-R1", "SE2120000357-K1"
ACTOR = {"subject": "bench", "role": "coordinator", "organization": REGION, "unit": None}


class PermitAll:
    def check(self, request):
        return ConsentDecision(decision="permit", reason="bench", consents=(str(uuid.uuid4()),))


def write_workload(application, plans: int, first: int = 0) -> None:
    """Each plan as a coordinator draws it up: started, the municipality invited, a need, an
    intervention, overall responsibility, a follow-up date, activated; one request each. The
    plans are of persons number `first` on (a thousand persons, then again from the first)."""
    now = datetime.now(UTC)
    intervention = {
        "text": "Hemtjänst", "kind": "support", "need_ids": ["need-1"], "goal_ids": [],
        "performer_organization": MUNICIPALITY, "performer_unit": None,
        "performer_participant": None, "responsible_principal": "municipality",
        "responsible_organization": MUNICIPALITY, "start": None, "end": None,
    }  # fmt: skip
    steps = [
        lambda plan: plan.invite_organization(
            hsa_id=MUNICIPALITY, kind="municipality", name=None, at=now, by=ACTOR
        ),
        lambda plan: plan.record_need(text="Jag vill bo hemma", wishes=None, at=now, by=ACTOR),
        lambda plan: plan.assign_intervention(intervention=intervention, at=now, by=ACTOR),
        lambda plan: plan.assign_overall_responsibility(
            organization=REGION, reason=None, at=now, by=ACTOR
        ),
        lambda plan: plan.set_follow_up(follow_up_date=date(2027, 3, 1), at=now, by=ACTOR),
    ]
    for number in range(first, first + plans):
        personnummer = with_check_digit(f"19800101{number % 1000:03d}")
        with writing(WriteContext(ACTOR, "create", "CarePlan", now)):
            plan = application.start(
                subject={"system": PERSONNUMMER_SYSTEM, "value": personnummer},
                starting_organization=REGION, starting_organization_kind="region",
                initiative="region-unit", title="SIP", description=None,
                started_at=now, started_by=ACTOR,
            )  # fmt: skip
        for step in steps:
            with writing(WriteContext(ACTOR, "operation", "CarePlan", now)):
                application.change(plan.id, step)
        with writing(WriteContext(ACTOR, "operation", "CarePlan", now, detail="activate")):
            application.activate(plan.id, consent_gate=PermitAll(), at=now, by=ACTOR)


def measure(label: str, data_dir: Path, database_url: str | None, plans: int) -> list[str]:
    migrate_service("sip", database_url, data_dir)
    with open_service("sip", data_dir, database_url) as service:
        write_workload(service.application, plans)
        events = service.application.recorder.max_notification_id() or 0
        rates = []
        for projection in service.projections():
            started = time.perf_counter()
            projection.rebuild()
            rates.append(events / (time.perf_counter() - started))
        recorder = service.application.recorder
        started = time.perf_counter()
        result = verify_links(
            database_links(service.engine, recorder.events_table_name, recorder.chain_table)
        )
        verify_rate = result.events / (time.perf_counter() - started)
        assert result.intact
        rebuild_rate = events / sum(events / rate for rate in rates)
        return [label, f"{events:,}", f"{rebuild_rate:,.0f}", f"{verify_rate:,.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=400)
    parser.add_argument("--skip-postgres", action="store_true")
    arguments = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows.append(measure("sqlite", Path(folder), None, arguments.plans))
        if not arguments.skip_postgres and postgres_reachable():
            with scratch_database("bench_rebuild", create=False) as url:
                rows.append(measure("postgres", Path(folder), url, arguments.plans))
    header = ["backend", "events", "rebuild events/s", "verify events/s"]
    print("  ".join(f"{h:>18}" for h in header))
    for row in rows:
        print("  ".join(f"{cell:>18}" for cell in row))
    if len(rows) == 2:
        sqlite_rate, postgres_rate = (float(r[2].replace(",", "")) for r in rows)
        sqlite_verify, postgres_verify = (float(r[3].replace(",", "")) for r in rows)
        print(f"sqlite/postgres: rebuild {sqlite_rate / postgres_rate:.2f}x, "
              f"verify {sqlite_verify / postgres_verify:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
