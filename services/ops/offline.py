"""Opening a service's event store and read models directly, without its HTTP API: for
verification, replay, export and rebuilding read models on the server itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from services.common.access_log_views import AccessLogIndex
from services.common.application import VersionedApplication
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import master_keys_from_env
from services.common.projection import Projection
from services.consent.application import ConsentRegistry
from services.consent.projections import ConsentIndex
from services.sip.application import SipPlans
from services.sip.discharge.projections import StayIndex
from services.sip.messages.projections import MessageIndex
from services.sip.projections import PlanIndex

SERVICES: dict[str, tuple[type[VersionedApplication], list[type[Projection]]]] = {
    "sip": (SipPlans, [PlanIndex, StayIndex, MessageIndex, AccessLogIndex]),
    "consent": (ConsentRegistry, [ConsentIndex, AccessLogIndex]),
}


@dataclass
class OpenService:
    name: str
    application: VersionedApplication
    engine: Engine

    def projections(self, engine: Engine | None = None) -> list[Projection]:
        return [kind(self.application, engine or self.engine) for kind in SERVICES[self.name][1]]

    def scratch_projections(self) -> list[Projection]:
        """The read models built afresh in an in-memory database, for comparison."""
        engine = scratch_engine()
        for kind in SERVICES[self.name][1]:
            kind.create_scratch_tables(engine)
        return self.projections(engine)


class NoSystemThere(Exception):
    """A command that reads an existing system was pointed at a folder that holds none."""


def require_existing_system(name: str, data_dir: Path, database_url: str | None) -> None:
    """On the embedded default, the service's database file must already be in the data
    folder: opening a missing one would make an empty system there and report on it (an
    auditor told "intact, 0 events" about the wrong folder)."""
    if database_url:
        return  # a database server: a wrong URL fails to connect, or its schema check names it
    database = data_dir.resolve() / f"{name}.sqlite"
    if not database.is_file():
        raise NoSystemThere(
            f"no SIP system in {data_dir.resolve()} (no {database.name} there): run the "
            "command in the folder `sip up` was started in, or name the data folder with "
            "--data-dir or SIP_DATA_DIR (or the databases with their URLs)"
        )


@contextmanager
def open_service(name: str, data_dir: Path, database_url: str | None) -> Iterator[OpenService]:
    require_existing_system(name, data_dir, database_url)
    storage = storage_for(name, database_url, data_dir)
    engine = read_model_engine(storage)
    # The services' own master key (SIP_MASTER_KEY, SIP_MASTER_KEY_FILE, or the key
    # directory's file): the personal fields of the events open as the services read them.
    key_dir = Path(os.environ.get("SIP_KEY_DIR") or data_dir)
    keys = PersonalDataKeys(engine, master_keys_from_env(key_dir))
    application = SERVICES[name][0](env=storage.event_store_env, personal_data=keys)
    try:
        yield OpenService(name, application, engine)
    finally:
        engine.dispose()
        application.close()


def scratch_engine() -> Engine:
    """An in-memory database to rebuild read models into, for comparison with the live ones."""
    return create_engine("sqlite://", poolclass=StaticPool)


def table_rows(projection: Projection) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table of a read model, comparable across databases."""
    rows = {}
    with projection.engine.connect() as connection:
        for table in projection.metadata.sorted_tables:
            rows[table.name] = {
                tuple(_comparable(value) for value in row)
                for row in connection.execute(select(table))
            }
    return rows


class ReadModelMoving(RuntimeError):
    """The live read model kept changing while it was being read."""


def consistent_rows(
    projection: Projection, attempts: int = 20
) -> tuple[int, dict[str, set[tuple[Any, ...]]]]:
    """The rows of a live read model together with the log position they reflect.

    Running services keep applying events while the rows are read. The tracking position
    moves in the same transaction as the rows, so an unchanged position before and after the
    read means the rows are those of exactly that position."""
    for _ in range(attempts):
        before = projection.position()
        rows = table_rows(projection)
        if projection.position() == before:
            return before, rows
    raise ReadModelMoving(f"{projection.name} kept moving during {attempts} reads")


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    return value
