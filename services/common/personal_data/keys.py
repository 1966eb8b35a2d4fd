"""The data keys, one per person and retention class, kept wrapped by the master key in the
service's own database (table `personal_data_keys`, migrations sip_0006 and consent_0004).

Erasing deletes the wrapped key and the person's blind index; the row stays, so a value sealed
under it reads as erased (when, under which rule) rather than as corrupt. A master-key rotation
re-wraps every live key in one transaction and touches no event.

Unwrapped keys are kept in memory for `cache_seconds` (a replay would otherwise unwrap a key
per field): an erasure stops reads at once in the process that made it, and in other
replicas at their read models' next batch (`forget_erased`) or once their kept copy
expires. Writes never trust memory alone: the write's own
transaction checks the key it sealed under is still live (or inserts it, when the write made
it: in_write.py), so nothing is stored sealed under a key erased elsewhere. The key a person's
last write found live is remembered for their next one (a look-up per write was most of the
encryption's cost on writes, decision 0007); when the transaction finds it erased, the write
is rolled back, what is remembered forgotten, and the write sealed again under the key the
database then holds (`forget_live_keys`, called by the mapper's event store).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from threading import Lock
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from contracts.identifiers import PersonIdentifier
from services.common.persistence import SQLITE_IMMEDIATE
from services.common.personal_data.blind_index import blind_index
from services.common.personal_data.envelope import (
    DataKey,
    Erased,
    open_bytes,
    open_sealed,
    seal,
    seal_bytes,
)
from services.common.personal_data.in_write import KEY_COLUMNS, KeyUse, live_keys
from services.common.personal_data.master_key import KEY_BYTES, MasterKey, MasterKeys

# The kinds of record the retention rules name; each is erased on its own date.
RETENTION_CLASSES = ("region", "municipality", "consent", "access")
PERSON = "person"
BLIND_INDEX = "blind-index"
# One index key per database, under a fixed id: replicas creating it at once get one row.
INDEX_KEY_ID = "00000000-0000-0000-0000-00000000b11d"

personal_data_metadata = MetaData()
personal_data_keys = Table(
    "personal_data_keys",
    personal_data_metadata,
    Column("key_id", String(36), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("person_index", String(64)),
    Column("retention_class", String(40)),
    Column("wrapped_key", LargeBinary),
    Column("master_key_id", String(16)),
    Column("created_at", String(40), nullable=False),
    Column("erased_at", String(40)),
    Column("erased_rule", String(200)),
    UniqueConstraint("person_index", "retention_class", name="uq_personal_data_key_person"),
)
# How many keys were ever erased, in one row (id 1) counted up in each erasure's transaction:
# a replica learns of an erasure made elsewhere by reading one row, not by counting the keys
# table, which grows with the registry (issue 15). Migrations sip_0009 and consent_0006.
personal_data_erasures = Table(
    "personal_data_erasures",
    personal_data_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("erased", Integer, nullable=False),
)


# A key is looked up for each person whose consent the disclosure check reads for the first
# time (issue 15) and before each person's first write: run on the driver's own connection,
# in its parameter style (%s; `?` on SQLite), without SQLAlchemy's execution (_query).
_KEY_BY_ID = (
    "SELECT purpose, wrapped_key, master_key_id, erased_at, erased_rule "
    "FROM personal_data_keys WHERE key_id = %s"
)
# The columns unwrapping a key takes (`keep_keys`).
_UNWRAPPED = "key_id, purpose, wrapped_key, master_key_id"
_LIVE_KEYS_OF_PERSON = (
    "SELECT key_id, purpose, retention_class, wrapped_key, master_key_id "
    "FROM personal_data_keys WHERE person_index = %s AND wrapped_key IS NOT NULL"
)
_NOT_ASKED = object()

_ERASED_COUNT = select(personal_data_erasures.c.erased).where(personal_data_erasures.c.id == 1)
_COUNT_ERASURES = (
    personal_data_erasures.update()
    .where(personal_data_erasures.c.id == 1)
    .values(erased=personal_data_erasures.c.erased + bindparam("count"))
)


class UnknownDataKey(LookupError):
    """A sealed value names a key this database never held: it came from elsewhere."""


class PersonalDataKeys:
    UNSTORED_KEPT = 10_000
    PEOPLE_KEPT = 10_000  # people whose blind index and live keys are remembered
    LIVE_KEPT = PEOPLE_KEPT * len(RETENTION_CLASSES)
    # Unwrapped keys held at once: a rebuild or a long-running process meets every person's
    # keys, and memory must not grow with the registry.
    KEYS_KEPT = LIVE_KEPT
    KEYS_ASKED_AT_ONCE = 500  # ids in one look-up of `keep_keys` (SQLite's parameters)

    def __init__(
        self,
        engine: Engine,
        master: MasterKeys,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._master = master
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._kept: OrderedDict[str, tuple[float, DataKey]] = OrderedDict()
        # Keys made for writes and not yet seen stored, by (person index, retention class).
        self._unstored: OrderedDict[tuple[str, str], tuple[DataKey, KeyUse]] = OrderedDict()
        # The key each person's last write found live, by (person index, retention class), or
        # None where they had none of the class: used for the next write, which its own
        # transaction checks is still live (or that no other writer made one meanwhile).
        self._live: OrderedDict[tuple[str, str], tuple[DataKey, KeyUse] | None] = OrderedDict()
        # The blind index of each person written or looked up (an HMAC and a key look-up).
        self._indexes: OrderedDict[PersonIdentifier, str] = OrderedDict()
        self._lock = Lock()
        # How many keys were erased when a reader last looked (`forget_erased`), and how many
        # times it forgot what it remembered since this store started: each read model and
        # the repository's kept aggregates compare it with their own, and drop what they
        # built with keys remembered from before.
        self._erased_seen: int | None = None
        self.generation = 0

    # Sealing and opening values -------------------------------------------------------------

    def seal(
        self, person: PersonIdentifier, retention_class: str, value: Any, context: bytes
    ) -> dict[str, str]:
        return seal(self.key_for(person, retention_class), value, context)

    def open(self, sealed: dict[str, str], context: bytes) -> Any:
        """The plain value, or `Erased`; raises TamperedValue or UnknownDataKey."""
        return open_sealed(sealed, context, self.key_of)

    def seal_bytes(
        self, person: PersonIdentifier, retention_class: str, plain: bytes, context: bytes
    ) -> dict[str, str]:
        return seal_bytes(self.key_for(person, retention_class), plain, context)

    def open_bytes(self, sealed: dict[str, str], context: bytes) -> bytes | Erased:
        return open_bytes(sealed, context, self.key_of)

    def person_index(self, person: PersonIdentifier) -> str:
        # Asked for every event sealed and every read-model row: read without the lock (one
        # dict look-up is atomic); the oldest remembered is the first dropped.
        index = self._indexes.get(person)
        if index is not None:
            return index
        # The index key is never erased nor changed (rotation re-wraps it): an index holds.
        index = blind_index(self._index_key().secret, person)
        with self._lock:
            _bounded_put(self._indexes, person, index, self.PEOPLE_KEPT)
        return index

    def index_key(self) -> bytes:
        """The database's blind-index key (personal_data/lookup.py indexes the read models)."""
        return self._index_key().secret

    # The keys --------------------------------------------------------------------------------

    def key_for(self, person: PersonIdentifier, retention_class: str) -> DataKey:
        """The person's live key of that class, made the first time."""
        if retention_class not in RETENTION_CLASSES:
            raise ValueError(f"retention class is one of {', '.join(RETENTION_CLASSES)}")
        index = self.person_index(person)
        # Always asked of the database, never of memory: another replica may have erased the
        # key, and a value sealed under an erased key would be lost the moment it is written.
        found = self._live_keys(index).get(retention_class)
        if found is not None:
            return found
        key = DataKey(str(uuid.uuid4()), secrets.token_bytes(KEY_BYTES))
        try:
            self._insert(key, PERSON, index, retention_class)
        except IntegrityError:  # another replica made it first: use theirs
            found = self._live_keys(index).get(retention_class)
            assert found is not None, "a key made at once by another replica is gone"
            return found
        return self._keep(key)

    def key_for_write(
        self, person: PersonIdentifier, retention_class: str
    ) -> tuple[DataKey, KeyUse]:
        """The person's live key of that class, or a new one, with what the write's own
        transaction must do about it (in_write.py): check it is still live, or insert it."""
        if retention_class not in RETENTION_CLASSES:
            raise ValueError(f"retention class is one of {', '.join(RETENTION_CLASSES)}")
        index = self.person_index(person)
        remembered = self._live.get((index, retention_class), _NOT_ASKED)  # atomic
        if remembered is _NOT_ASKED:
            # Every class of the person in one look-up: a request writes their entry and its
            # access record, each under a key of its own class. What is remembered, a key or
            # none, is checked by the write's transaction as any key (in_write.py).
            found = {
                one_class: (key, KeyUse(key.key_id))
                for one_class, key in self._live_keys(index).items()
            }
            with self._lock:
                for one_class in RETENTION_CLASSES:
                    if found.get(one_class) is not None:
                        self._unstored.pop((index, one_class), None)
                    _bounded_put(
                        self._live, (index, one_class), found.get(one_class), self.LIVE_KEPT
                    )
            remembered = found.get(retention_class)
        if remembered is not None:
            return remembered
        with self._lock:
            # A key made for a write not yet committed (the person's creation and its first
            # entries in one transaction, or writes of one person at once) is the key of the
            # next: one person and class, one key, whichever write stores it first.
            made = self._unstored.get((index, retention_class))
            if made is None:
                key = DataKey(str(uuid.uuid4()), secrets.token_bytes(KEY_BYTES))
                row = self._row(key, PERSON, index, retention_class)
                made = (key, KeyUse(key.key_id, tuple(row[c] for c in KEY_COLUMNS)))
                self._unstored[(index, retention_class)] = made
                while len(self._unstored) > self.UNSTORED_KEPT:
                    self._unstored.popitem(last=False)
        # Kept at once: if no write stores it, nothing stored names this key.
        return self._keep(made[0]), made[1]

    def stored_by_write(self, made: list[KeyUse]) -> None:
        """Keys made for a write, now committed with it: live, the person's next writes'."""
        if not made:
            return
        person, retention = KEY_COLUMNS.index("person_index"), KEY_COLUMNS.index("retention_class")
        with self._lock:
            for use in made:
                assert use.new_row is not None
                person_class = (use.new_row[person], use.new_row[retention])
                unstored = self._unstored.get(person_class)
                if unstored is not None and unstored[0].key_id == use.key_id:
                    del self._unstored[person_class]
                    remembered = (unstored[0], KeyUse(use.key_id))
                    _bounded_put(self._live, person_class, remembered, self.LIVE_KEPT)

    def forget_live_keys(self) -> None:
        """Forgets the keys writes found live: a write's transaction found one erased, or
        another writer's key stored first; the next look-ups ask the database."""
        with self._lock:
            self._live.clear()

    def forget_erased(self, connection: Any = None) -> bool:
        """Forgets every remembered key if any key was erased since the last call (or on the
        first), and counts up `generation`: asked by a read model in its write transaction,
        before it opens anything, and by the repository at most once a second before it
        hands out a kept aggregate, so an erasure committed elsewhere (`sip retention run`,
        another replica) is seen at once by the next batch a replica applies, and within a
        second by its reads by id. True if it forgot. One row read (`personal_data_erasures`)."""
        if connection is not None and connection.engine.pool is self._engine.pool:
            erased = connection.execute(_ERASED_COUNT).scalar_one_or_none()
        else:  # by itself, or for a read model elsewhere (`rebuild --check`'s scratch database)
            with self._engine.connect() as own:
                erased = own.execute(_ERASED_COUNT).scalar_one_or_none()
        if erased == self._erased_seen:
            return False
        with self._lock:
            self._kept.clear()
            if self._erased_seen is not None:
                # Spares the next write a refusal and a retry; on the first look nothing is
                # known to have changed, and each write checks its key live anyway.
                self._live.clear()
            self._erased_seen = erased
            self.generation += 1
        return True

    def key_of(self, key_id: str) -> DataKey | Erased:
        kept = self._kept_key(key_id)
        if kept is not None:
            return kept
        rows = self._query(_KEY_BY_ID, key_id)
        if not rows:
            raise UnknownDataKey(f"no data key {key_id} in this database")
        purpose, wrapped, master_key_id, erased_at, erased_rule = rows[0]
        if wrapped is None:
            return Erased(key_id, erased_at, erased_rule)
        return self._keep(self._unwrapped(key_id, purpose, bytes(wrapped), master_key_id))

    def kept(self, key_id: str) -> bool:
        """Whether the key is kept unwrapped now (live when kept, not expired, no erasure
        noticed since): a value sealed under it would open from memory alone."""
        return self._kept_key(key_id) is not None

    def keep_keys(self, key_ids: Iterable[str]) -> None:
        """Unwraps and keeps, in one look-up per `KEYS_ASKED_AT_ONCE`, the live keys among
        `key_ids` not kept already: a rebuild meets each person's key once, in batches of
        events, and would otherwise ask the database for each. Ids of erased or unknown keys
        are passed over (`key_of` answers for them as before)."""
        missing = sorted({key_id for key_id in key_ids if self._kept_key(key_id) is None})
        for start in range(0, len(missing), self.KEYS_ASKED_AT_ONCE):
            asked = tuple(missing[start : start + self.KEYS_ASKED_AT_ONCE])
            for key_id, purpose, wrapped, master_key_id in self._query(
                live_keys(len(asked), _UNWRAPPED), *asked
            ):
                self._keep(self._unwrapped(key_id, purpose, bytes(wrapped), master_key_id))

    def erase(
        self,
        person: PersonIdentifier,
        *,
        rule: str,
        retention_class: str | None = None,
        at: datetime | None = None,
    ) -> list[str]:
        """Erases the person's live keys (of one class, or all): the ids of those erased. Safe
        to repeat: a second run finds nothing live."""
        index = self.person_index(person)
        table = personal_data_keys
        live = (table.c.person_index == index) & (table.c.purpose == PERSON)
        if retention_class is not None:
            live &= table.c.retention_class == retention_class
        with self._writing() as connection:
            erased = [row.key_id for row in connection.execute(select(table.c.key_id).where(live))]
            connection.execute(
                table.update()
                .where(live)
                .values(
                    wrapped_key=None,
                    master_key_id=None,
                    person_index=None,
                    erased_at=(at or self._clock()).isoformat(),
                    erased_rule=rule,
                )
            )
            if erased:
                connection.execute(_COUNT_ERASURES, {"count": len(erased)})
        self._forget(erased)
        return erased

    def person_keys(self) -> list[Any]:
        """Every person's key row, live and erased (the retention run's inventory): key id,
        retention class, blind index (None once erased), created, erased and rule."""
        table = personal_data_keys
        with self._engine.connect() as connection:
            return list(
                connection.execute(
                    select(
                        table.c.key_id,
                        table.c.retention_class,
                        table.c.person_index,
                        table.c.created_at,
                        table.c.erased_at,
                        table.c.erased_rule,
                    )
                    .where(table.c.purpose == PERSON)
                    .order_by(table.c.created_at, table.c.key_id)
                )
            )

    def erase_key(
        self,
        key_id: str,
        *,
        rule: str,
        at: datetime,
        still_due: Callable[[Any], bool] = lambda connection: True,
    ) -> bool:
        """Erases one live key if `still_due(connection)`, asked inside the erasing
        transaction after the key's row is locked (PostgreSQL: FOR UPDATE, which waits for
        the writes holding it FOR SHARE; SQLite: the immediate transaction keeps writers
        out). True if it erased the key; False if it was erased already or no longer due."""
        table = personal_data_keys
        live = (table.c.key_id == key_id) & table.c.wrapped_key.is_not(None)
        with self._writing() as connection:
            query = select(table.c.key_id).where(live)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            if connection.execute(query).first() is None or not still_due(connection):
                return False
            connection.execute(
                table.update()
                .where(live)
                .values(
                    wrapped_key=None,
                    master_key_id=None,
                    person_index=None,
                    erased_at=at.isoformat(),
                    erased_rule=rule,
                )
            )
            connection.execute(_COUNT_ERASURES, {"count": 1})
        self._forget([key_id])
        return True

    def rotate_master_key(self, new: MasterKey) -> int:
        """Re-wraps every live key (the index key too) with `new`, all or none; the number
        re-wrapped. Rows already wrapped by `new` are left, so a second run (after every
        replica runs with `new` as SIP_MASTER_KEY) re-wraps only what was made meanwhile."""
        table = personal_data_keys
        count = 0
        with self._writing() as connection:
            rows = connection.execute(
                select(table).where(
                    table.c.wrapped_key.is_not(None), table.c.master_key_id != new.key_id
                )
            ).all()
            for row in rows:
                secret = self._master.by_id(row.master_key_id).unwrap(
                    row.wrapped_key, _context(row.key_id, row.purpose)
                )
                connection.execute(
                    table.update()
                    .where(table.c.key_id == row.key_id)
                    .values(
                        wrapped_key=new.wrap(secret, _context(row.key_id, row.purpose)),
                        master_key_id=new.key_id,
                    )
                )
                count += 1
        old = self._master
        self._master = MasterKeys(new, (old.current, *old.previous))
        return count

    # Storage ---------------------------------------------------------------------------------

    def _index_key(self) -> DataKey:
        kept = self._kept_key(INDEX_KEY_ID)
        if kept is not None:
            return kept
        found = self._row_key(INDEX_KEY_ID)
        if found is None:
            with contextlib.suppress(IntegrityError):  # another replica made it first
                self._insert(
                    DataKey(INDEX_KEY_ID, secrets.token_bytes(KEY_BYTES)), BLIND_INDEX, None, None
                )
            found = self._row_key(INDEX_KEY_ID)
            assert found is not None
        return self._keep(found)

    def _row_key(self, key_id: str) -> DataKey | None:
        rows = self._query(_KEY_BY_ID, key_id)
        if not rows or rows[0][1] is None:
            return None
        purpose, wrapped, master_key_id = rows[0][:3]
        return self._unwrapped(key_id, purpose, bytes(wrapped), master_key_id)

    def _live_keys(self, index: str) -> dict[str, DataKey]:
        """The person's live keys, by retention class."""
        return {
            retention_class: self._kept_key(key_id)
            or self._keep(self._unwrapped(key_id, purpose, bytes(wrapped), master_key_id))
            for key_id, purpose, retention_class, wrapped, master_key_id in self._query(
                _LIVE_KEYS_OF_PERSON, index
            )
        }

    def _query(self, sql: str, *parameters: str) -> list[tuple[Any, ...]]:
        """`sql` (a `%s` for each parameter) on the driver's own connection: asked for each
        person the process meets first (a key look-up) and for each batch a rebuild applies,
        where SQLAlchemy's execution (its transaction's own BEGIN, the statement cache, the
        result) costs several times the query (issue 16)."""
        connection = self._engine.raw_connection()
        # On PostgreSQL the query runs outside a transaction: the pool hands the connection
        # back without a ROLLBACK, a round trip (the look-up took 220 us against 424).
        outside_a_transaction = self._engine.dialect.name == "postgresql"
        try:
            if outside_a_transaction:
                connection.driver_connection.autocommit = True
            try:
                cursor = connection.cursor()
                marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
                cursor.execute(sql.replace("%s", marker), parameters)
                rows = cursor.fetchall()
                cursor.close()
            finally:
                if outside_a_transaction:
                    connection.driver_connection.autocommit = False
        finally:
            connection.close()
        return list(rows)

    def _insert(
        self, key: DataKey, purpose: str, index: str | None, retention_class: str | None
    ) -> None:
        with self._writing() as connection:
            connection.execute(
                personal_data_keys.insert().values(
                    **self._row(key, purpose, index, retention_class)
                )
            )

    def _row(
        self, key: DataKey, purpose: str, index: str | None, retention_class: str | None
    ) -> dict[str, Any]:
        return {
            "key_id": key.key_id,
            "purpose": purpose,
            "person_index": index,
            "retention_class": retention_class,
            "wrapped_key": self._master.current.wrap(key.secret, _context(key.key_id, purpose)),
            "master_key_id": self._master.current.key_id,
            "created_at": self._clock().isoformat(),
        }

    def _writing(self) -> Any:
        return self._engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin()

    def _unwrapped(
        self, key_id: str, purpose: str, wrapped_key: bytes, master_key_id: str
    ) -> DataKey:
        master = self._master.by_id(master_key_id)
        return DataKey(key_id, master.unwrap(wrapped_key, _context(key_id, purpose)))

    def _forget(self, erased: list[str]) -> None:
        with self._lock:
            for key_id in erased:
                self._kept.pop(key_id, None)
            gone = set(erased)
            for person_class in [
                pc for pc, live in self._live.items() if live is not None and live[0].key_id in gone
            ]:
                del self._live[person_class]

    def _keep(self, key: DataKey) -> DataKey:
        with self._lock:
            _bounded_put(
                self._kept,
                key.key_id,
                (time.monotonic() + self._cache_seconds, key),
                self.KEYS_KEPT,
            )
        return key

    def _kept_key(self, key_id: str) -> DataKey | None:
        # Asked for every field opened: read without the lock (one dict look-up is atomic),
        # taken only to drop an expired copy.
        kept = self._kept.get(key_id)
        if kept is None:
            return None
        if kept[0] < time.monotonic():
            with self._lock:
                if self._kept.get(key_id) is kept:
                    del self._kept[key_id]
            return None
        return kept[1]


def _context(key_id: str, purpose: str) -> bytes:
    return f"{purpose}\x00{key_id}".encode()


def _bounded_put(kept: OrderedDict[Any, Any], key: Any, value: Any, most: int) -> None:
    """Puts `key` in a most-recently-used map, dropping the least recently used past `most`."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > most:
        kept.popitem(last=False)
