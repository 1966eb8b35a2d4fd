"""`sip retention plan|run`: erasing what the retention rules say is due (issue 16,
docs/decisions/0007).

Each person has a data key per retention class; their data of that class is due for erasure
when the class's period (personal_data/retention.py), counted from the last entry about them
under that key, has passed. The last entry is the newest event of any record (plan, stay,
consent) with a field sealed under the key, found from the stored events without opening
them (a sealed field names its key in clear). `plan` lists what is due on a date and changes
nothing. `run` erases it:

1. each due key is deleted in a transaction of its own that first locks the key's row and
   checks no entry was written since the plan was made (a newer one makes it not due yet);
2. the read models of the service are rebuilt, so no row of an erased record is left;
3. an erasure event (the key's id, class, rule and date: nothing personal) is recorded for
   every erased key that has none yet, under an id derived from the key's;
4. every subscription whose person filter was sealed under an erased key is ended, its
   filter dropped;
5. what was deleted is made unrecoverable from the files (`scrub_files`).

Each step is safe to repeat, and a run that is interrupted is finished by the next: an
erased key is never due again, and the steps after it are taken while any erased key still
lacks its event.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from sqlalchemy import inspect, text

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from contracts.personal_fields import PERSONAL_FIELDS
from services.common.fhir_time import InvalidDateTime, fhir_instant, now, parse_fhir_datetime
from services.common.personal_data.erasure import Erasure, erasure_id
from services.common.personal_data.keys import personal_data_keys
from services.common.personal_data.mapper import SEALED
from services.common.personal_data.master_key import MasterKeyProblem
from services.common.personal_data.retention import (
    RetentionConfigProblem,
    RetentionRule,
    retention_file_from_env,
    retention_rules,
)
from services.common.subscriptions.person_filter import end_filters_of_erased
from services.common.subscriptions.store import SubscriptionStore, subscriptions
from services.ops.offline import OpenService, open_service

PAGE = 1000
# Each waits up to the connections' busy timeout (10 s) for the services' transactions.
TRUNCATE_ATTEMPTS = 5


@dataclass(frozen=True)
class Due:
    """A person's key of one class whose period has passed on the planned date."""

    key_id: str
    retention_class: str
    person_index: str  # the blind index: names the person without their number
    last_entry: datetime
    rule: RetentionRule
    due: datetime
    records: frozenset[UUID]  # the records with entries under the key
    head: int  # the log position the plan was made at
    identity: bool = False  # the key holds those records' person: any entry in them counts

    def line(self, service: str) -> str:
        held = self.due > self.rule.due(self.last_entry)
        return (
            f"{service}: {self.retention_class} key {self.key_id} (person {self.person_index[:16]}"
            f"…): last entry {fhir_instant(self.last_entry)}, due {fhir_instant(self.due)}"
            f"{' (held while the records it holds have other parts kept)' if held else ''} "
            f"under {self.rule.rule!r}"
        )


def sealed_key_ids(state: dict[str, Any]) -> Iterator[str]:
    for value in state.values():
        if isinstance(value, dict) and isinstance(value.get(SEALED), dict):
            key_id = value[SEALED].get("k")
            if isinstance(key_id, str):
                yield key_id


@dataclass
class Entries:
    """What the log holds under one data key: its newest entry, the records with entries
    under it, and whether it holds those records' person (their creation event's)."""

    last: datetime
    records: set[UUID]
    identity: bool = False


def entries_by_key(service: OpenService) -> tuple[int, dict[str, Entries]]:
    """The log head, and for each data key its entries, read from the stored events, nothing
    opened. An entry under a key is an event with a field sealed under it; an event sealing
    nothing (a status change) is an entry of its record's person key, the record's frame. So
    a municipality's entry moves the municipality's key's date, not the region's."""
    application = service.application
    recorder: Any = application.recorder
    transcoder = application.mapper.transcoder
    head = recorder.max_notification_id() or 0
    by_key: dict[str, Entries] = {}
    person_key: dict[UUID, str] = {}  # each record's person key (its creation event's)
    frame: dict[UUID, datetime] = {}  # each record's newest event sealing nothing
    position = 0
    while position < head:
        notifications = recorder.select_notifications(
            start=position, limit=PAGE, stop=head, inclusive_of_start=False
        )
        if not notifications:
            break
        for notification in notifications:
            stream = UUID(str(notification.originator_id))
            state = transcoder.decode(notification.state)
            if not isinstance(state, dict) or not isinstance(state.get("timestamp"), datetime):
                continue
            timestamp = state["timestamp"]
            declared = PERSONAL_FIELDS.get(notification.topic)
            held = state.get(declared.person) if declared and declared.person else None
            if isinstance(held, dict) and isinstance(held.get(SEALED), dict):
                person_key[stream] = held[SEALED].get("k")
            found = set(sealed_key_ids(state))
            if not found:
                frame[stream] = max(frame.get(stream, timestamp), timestamp)
            for key_id in found:
                entries = by_key.setdefault(key_id, Entries(timestamp, set()))
                entries.last = max(entries.last, timestamp)
                entries.records.add(stream)
        position = notifications[-1].id
    for stream, key_id in person_key.items():
        entries = by_key.setdefault(
            key_id, Entries(frame.get(stream, datetime.min.replace(tzinfo=UTC)), set())
        )
        entries.identity = True
        entries.records.add(stream)
        if stream in frame:
            entries.last = max(entries.last, frame[stream])
    return head, by_key


def plan(service: OpenService, rules: dict[str, RetentionRule], on: datetime) -> list[Due]:
    """The live keys due for erasure on `on`; changes nothing. A key holding records' person
    is due no sooner than every other live key with entries in those records: erasing it
    would take the record, and their entries, with it (a region's key is thus kept past its
    ten years while the municipality's entries in a plan are kept; ten is the law's minimum)."""
    keys = service.application.personal_data
    if keys is None:
        return []
    head, by_key = entries_by_key(service)
    live = [
        row for row in keys.person_keys() if row.erased_at is None and row.retention_class in rules
    ]
    entries = {
        row.key_id: by_key.get(row.key_id, Entries(_instant(row.created_at), set())) for row in live
    }
    own_due = {row.key_id: rules[row.retention_class].due(entries[row.key_id].last) for row in live}
    # The latest date any live key with entries in a record is due.
    record_due: dict[UUID, datetime] = {}
    for key_id, theirs in entries.items():
        for record in theirs.records:
            record_due[record] = max(record_due.get(record, own_due[key_id]), own_due[key_id])
    due = []
    for row in live:
        mine = entries[row.key_id]
        when = own_due[row.key_id]
        if mine.identity:
            when = max([when, *(record_due[record] for record in mine.records)])
        if when <= on:
            rule = rules[row.retention_class]
            due.append(
                Due(
                    row.key_id,
                    row.retention_class,
                    row.person_index,
                    mine.last,
                    rule,
                    when,
                    frozenset(mine.records),
                    head,
                    mine.identity,
                )
            )
    return due


def no_entry_since(service: OpenService, due: Due) -> Any:
    """Asked inside the erasing transaction: no event after the plan's log position seals a
    field under the key or, where the key holds its records' person, belongs to one of them."""
    recorder: Any = service.application.recorder
    position = "rowid" if service.engine.dialect.name == "sqlite" else "notification_id"
    query = text(
        f"SELECT originator_id, state FROM {recorder.events_table_name} WHERE {position} > :head"
    )

    def check(connection: Any) -> bool:
        for originator_id, state in connection.execute(query, {"head": due.head}):
            if due.key_id.encode() in bytes(state) or (
                due.identity and UUID(str(originator_id)) in due.records
            ):
                return False
        return True

    return check


def run(service: OpenService, rules: dict[str, RetentionRule], on: datetime) -> list[str]:
    """Erases what is due on `on`, rebuilds the read models and records the erasure events;
    the lines to print."""
    keys = service.application.personal_data
    if keys is None:
        return []
    # A master key that opens none of the keys would rebuild read models that skip every
    # record: refused before anything is done.
    keys.person_index(PersonIdentifier(PERSONNUMMER_SYSTEM, "191212121212"))
    lines = []
    for due in plan(service, rules, on):
        erased = keys.erase_key(
            due.key_id, rule=due.rule.rule, at=now(), still_due=no_entry_since(service, due)
        )
        verdict = "erased" if erased else "kept (an entry since the plan, or erased already)"
        lines.append(f"{due.line(service.name)}: {verdict}")
    erased = [row for row in keys.person_keys() if row.erased_at is not None]
    unrecorded = [row for row in erased if not _recorded(service, row)]
    if unrecorded:
        for projection in service.projections():
            projection.rebuild()
        lines.append(f"{service.name}: read models rebuilt")
        for row in unrecorded:
            _record(service, row)
            lines.append(f"{service.name}: erasure of key {row.key_id} recorded")
    if inspect(service.engine).has_table(subscriptions.name):
        store = SubscriptionStore(service.engine)
        for ended in end_filters_of_erased(store, erased, fhir_instant(now())):
            lines.append(f"{service.name}: subscription {ended} ended (its person was erased)")
    if lines:
        lines.append(scrub_files(service))
    elif service.engine.dialect.name == "sqlite":
        scrub_files(service)  # a log an earlier run found busy, emptied now: cheap
    return lines


def scrub_files(service: OpenService) -> str:
    """What the run deleted, gone from the database's files too (docs/decisions/0007,
    "Leftovers in the files"). SQLite: the connections zero what they delete
    (`secure_delete`, persistence.py); the write-ahead log, which holds older copies of the
    pages, is copied into the database and emptied. PostgreSQL: the tables the run touched
    vacuumed, so their dead rows are freed for reuse (not overwritten: see the decision)."""
    if service.engine.dialect.name == "sqlite":
        connection = service.engine.raw_connection()  # outside a transaction, as it must be
        try:
            for _ in range(TRUNCATE_ATTEMPTS):
                cursor = connection.cursor()
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                cursor.close()
                if not busy:
                    return f"{service.name}: write-ahead log checkpointed and emptied"
                time.sleep(0.1)
        finally:
            connection.close()
        return (
            f"{service.name}: the write-ahead log could not be emptied (busy): it is reused "
            "as the service writes; run again when the services are quieter"
        )
    tables = [personal_data_keys.name] + [
        table.name
        for projection in service.projections()
        for table in projection.metadata.sorted_tables
    ]
    if inspect(service.engine).has_table(subscriptions.name):
        tables.append(subscriptions.name)
    vacuum = service.engine.execution_options(isolation_level="AUTOCOMMIT")
    with vacuum.connect() as connection:
        connection.exec_driver_sql("VACUUM " + ", ".join(f'"{name}"' for name in tables))
    return f"{service.name}: {len(tables)} tables vacuumed"


def _recorded(service: OpenService, row: Any) -> bool:
    try:
        service.application.repository.get(erasure_id(row.key_id))
    except AggregateNotFoundError:
        return False
    return True


def _record(service: OpenService, row: Any) -> None:
    erasure = Erasure(
        key_id=row.key_id,
        retention_class=row.retention_class,
        rule=row.erased_rule,
        erased_at=row.erased_at,
    )
    with contextlib.suppress(IntegrityError):  # another run recorded it meanwhile
        service.application.save(erasure)


def _instant(text_: str) -> datetime:
    moment = datetime.fromisoformat(text_)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# The commands ------------------------------------------------------------------------------


def add_retention_commands(commands: Any, add_storage_arguments: Any, explained: Any) -> None:
    retention = commands.add_parser(
        "retention",
        **explained(
            "erase personal data whose retention period has passed (docs/decisions/0007)",
            "sip retention plan --date 2036-01-01",
        ),
    )
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    for name, summary, example, action in (
        ("plan", "list what would be erased on a date, and why (changes nothing)",
         "sip retention plan --date 2036-01-01", run_plan),
        ("run", "erase what is due: delete the data keys, rebuild the read models, record "
         "the erasures (safe to repeat or interrupt)", "sip retention run", run_run),
    ):  # fmt: skip
        command = retention_commands.add_parser(name, **explained(summary, example))
        add_storage_arguments(command)
        command.add_argument(
            "--date", help="the date the periods are counted to (default: now); a FHIR date"
        )
        command.add_argument("--service", choices=["sip", "consent", "all"], default="all")
        command.set_defaults(run=action)


def _settings(arguments: argparse.Namespace) -> tuple[dict[str, RetentionRule], datetime] | None:
    try:
        rules = retention_rules(retention_file_from_env())
        on = parse_fhir_datetime(arguments.date) if arguments.date else now()
    except (RetentionConfigProblem, InvalidDateTime) as problem:
        print(problem, file=sys.stderr)
        return None
    return rules, on


def _on_each_service(
    arguments: argparse.Namespace,
    act: Callable[[str, OpenService, dict[str, RetentionRule], datetime], int],
) -> int:
    """`act` on each chosen service in turn, with the rules and the date: 2 if those cannot be
    read, else the first exit code other than 0 that `act` returns (the services after it left
    alone), else 0."""
    settings = _settings(arguments)
    if settings is None:
        return 2
    rules, on = settings
    names = ["sip", "consent"] if arguments.service == "all" else [arguments.service]
    for name in names:
        database_url = getattr(arguments, f"{name}_database_url")
        with open_service(name, arguments.data_dir, database_url) as service:
            code = act(name, service, rules, on)
        if code:
            return code
    return 0


def _show_due(
    name: str, service: OpenService, rules: dict[str, RetentionRule], on: datetime
) -> int:
    due = plan(service, rules, on)
    for one in due:
        print(one.line(name))
    print(f"{name}: {len(due)} key(s) due on {fhir_instant(on)}; nothing erased")
    return 0


def _erase_due(
    name: str, service: OpenService, rules: dict[str, RetentionRule], on: datetime
) -> int:
    try:
        lines = run(service, rules, on)
    except MasterKeyProblem as problem:
        print(f"{name}: nothing erased: {problem}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    if not lines:
        print(f"{name}: nothing due on {fhir_instant(on)}")
    return 0


def run_plan(arguments: argparse.Namespace) -> int:
    return _on_each_service(arguments, _show_due)


def run_run(arguments: argparse.Namespace) -> int:
    return _on_each_service(arguments, _erase_due)
