"""A subscription's person filter (`patient=system|value`), kept as the person's blind index,
to judge by, and sealed under their `access` key, to show the owner the filter as given
(docs/decisions/0007): never the number in clear. Without the key store, the number itself."""

from __future__ import annotations

import json
from collections.abc import Iterable
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


def end_filters_of_erased(store: SubscriptionStore, erased: Iterable[Any], at: str) -> list[str]:
    """Ends each subscription whose person filter is sealed under one of the `erased` key
    rows (key id, rule, when): its blind index would otherwise still match the person, and
    a new record of theirs after the erasure with it. The reason names the rule and the
    date, nothing personal. The ids ended; none on a second run (the filter is gone)."""
    rules = {row.key_id: (row.erased_rule, row.erased_at) for row in erased}
    table = subscriptions
    with store.engine.connect() as connection:
        sealed = connection.execute(
            select(table.c.id, table.c.person_sealed).where(table.c.person_sealed.is_not(None))
        ).all()
    ended = []
    for row in sealed:
        key_id = json.loads(row.person_sealed).get("k")
        if key_id not in rules:
            continue
        rule, when = rules[key_id]
        reason = (
            f"ended: the person this subscription followed had their access records erased "
            f"on {when} under {rule!r}"
        )
        store.end(row.id, reason[:500], at)
        ended.append(row.id)
    return ended
