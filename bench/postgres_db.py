"""Scratch PostgreSQL databases for the benches: each named for its bench with a random suffix,
so that runs side by side do not meet, and dropped when the bench is done with it, even when
the bench fails (WITH (FORCE): a service process still connected does not keep it alive)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from services.common.persistence import maintenance_conninfo

POSTGRES = "postgresql://postgres@127.0.0.1:5432/"


def postgres_reachable(server: str = POSTGRES) -> bool:
    """Whether the server answers; if not, says so: the bench then measures SQLite only."""
    try:
        psycopg.connect(maintenance_conninfo(make_url(server), connect_timeout=3)).close()
    except psycopg.OperationalError as error:
        print(f"PostgreSQL unreachable ({error}); measuring SQLite only")
        return False
    return True


@contextmanager
def scratch_database(prefix: str, server: str = POSTGRES, *, create: bool = True) -> Iterator[str]:
    """The URL of a new database `<prefix>_<random>` on `server`: made here when `create`, else
    only named (the service's migration makes it); dropped on the way out."""
    url = make_url(server).set(database=f"{prefix}_{uuid.uuid4().hex[:8]}")
    if create:
        _administer(url, "CREATE DATABASE {}")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _administer(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


def on_server(
    prefix: str, server: str | None, *, create: bool = True
) -> AbstractContextManager[str | None]:
    """`scratch_database` on `server`, or None (the bench's SQLite run) where there is none."""
    return nullcontext() if server is None else scratch_database(prefix, server, create=create)


def _administer(url: URL, statement: str) -> None:
    with psycopg.connect(maintenance_conninfo(url), autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(url.database or "")))
