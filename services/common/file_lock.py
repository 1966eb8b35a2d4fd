"""A lock held across the processes of one host on a file beside an SQLite database: the
event store's writes (services/common/audit/chain.py) and the subscription worker's claims
(services/common/subscriptions/store.py) of several server processes (`--workers`).

SQLite lets one writer in at a time across processes, but one that finds the file locked
waits by sleeping and trying again (1, 2, 5 ... 100 ms), so two server processes writing at
once lose most of their time asleep. A process that waits on `flock` is woken the moment the
lock is free. Within a process the threading lock takes turns first: `flock` locks belong to
an open file, which every thread of the process would share."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from services.common.data_dir import PRIVATE_FILE

_locks: dict[str, threading.Lock] = {}
_making = threading.Lock()


@contextmanager
def held(path: str) -> Iterator[None]:
    """Holds the lock named by `path` (created if missing) against every thread of this
    process and every process of the host that takes it too."""
    with _making:
        lock = _locks.setdefault(path, threading.Lock())
    with lock:
        # 0600 as everything in the data folder (services/common/data_dir.py), though empty.
        descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the file closes
            yield
        finally:
            os.close(descriptor)
