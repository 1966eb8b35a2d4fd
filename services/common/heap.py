"""The process's heap as a server runs it."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """What the process made to start (its modules, the FHIR models, the app) is left out of
    the garbage collector's full passes from now on (`gc.freeze`, as the CPython
    documentation advises for servers): it lives as long as the process, and walking it
    each time paused every thread for 120-160 ms every few seconds under load, which was
    the tail of every latency the service measures (bench/notification_latency.py)."""
    gc.collect()
    gc.freeze()
