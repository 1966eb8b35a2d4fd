"""`sip migrate`, `sip audit verify|replay|export` and
`sip projections status|rebuild [--check]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from services.common.access_log_views import AccessLogIndex, audit_event_to_fhir
from services.common.audit.checkpoints import (
    InvalidCheckpoint,
    checkpoint_public_keys,
    read_signed_checkpoint,
)
from services.common.domain import NotFound
from services.common.fhir_time import InvalidDateTime, fhir_instant, now, parse_fhir_datetime
from services.common.key_files import key_dir_from_env
from services.common.migrations.runner import migrate_service
from services.common.persistence import data_dir_from_env
from services.common.personal_data.envelope import Erased, erased_text
from services.common.projection import FailedEvent, Projection, failed_events
from services.consent.fhir_mapping import consent_to_fhir
from services.ops.master_key import add_master_key_commands
from services.ops.offline import (
    SERVICES,
    consistent_rows,
    open_service,
    table_rows,
)
from services.ops.retention import add_retention_commands
from services.ops.verify import (
    NotWholeLog,
    chain_view_links,
    database_links,
    feed_links,
    verify_chain_view,
    verify_links,
)
from services.sip.fhir_mapping import plan_to_fhir

DATABASE_URL_VARIABLES = {"sip": "SIP_DATABASE_URL", "consent": "CONSENT_DATABASE_URL"}


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=data_dir_from_env())
    for service, variable in DATABASE_URL_VARIABLES.items():
        parser.add_argument(
            f"--{service}-database-url", default=os.environ.get(variable),
            help=f"PostgreSQL URL of the {service} service's database (default ${variable})",
        )  # fmt: skip


def explained(summary: str, example: str) -> dict[str, Any]:
    """A subcommand's help: one line in the list of commands, and with `--help` that line
    and an example to paste."""
    return {
        "help": summary,
        "description": summary,
        "epilog": f"example:\n  {example}",
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def add_commands(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        **explained(
            "create or upgrade the services' database schemas (before starting them)",
            "sip migrate --service sip --sip-database-url postgresql://sip@db/sip",
        ),
    )
    add_storage_arguments(migrate)
    migrate.add_argument("--service", choices=[*SERVICES, "all"], default="all")
    migrate.set_defaults(run=run_migrate)

    audit = commands.add_parser(
        "audit", **explained("verify, replay and export the event logs", "sip audit verify")
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)

    verify = audit_commands.add_parser(
        "verify",
        **explained(
            "recompute the hash chains and name the first break",
            "sip audit verify --url http://127.0.0.1:8000 --token $AUDITOR_TOKEN",
        ),
    )
    add_storage_arguments(verify)
    verify.add_argument("--service", choices=[*SERVICES, "all"], default="all")
    verify.add_argument("--url", help="verify a running service over HTTP instead")
    verify.add_argument("--token", help="bearer token for --url (an auditor's)")
    verify.add_argument(
        "--full", action="store_true",
        help="with --url: recompute every hash from the events' contents (a token granted the "
        "whole log); without it the content-free hash view is checked (docs/audit.md)",
    )  # fmt: skip
    verify.add_argument("--checkpoint", type=Path, help="a signed checkpoint saved earlier")
    verify.set_defaults(run=run_verify)

    replay = audit_commands.add_parser(
        "replay",
        **explained(
            "a plan's story, event by event",
            "sip audit replay --plan <id> --at 2026-11-01T12:00:00Z",
        ),
    )
    add_storage_arguments(replay)
    replay.add_argument("--plan", required=True, type=UUID)
    replay.add_argument("--at", help="stop at this instant")
    replay.set_defaults(run=run_replay)

    export = audit_commands.add_parser(
        "export",
        **explained(
            "everything about one person, to a file",
            "sip audit export --patient 191212121212 --out person.json",
        ),
    )
    add_storage_arguments(export)
    export.add_argument("--patient", required=True, help="the personnummer")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(run=run_export)

    add_projection_commands(commands)
    add_retention_commands(commands, add_storage_arguments, explained)
    add_master_key_commands(commands, add_storage_arguments, explained)


def add_projection_commands(commands: Any) -> None:
    projections = commands.add_parser(
        "projections",
        **explained(
            "the read models: rebuild them, or see how far they are", "sip projections status"
        ),
    )
    projection_commands = projections.add_subparsers(dest="projections_command", required=True)
    rebuild = projection_commands.add_parser(
        "rebuild",
        **explained("rebuild every read model from zero", "sip projections rebuild --check"),
    )
    add_storage_arguments(rebuild)
    rebuild.add_argument(
        "--check", action="store_true",
        help="rebuild into a scratch copy and report differences from the live read models",
    )  # fmt: skip
    rebuild.set_defaults(run=run_rebuild)
    status = projection_commands.add_parser(
        "status",
        **explained(
            "each read model's position, the log head and any events passed over",
            "sip projections status --data-dir /var/lib/sip",
        ),
    )
    add_storage_arguments(status)
    status.set_defaults(run=run_projection_status)


def _services(arguments: argparse.Namespace, chosen: str = "all") -> list[tuple[str, str | None]]:
    names = list(SERVICES) if chosen == "all" else [chosen]
    return [(name, getattr(arguments, f"{name}_database_url")) for name in names]


def run_migrate(arguments: argparse.Namespace) -> int:
    for name, database_url in _services(arguments, arguments.service):
        print(migrate_service(name, database_url, arguments.data_dir), flush=True)
    return 0


def run_verify(arguments: argparse.Namespace) -> int:
    expected = None
    signed = json.loads(arguments.checkpoint.read_text()) if arguments.checkpoint else None
    if arguments.url:
        if not arguments.token:
            print("--url needs --token (an auditor's bearer token)", file=sys.stderr)
            return 2
        try:
            return _verify_over_http(arguments, signed)
        except NotWholeLog as error:
            print(str(error), file=sys.stderr)
        except httpx.HTTPStatusError as error:
            print(f"the service refused: {error.response.status_code} "
                  f"{error.response.text[:300]}", file=sys.stderr)  # fmt: skip
        return 2
    worst = 0
    for name, database_url in _services(arguments, arguments.service):
        with open_service(name, arguments.data_dir, database_url) as service:
            if signed and signed.get("service", "").lower().startswith(name):
                keys = checkpoint_public_keys(key_dir_from_env(arguments.data_dir), name)
                expected = _checkpoint_head(signed, keys)
                if expected is None:
                    return 1
            recorder: Any = service.application.recorder
            links = database_links(service.engine, recorder.events_table_name, recorder.chain_table)
            worst = max(worst, _report(name, links, expected))
            expected = None
    return worst


def _verify_over_http(arguments: argparse.Namespace, signed: dict[str, Any] | None) -> int:
    expected = None
    if signed:
        keys = httpx.get(f"{arguments.url}/events/checkpoint-keys", timeout=10).json()
        expected = _checkpoint_head(signed, keys)
        if expected is None:
            return 1
    if arguments.full:
        return _report(arguments.url, feed_links(arguments.url, arguments.token), expected)
    viewed = chain_view_links(arguments.url, arguments.token)
    return _report(arguments.url, viewed, expected, check=verify_chain_view)


def _checkpoint_head(signed: dict[str, Any], keys: dict[str, Any]) -> tuple[int, str] | None:
    try:
        checkpoint = read_signed_checkpoint(signed["jws"], keys)
    except (InvalidCheckpoint, KeyError) as error:
        print(f"checkpoint refused: {error}", file=sys.stderr)
        return None
    return checkpoint.position, checkpoint.head


def _report(
    name: str, links: Any, expected: tuple[int, str] | None, check: Any = verify_links
) -> int:
    started = time.perf_counter()
    result = check(links, expected_head=expected)
    seconds = time.perf_counter() - started
    rate = result.events / seconds if seconds else 0.0
    if result.intact:
        print(f"{name}: intact, {result.events} events, head {result.head} ({rate:,.0f} events/s)")
        if result.links_only:
            print(f"{name}: checked the chain's links, order and signed head from the hash "
                  "view; that no event's content changed needs --full or the database")  # fmt: skip
        return 0
    print(f"{name}: BROKEN at {result.first_break} ({result.events} events verified before it)")
    return 1


def run_replay(arguments: argparse.Namespace) -> int:
    try:
        until = parse_fhir_datetime(arguments.at) if arguments.at else None
    except InvalidDateTime as error:
        print(f"--at: {error}", file=sys.stderr)
        return 2
    with open_service("sip", arguments.data_dir, arguments.sip_database_url) as service:
        events = list(service.application.events.get(arguments.plan))
        if not events:
            print(f"no plan {arguments.plan}", file=sys.stderr)
            return 1
        print(f"The story of plan {arguments.plan}" + (f" until {arguments.at}" if until else ""))
        for event in events:
            if until is not None and event.timestamp > until:
                break
            print(story_line(event))
    return 0


# Fields a later event version added, which most events leave empty: an older event's story
# reads as it did before the field existed (before v2 an intervention's `text`, an answer's
# `comment` and an invitation's `agenda` and `location` are in their dicts).
TOLD_ONLY_WHEN_GIVEN = {"identifiers", "text", "comment", "agenda", "location"}


def story_line(event: Any) -> str:
    """One event as a line an auditor reads: when, who, what."""
    details = {
        name: value for name, value in vars(event).items()
        if name not in ("originator_id", "originator_version", "timestamp", "originator_topic")
        and not (name in TOLD_ONLY_WHEN_GIVEN and not value)
    }  # fmt: skip
    author = next(
        (details.pop(name) for name, value in list(details.items())
         if isinstance(value, dict) and {"subject", "role"} <= set(value)),
        None,
    )  # fmt: skip
    who = "unknown"
    if author:
        who = f"{author['role']} {author['subject']}"
        where = ", ".join(f"{k} {author[k]}" for k in ("organization", "unit") if author.get(k))
        who += f" ({where})" if where else ""
    what = type(event).__qualname__.split(".")[-1]
    facts = "; ".join(
        f"{name.replace('_', ' ')}: {_plain(value)}" for name, value in details.items()
    )
    return f"{fhir_instant(event.timestamp)}  v{event.originator_version}  {who}  {what}" + (
        f" — {facts}" if facts else ""
    )


def _plain(value: Any) -> str:
    if isinstance(value, Erased):
        return erased_text(value)
    if isinstance(value, dict) and "value" in value:
        return str(value["value"])
    if isinstance(value, dict):
        return (
            "("
            + ", ".join(
                f"{key.replace('_', ' ')} {_plain(item)}"
                for key, item in value.items()
                if item not in (None, [], "")
            )
            + ")"
        )
    if isinstance(value, datetime):
        return fhir_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value) or "none"
    return str(value)


def run_export(arguments: argparse.Namespace) -> int:
    exported: dict[str, Any] = {"patient": arguments.patient, "exported": fhir_instant(now())}
    for name, database_url in _services(arguments):
        with open_service(name, arguments.data_dir, database_url) as service:
            application = service.application
            ids = [
                aggregate_id for aggregate_id in application.aggregate_ids()
                if _person_value(application, aggregate_id) == arguments.patient
            ]  # fmt: skip
            to_fhir = plan_to_fhir if name == "sip" else consent_to_fhir
            log = AccessLogIndex(application, service.engine)
            exported[name] = {
                "resources": [to_fhir(application.aggregate(i)) for i in ids],
                "history": {
                    str(i): [story_line(event) for event in application.events.get(i)] for i in ids
                },
                "access_log": [
                    audit_event_to_fhir(row, f"{name} service")
                    for row in log.search(patient_value=arguments.patient)
                ],
            }
    arguments.out.write_text(json.dumps(exported, ensure_ascii=False, indent=2))
    counts = ", ".join(
        f"{name}: {len(exported[name]['resources'])} resources, "
        f"{len(exported[name]['access_log'])} accesses"
        for name in SERVICES
    )
    print(f"wrote {arguments.out} ({counts})")
    return 0


def _person_value(application: Any, aggregate_id: UUID) -> str | None:
    """The number of the record's person, opened with their key; None once erased."""
    try:
        return application.aggregate(aggregate_id).person_identifier["value"]
    except NotFound:
        return None


def run_rebuild(arguments: argparse.Namespace) -> int:
    differences = 0
    for name, database_url in _services(arguments):
        with open_service(name, arguments.data_dir, database_url) as service:
            events = service.application.recorder.max_notification_id() or 0
            if arguments.check:
                live = service.projections()
                scratch = service.scratch_projections()
                for live_model, scratch_model in zip(live, scratch, strict=True):
                    live_model.catch_up()  # what the next query would see
                    position, live_rows = consistent_rows(live_model)
                    started = time.perf_counter()
                    scratch_model.catch_up(stop=position)
                    seconds = time.perf_counter() - started
                    differences += _compare(
                        name,
                        live_model.name,
                        live_rows,
                        table_rows(scratch_model),
                        position,
                        seconds,
                    )
                    differences += _report_failed(name, scratch_model.failed_events())
            else:
                for projection in service.projections():
                    started = time.perf_counter()
                    projection.rebuild()
                    seconds = time.perf_counter() - started
                    print(f"{name}/{projection.name}: rebuilt from {events} events "
                          f"({events / seconds:,.0f} events/s)")  # fmt: skip
                    differences += _report_failed(name, projection.failed_events())
    return 1 if differences else 0


def _report_failed(service: str, failed: list[FailedEvent]) -> int:
    """Prints the events a read model passed over; returns how many."""
    for event in failed:
        print(
            f"{service}/{event.projection}: FAILED event at position {event.position} "
            f"({event.topic.rsplit('.', 1)[-1]} of {event.originator_id} "
            f"v{event.originator_version}): {event.error_type}: {event.error}"
        )
    return len(failed)


def run_projection_status(arguments: argparse.Namespace) -> int:
    """Where each read model stands against its log, and what it passed over; 1 if anything
    was passed over."""
    failures = 0
    for name, database_url in _services(arguments):
        with open_service(name, arguments.data_dir, database_url) as service:
            head = service.application.recorder.max_notification_id() or 0
            print(f"{name}: log head {head}")
            projections = service.projections()
            for projection in projections:
                failed = projection.failed_events()
                print(f"{name}/{projection.name}: {_standing(projection, head)}, "
                      f"{len(failed)} failed event(s)")  # fmt: skip
                failures += _report_failed(name, failed)
            # Readers of another service's log (the SIP service's consent feed) record theirs
            # in the same table.
            own = {projection.name for projection in projections}
            others = [e for e in failed_events(service.engine) if e.projection not in own]
            failures += _report_failed(name, others)
    return 1 if failures else 0


def _standing(projection: Projection, head: int) -> str:
    position = projection.position()
    if position >= head:
        return f"at position {position} (up to date)"
    # Events of other aggregates at the end of the log are passed over when a query comes.
    return f"at position {position} ({head - position} event(s) not read yet)"


def _compare(
    name: str,
    model: str,
    live_rows: dict[str, set[tuple[Any, ...]]],
    scratch_rows: dict[str, set[tuple[Any, ...]]],
    events: int,
    seconds: float,
) -> int:
    differing = 0
    for table in scratch_rows:
        missing = scratch_rows[table] - live_rows.get(table, set())
        extra = live_rows.get(table, set()) - scratch_rows[table]
        for label, rows in (("missing from the live read model", missing),
                            ("in the live read model but not in the log", extra)):  # fmt: skip
            for row in sorted(rows, key=str)[:5]:
                print(f"{name}/{table}: {label}: {row}")
        differing += len(missing) + len(extra)
    rate = events / seconds if seconds else 0.0
    verdict = "equal to a rebuild" if not differing else f"{differing} row(s) differ"
    print(f"{name}/{model}: {verdict} at position {events} (rebuilt at {rate:,.0f} events/s)")
    return differing
