"""The cost of sealing personal fields (docs/decisions/0007): the SIP application's own event
store with and without the personal-data mapper, on the same workload, in one run.

    python bench/personal_data.py [--plans N]

Writes: per plan one `start` and three `record_need`, each its own save as a request makes
it. Replay: every plan rebuilt from its events by a fresh application (nothing kept in
memory), as a read-model rebuild or a restart reads them. SQLite in a temporary folder.
Prints commands/s, plans replayed/s and the encrypted/plain time ratio of each (medians
of alternated rounds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from contracts.identifiers import PERSONNUMMER_SYSTEM, with_check_digit
from contracts.personal_fields import PERSONAL_FIELDS
from services.common.migrations.runner import migrate_service
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.mapper import PersonalDataMapper
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.sip.application import SipPlans

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
BORN = date(1980, 1, 1)
BY = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}


def encrypted(keys: PersonalDataKeys) -> type[SipPlans]:
    class EncryptedPlans(SipPlans):
        def construct_mapper(self):  # type: ignore[no-untyped-def]
            return PersonalDataMapper(
                self.construct_transcoder(), keys, PERSONAL_FIELDS, self._first_event
            )

        def _first_event(self, stream):  # type: ignore[no-untyped-def]
            events = self.recorder.select_events(stream, lte=1, limit=1)
            return events[0] if events else None

    return EncryptedPlans


def workload(app_class: type[SipPlans], env: dict[str, str], plans: int) -> tuple[float, float]:
    app = app_class(env=env)
    ids = []
    started = time.perf_counter()
    for number in range(plans):
        plan = app.start(
            subject={
                "system": PERSONNUMMER_SYSTEM,
                "value": with_check_digit(
                    f"{BORN + timedelta(days=number // 900):%Y%m%d}{100 + number % 900:03d}"
                ),
            },
            starting_organization="SE2321000032-R1",
            starting_organization_kind="region",
            initiative="region-unit",
            title=f"Samordnad plan {number}",
            description="Plan för stöd i hemmet efter utskrivning",
            started_at=NOW,
            started_by=BY,
        )
        for need in range(3):
            text = f"Behov {need}: vill bo kvar hemma med hemtjänst"
            app.change(plan.id, lambda p, t=text: p.record_need(text=t, wishes=None, at=NOW, by=BY))
        ids.append(plan.id)
    writes = time.perf_counter() - started
    app.close()
    fresh = app_class(env={**env, "AGGREGATE_CACHE_MAXSIZE": "0"})
    started = time.perf_counter()
    for plan_id in ids:
        fresh.repository.get(plan_id)
    replay = time.perf_counter() - started
    fresh.close()
    return writes, replay


def measure(name: str, plans: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        migrate_service("sip", None, data_dir)
        storage = storage_for("sip", None, data_dir)
        engine = read_model_engine(storage)
        try:
            app_class = (
                SipPlans
                if name == "plain"
                else encrypted(PersonalDataKeys(engine, MasterKeys(MasterKey.generate())))
            )
            return workload(app_class, storage.event_store_env, plans)
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    # Alternated rounds, medians: on a shared machine a burst of load hits one run, not both.
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "encrypted": []}
    for _ in range(arguments.rounds):
        for name in results:
            results[name].append(measure(name, arguments.plans))
    medians = {}
    for name, runs in results.items():
        writes = statistics.median(run[0] for run in runs)
        replay = statistics.median(run[1] for run in runs)
        medians[name] = writes, replay
        print(
            f"{name:9} {arguments.plans * 4 / writes:8.0f} commands/s"
            f"  {arguments.plans / replay:8.0f} plans replayed/s"
        )
    (plain_w, plain_r), (enc_w, enc_r) = medians["plain"], medians["encrypted"]
    print(f"encrypted/plain time: writes {enc_w / plain_w:.2f}, replay {enc_r / plain_r:.2f}")


if __name__ == "__main__":
    main()
