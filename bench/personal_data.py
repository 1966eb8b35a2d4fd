"""The cost of sealing personal fields (docs/decisions/0007, issue 16): the SIP service with
and without its events' personal fields encrypted, on the same workload, in one run.

    python bench/personal_data.py [--plans N] [--rounds N]

Writes: the SIP application's commands as requests make them (bench/rebuild.py's workload:
each plan started, six more requests and activated, each with its access record), on the
service's own SQLite store as `sip up` opens it. Rebuild: every read model rebuilt from zero
(`sip projections rebuild`: the plan index and the access-log index), by a fresh application
and, encrypted, a fresh key store (nothing kept in memory), as the command runs in a new
process. Plain and encrypted alternate, round after round, and the medians are compared: on
a shared machine a burst of load hits one round, not the other side's. Prints commands/s,
rebuilt events/s and the encrypted/plain time ratio of each (goal: under 1.15).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rebuild import write_workload  # bench/rebuild.py, beside this file

from services.common.migrations.runner import migrate_service
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MasterKey, MasterKeys
from services.ops.offline import SERVICES

REQUESTS_PER_PLAN = 7  # started, six steps, activated (write_workload)


def measure(encrypted: bool, plans: int) -> tuple[float, float, int, float, float]:
    """Seconds writing, seconds rebuilding, events, and the process's CPU seconds of each
    (less swayed by the other processes of a loaded machine than the wall clock)."""
    application_class, projection_classes = SERVICES["sip"]
    master = MasterKeys(MasterKey.generate())
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        migrate_service("sip", None, data_dir)
        storage = storage_for("sip", None, data_dir)
        engine = read_model_engine(storage)
        try:

            def application():  # type: ignore[no-untyped-def]
                keys = PersonalDataKeys(engine, master) if encrypted else None
                return application_class(env=storage.event_store_env, personal_data=keys)

            writer = application()
            started, cpu = time.perf_counter(), time.process_time()
            write_workload(writer, plans)
            writes, writes_cpu = time.perf_counter() - started, time.process_time() - cpu
            events = writer.recorder.max_notification_id() or 0
            writer.close()
            reader = application()
            projections = [kind(reader, engine) for kind in projection_classes]
            started, cpu = time.perf_counter(), time.process_time()
            for projection in projections:
                projection.rebuild()
            rebuild, rebuild_cpu = time.perf_counter() - started, time.process_time() - cpu
            reader.close()
            return writes, rebuild, events, writes_cpu, rebuild_cpu
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    results: dict[str, list[tuple[float, float, int, float, float]]]
    results = {"plain": [], "encrypted": []}
    for round_number in range(arguments.rounds):
        # Alternated, and which side goes first alternates too (a warm disk cache, a burst).
        order = ("plain", "encrypted") if round_number % 2 == 0 else ("encrypted", "plain")
        for name in order:
            results[name].append(measure(name == "encrypted", arguments.plans))
    medians = {}
    for name, runs in results.items():
        writes = statistics.median(run[0] for run in runs)
        rebuild = statistics.median(run[1] for run in runs)
        events = runs[0][2]
        medians[name] = writes, rebuild
        print(
            f"{name:9} {arguments.plans * REQUESTS_PER_PLAN / writes:8.0f} commands/s"
            f"  {events / rebuild:8.0f} events rebuilt/s ({events} events)"
        )
    (plain_w, plain_r), (enc_w, enc_r) = medians["plain"], medians["encrypted"]
    # Per round too: the spread shows how much of a ratio the machine's load is.
    pairs = list(zip(results["plain"], results["encrypted"], strict=True))
    ratios_w = sorted(e[0] / p[0] for p, e in pairs)
    ratios_r = sorted(e[1] / p[1] for p, e in pairs)
    print(
        f"encrypted/plain time ({arguments.rounds} rounds, medians): "
        f"writes {enc_w / plain_w:.2f}, rebuild {enc_r / plain_r:.2f}"
    )
    cpu = {
        name: [statistics.median(run[i] for run in runs) for i in (3, 4)]
        for name, runs in results.items()
    }
    print(
        f"  CPU time, medians: writes {cpu['encrypted'][0] / cpu['plain'][0]:.2f}, "
        f"rebuild {cpu['encrypted'][1] / cpu['plain'][1]:.2f}"
    )
    print(
        f"  per round: writes {ratios_w[0]:.2f} to {ratios_w[-1]:.2f}, "
        f"rebuild {ratios_r[0]:.2f} to {ratios_r[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
