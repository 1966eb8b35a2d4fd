"""Real HTTP servers for tests: each service's app served by uvicorn on a loopback port."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

# The tests talk plain HTTP on loopback, so TLS is never used; sharing one context spares each
# new httpx.Client the ~50 ms of loading the CA bundle (a test makes dozens of clients).
_TLS = ssl.create_default_context()


def http_client(base_url: str = "", **options) -> httpx.Client:
    """A client of a test server: plain HTTP, the tests' timeout, no CA bundle of its own."""
    return httpx.Client(base_url=base_url, verify=_TLS, **{"timeout": 10, **options})


_serving: dict[str, uvicorn.Server] = {}


def ask_to_stop(*urls: str) -> None:
    """Tells servers that `serve` runs to stop, without waiting: several then stop at once
    (each takes up to a tenth of a second to notice)."""
    for url in urls:
        _serving[url].should_exit = True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serves the app in a thread of this process; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    _serving[url] = server
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        del _serving[url]


def wait_until(predicate, seconds: float = 10.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False
