"""SQLite's WAL checkpoints, taken by a background thread instead of inside a request's commit.

By default the connection whose commit takes the write-ahead log past 1,000 pages copies the
log into the database file and syncs that file before its commit returns: one request in a
few hundred paid for everyone's writes (the disclosure check's p99, issue 15). The service's
connections turn that off (`PRAGMA wal_autocheckpoint`, per connection) and one thread per
process and database file checkpoints in the background instead (`PASSIVE`: it waits for no
reader or writer, and no writer waits for it).

Durability does not change (docs/decisions/0011): a commit is durable once its log frames are
synced, which `synchronous=FULL` still does in the commit; a checkpoint only moves committed
pages into the database file, and one cut short by a crash is redone from the log when the
database is next opened. Should the thread fall behind, the connections still checkpoint
themselves once the log reaches `FALLBACK_PAGES`, so the log cannot grow without bound.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any

log = logging.getLogger("sip.wal")

# Pages of log (4 KiB each) past which a committing connection checkpoints by itself: only
# reached if the background thread falls behind (or is not running, e.g. a stopped process).
FALLBACK_PAGES = 16_000
INTERVAL_SECONDS = 0.2

_threads: dict[str, WalCheckpointer] = {}
# Re-entrant: a collection run by an allocation under it may stop a checkpointer.
_making = threading.RLock()


def defer_checkpoints(connection: Any) -> None:
    """Leaves this connection's commits to sync the log only: checkpoints are the thread's."""
    connection.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")


class WalCheckpointer:
    """Checkpoints one database file every `interval` seconds on a connection of its own."""

    def __init__(self, path: str, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # those that copied pages, for tests and benchmarks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {path}")
        self._thread.daemon = True  # never keeps a stopping server alive

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        """Started and not stopped, or about to start (a thread not yet started has no id)."""
        if self._stop.is_set():
            return False
        return self._thread.ident is None or self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def checkpoint(self, connection: sqlite3.Connection) -> int:
        """Copies what the log holds into the database file; the pages copied."""
        busy, _, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if copied > 0:
            self.checkpoints += 1
        return int(copied) if not busy else 0

    def _run(self) -> None:
        connection = None
        while not self._stop.wait(self.interval):
            if not os.path.exists(self.path):  # removed (a test's folder): nothing to keep
                break
            try:
                if connection is None:
                    connection = sqlite3.connect(self.path, timeout=1, isolation_level=None)
                    # Syncs the database file once the pages are in, before the log is reused.
                    connection.execute("PRAGMA synchronous=FULL")
                self.checkpoint(connection)
            except sqlite3.Error as error:  # the connections' fallback still checkpoints
                log.warning("WAL checkpoint of %s failed: %s", self.path, error)
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()


def checkpointing(path: str) -> WalCheckpointer:
    """The process's checkpointer of the database file at `path`, started on first use."""
    with _making:
        found = _threads.get(path)
        if found is not None and found.running():
            return found
    # Made and started outside the lock. Making a thread allocates, and any allocation may
    # run a garbage collection whose `Application.__del__` stops a checkpointer in this very
    # thread (`stop_checkpointing` takes the lock: seen hanging a request, stop 28); and
    # `Thread.start` waits for the new thread, which may itself collect (stop 27).
    made = WalCheckpointer(path)
    with _making:
        found = _threads.get(path)
        if found is not None and found.running():
            return found  # made meanwhile by another thread: this one is never started
        _threads[path] = made
    made.start()
    return made


def stop_checkpointing(path: str) -> None:
    with _making:
        found = _threads.pop(path, None)
    if found is not None:
        found.stop()
