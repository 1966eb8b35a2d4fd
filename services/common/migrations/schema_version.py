"""Which migration a service's database is at, and refusing any other than the code's head."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

MIGRATED_SERVICES = ("sip", "consent")
_HERE = Path(__file__).parent


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this code was written for."""


def version_table(service: str) -> str:
    return f"{service}_schema_version"


@cache
def history(service: str) -> ScriptDirectory:
    return ScriptDirectory(
        str(_HERE / service), version_locations=[str(_HERE / service / "versions")]
    )


def code_head(service: str) -> str:
    head = history(service).get_current_head()
    assert head is not None, f"no migrations for {service}"
    return head


def database_revision(service: str, engine: Engine) -> str | None:
    """The revision the database is at; None where it was never migrated."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": version_table(service)}
        )
        return context.get_current_revision()


def require_current_schema(service: str, engine: Engine, where: str) -> None:
    """Raises SchemaNotCurrent, naming the command to run, unless the database is at head."""
    head = code_head(service)
    try:
        current = database_revision(service, engine)
    except DBAPIError as error:
        raise SchemaNotCurrent(
            f"the {service} database ({where}) cannot be read "
            f"({type(error.orig).__name__}): create and migrate it with `sip migrate "
            f"--service {service}` before starting the service"
        ) from None
    if current == head:
        return
    if current is None:
        state = "has no schema (it was never migrated)"
    elif _is_known(service, current):
        state = f"has schema {current}, older than this code's {head}"
    else:
        raise SchemaNotCurrent(
            f"the {service} database ({where}) has schema {current}, which this code does not "
            f"know (its newest is {head}): the database was migrated by a newer version; run "
            "that version, not this one"
        )
    raise SchemaNotCurrent(
        f"the {service} database ({where}) {state}: run `sip migrate --service {service}` "
        "(with the same database settings) before starting the service"
    )


def _is_known(service: str, revision: str) -> bool:
    return any(script.revision == revision for script in history(service).walk_revisions())
