"""SQLite's WAL checkpoints off the request path (services/common/wal_checkpoints.py,
docs/decisions/0011): the service's connections leave checkpointing to a background thread,
a commit still syncs its log before it returns, and what was committed is in the database
file once the thread has run, and still there when the database is opened again."""

import sqlite3
import threading
import time
from datetime import UTC, datetime

from services.common.access_log import AccessRecord
from services.common.migrations.runner import migrate_service
from services.common.persistence import read_model_engine, storage_for
from services.common.wal_checkpoints import (
    FALLBACK_PAGES,
    WalCheckpointer,
    checkpointing,
    stop_checkpointing,
)
from services.ops.offline import open_service

ACTOR = {"subject": "test", "role": "integration", "organization": "SE2321000032-R1"}


def record(detail: str) -> AccessRecord:
    return AccessRecord(
        interaction="read", action="R", outcome="0", actor=ACTOR, patient=None,
        custodian=None, entity=None, consents=[], query=None, detail=detail,
        recorded_at=datetime.now(UTC),
    )  # fmt: skip


def wal_frames(path: str) -> tuple[int, int]:
    """(frames in the log, frames of it already in the database file), asked without copying."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_autocheckpoint=0")
        _, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames, copied


def test_commits_leave_the_checkpoint_to_the_background_thread(tmp_path):
    migrate_service("consent", None, tmp_path)
    with open_service("consent", tmp_path, None) as service:
        application = service.application
        path = application.recorder.datastore.pool.db_name
        with application.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert cursor.fetchone()[0] == FALLBACK_PAGES  # a commit no longer checkpoints
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL: each commit still syncs its log
        engine = read_model_engine(storage_for("consent", None, tmp_path))
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
                FALLBACK_PAGES
            )
        engine.dispose()

        checkpointer = checkpointing(path)
        before = checkpointer.checkpoints
        saved = [record(f"check {number}") for number in range(50)]
        for one in saved:
            application.save(one)
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints > before, "the thread copied the log into the file"
        frames, copied = wal_frames(path)
        assert frames == copied  # nothing committed is left only in the log
    # Opened again (as after a restart), every saved record is there.
    with open_service("consent", tmp_path, None) as service:
        for one in saved:
            assert service.application.repository.get(one.id).detail == one.detail


def test_closing_the_service_stops_its_checkpointer(tmp_path):
    migrate_service("consent", None, tmp_path)
    with open_service("consent", tmp_path, None) as service:
        service.application.save(record("one"))
        path = service.application.recorder.datastore.pool.db_name
        running = checkpointing(path)
        assert running._thread.is_alive()
    running._thread.join(timeout=5)
    assert not running._thread.is_alive()


def test_a_checkpointer_starting_while_another_is_stopped_waits_for_nothing(tmp_path, monkeypatch):
    """A thread starting may run a garbage collection, and an `Application.__del__` in it
    stops another file's checkpointer (`stop_checkpointing`) before `Thread.start` returns.
    Seen hanging a test run: the checkpointer was started while the lock was held, so the
    stop waited for the start and the start for the stop. Played here with a second thread
    stopping the other checkpointer while the first starts."""
    other = str(tmp_path / "other.sqlite")
    sqlite3.connect(other).close()
    checkpointing(other)
    really_start = WalCheckpointer.start
    stopped = threading.Event()

    def start_as_a_collection_would(self):
        collector = threading.Thread(target=lambda: (stop_checkpointing(other), stopped.set()))
        collector.start()
        collector.join(timeout=3)
        really_start(self)

    monkeypatch.setattr(WalCheckpointer, "start", start_as_a_collection_would)
    path = str(tmp_path / "service.sqlite")
    sqlite3.connect(path).close()
    started = checkpointing(path)
    assert stopped.is_set(), "the other checkpointer's stop waited for this one's start"
    assert started.running() and checkpointing(path) is started
    stop_checkpointing(path)
    assert not started.running()


def test_a_collection_while_a_checkpointer_is_made_stops_another_in_the_same_thread(
    tmp_path, monkeypatch
):
    """Making a checkpointer's thread allocates; a garbage collection that allocation sets
    off may run an `Application.__del__` in the same thread, which stops another file's
    checkpointer (`stop_checkpointing`). Seen hanging a request (stop 28): the checkpointer
    was made while the registry's lock was held, and the stop waited for that lock in the
    thread holding it. Played by making the constructor stop the other, as the collection
    would; the maker runs in a thread of its own so that a hang fails the test."""
    other = str(tmp_path / "other.sqlite")
    sqlite3.connect(other).close()
    stopped = checkpointing(other)
    really_make = WalCheckpointer.__init__

    def make_as_a_collection_would(self, *args, **kwargs):
        stop_checkpointing(other)
        really_make(self, *args, **kwargs)

    monkeypatch.setattr(WalCheckpointer, "__init__", make_as_a_collection_would)
    path = str(tmp_path / "service.sqlite")
    sqlite3.connect(path).close()
    made = []
    maker = threading.Thread(target=lambda: made.append(checkpointing(path)), daemon=True)
    maker.start()
    maker.join(timeout=5)
    assert made, "making a checkpointer waited for its own thread's stop"
    assert not stopped.running()
    assert made[0].running() and checkpointing(path) is made[0]
    stop_checkpointing(path)
    assert not made[0].running()
