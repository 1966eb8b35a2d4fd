"""A subscription's person filter (`patient=system|value`), kept as the person's blind index,
to judge by, and sealed under their `access` key, to show the owner the filter as given
(docs/decisions/0007): never the number in clear. Without the key store, the number itself."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update

from contracts.identifiers import PersonIdentifier
from services.common.persistence import SQLITE_IMMEDIATE
from services.common.personal_data.envelope import Erased
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.lookup import person_index
from services.common.subscriptions.store import SubscriptionRow, SubscriptionStore, subscriptions

RETENTION_CLASS = "access"  # who watches a person: kept and erased with their access records


def _context(subscription_id: str) -> bytes:
    return f"subscription\x00{subscription_id}\x00person".encode()


def person_columns(
    keys: PersonalDataKeys | None, subscription_id: str, person: tuple[str, str] | None
) -> dict[str, Any]:
    if person is None:
        return {"person_system": None, "person_value": None, "person_sealed": None}
    system, value = person
    sealed = None
    if keys is not None:
        sealed = json.dumps(
            keys.seal(
                PersonIdentifier(system, value),
                RETENTION_CLASS,
                {"system": system, "value": value},
                _context(subscription_id),
            )
        )
    return {
        "person_system": system,
        "person_value": person_index(keys, system, value),
        "person_sealed": sealed,
    }


def filtered_person(keys: PersonalDataKeys | None, row: SubscriptionRow) -> str | None:
    """The number the filter names, as given; None where it was erased (or none given)."""
    if not row.person_value:
        return None
    if keys is None or row.person_sealed is None:
        return row.person_value  # kept in clear: no key store
    opened = keys.open(json.loads(row.person_sealed), _context(row.id))
    return None if isinstance(opened, Erased) else str(opened["value"])


def person_passes(
    keys: PersonalDataKeys | None, row: SubscriptionRow, person: dict[str, Any]
) -> bool:
    if not row.person_value:
        return True
    if person.get("system") != row.person_system or person.get("value") is None:
        return False
    return person_index(keys, row.person_system, str(person["value"])) == row.person_value


def index_person_filters(store: SubscriptionStore, keys: PersonalDataKeys | None) -> int:
    """Person filters stored in clear (before migration sip_0007) indexed and sealed; how
    many. Run as the service starts: the migration has no master key."""
    if keys is None:
        return 0
    keys.index_key()  # made now, not inside the delivery worker's claim of the database
    table = subscriptions
    with store.engine.connect() as connection:
        clear = connection.execute(
            select(table.c.id, table.c.person_system, table.c.person_value).where(
                table.c.person_value.is_not(None), table.c.person_sealed.is_(None)
            )
        ).all()
    for row in clear:
        columns = person_columns(keys, row.id, (row.person_system, row.person_value))
        writer = store.engine.execution_options(**{SQLITE_IMMEDIATE: True})
        with writer.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == row.id, table.c.person_sealed.is_(None))
                .values(**columns)
            )
    return len(clear)
