"""One Bundle entry sent through the service's own app, as the single request it stands for:
the same middleware, routes, permission checks, disclosure, consent gate, access log and
conditional headers, never a second copy of them. The caller's credentials and the address
it reached the service by go with it; nothing else of the outer request does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import anyio
from fastapi import Request
from starlette.types import Message

from services.common.bundles.entries import BundleEntry
from services.common.fhir_api import FHIR_JSON

# What of the outer request each entry carries: who calls, how they reached the service (so a
# Location is absolute as the client sees it, and the request keeps its id), and what they
# prefer each entry to answer (`Prefer: return=minimal` leaves the entries' resources out).
_PASSED_ON = {
    b"authorization",
    b"prefer",
    b"host",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-proto",
    b"x-forwarded-prefix",
    b"x-request-id",
}


@dataclass(frozen=True)
class EntryAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    resource: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300 or self.status == 304  # 304: a read, not modified


def _scope(request: Request, entry: BundleEntry, body: bytes) -> dict[str, Any]:
    outer = request.scope
    path, _, query = entry.url.partition("?")
    headers = [(name, value) for name, value in outer["headers"] if name in _PASSED_ON]
    headers.append((b"accept", FHIR_JSON.encode()))
    if body:
        headers += [(b"content-type", FHIR_JSON.encode()), (b"content-length", b"%d" % len(body))]
    headers += [(name.lower().encode(), value.encode()) for name, value in entry.headers.items()]
    prefix = f"{outer.get('root_path', '')}/fhir/"
    return {
        "type": "http",
        "asgi": outer.get("asgi", {"version": "3.0"}),
        "http_version": outer.get("http_version", "1.1"),
        "method": entry.method,
        "scheme": outer.get("scheme", "http"),
        "server": outer.get("server"),
        "client": outer.get("client"),
        "root_path": outer.get("root_path", ""),
        "path": prefix + unquote(path),
        "raw_path": (prefix + path).encode(),
        "query_string": query.encode(),
        "headers": headers,
        "state": {},
    }


async def dispatch(request: Request, entry: BundleEntry) -> EntryAnswer:
    """The entry's answer, as the single request would have had it."""
    body = b"" if entry.resource is None else json.dumps(entry.resource).encode()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()  # the client is still there: nothing more to say
        raise AssertionError("unreachable")

    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(_scope(request, entry, body), receive, send)
    raw_headers = start.get("headers", [])
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
    raw = b"".join(chunks)
    resource = None
    if raw and "json" in headers.get("content-type", ""):
        parsed = json.loads(raw)
        resource = parsed if isinstance(parsed, dict) else None
    return EntryAnswer(start.get("status", 500), headers, resource)
