"""A record system's notification endpoint (rest-hook) on a loopback port, as the
subscription tests and the latency bench use it: it keeps every notification Bundle it is
sent, when it arrived, and whether the service's signature over it verified; told to, it
answers 503 as a receiver that is down."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11

from services.common.subscriptions.signing import SIGNATURE_HEADER, verify_detached


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    body: bytes  # as it came: read as JSON when asked, so that ten thousand notifications
    # kept are ten thousand objects, not millions for the garbage collector to walk (whose
    # pauses the latency bench would measure as the service's)
    signature_verified: bool | None  # None: no keys to verify with
    wall_time: float = 0.0  # time.time() on arrival (the latency bench's clock)
    kind: str = ""  # handshake | heartbeat | event-notification | ...
    subscription: str = ""  # the subscription's id
    event_count: int = 0  # the notification events the bundle carries

    @property
    def bundle(self) -> dict[str, Any]:
        return json.loads(self.body)

    def status(self) -> dict[str, Any]:
        return self.bundle["entry"][0]["resource"]

    def value(self, name: str) -> Any:
        return _value(self.status(), name)

    def events(self) -> list[Notified]:
        return notified_in(self.bundle, self.subscription)


def _value(status: dict[str, Any], name: str) -> Any:
    for parameter in status["parameter"]:
        if parameter["name"] == name:
            return next(v for k, v in parameter.items() if k.startswith("value"))
    return None


@dataclass(frozen=True)
class Notified:
    subscription: str
    number: int
    focus: str | None
    part: str | None
    resource: dict[str, Any] | None


def notified_in(bundle: dict[str, Any], subscription: str) -> list[Notified]:
    """The notification events of a Bundle (a delivery or a `$events` answer)."""
    resources = {e["fullUrl"]: e["resource"] for e in bundle["entry"][1:]}
    found = []
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        if parameter["name"] != "notification-event":
            continue
        parts = {p["name"]: p for p in parameter["part"]}
        focus = parts.get("focus", {}).get("valueReference", {}).get("reference")
        part = next((e["valueCode"] for e in parameter.get("extension", [])), None)
        number = int(parts["event-number"]["valueString"])
        found.append(Notified(subscription, number, focus, part, resources.get(focus)))
    return found


class RecordSystem:
    """The receiver runs on an asyncio loop of its own (a thread), parsing HTTP with h11: a
    hundred notifications arriving at once are read as they come, where a thread per
    connection made the receiver the slowest part of what the latency bench measured."""

    def __init__(self, public_keys: dict[str, Any] | None = None) -> None:
        self.public_keys = public_keys
        self.received: list[Received] = []
        self.down = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            # A hundred subscriptions open their connections at once: a small backlog would
            # drop first packets (a second's retransmission each).
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=256),
            self._loop,
        ).result()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/notify"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _next_request(connection, reader)
                if request is None:
                    return
                status = self._receive(request, body)
                answer = h11.Response(status_code=status, headers=[("Content-Length", "0")])
                writer.write(connection.send(answer) + connection.send(h11.EndOfMessage()))
                await writer.drain()
                if connection.our_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _receive(self, request: h11.Request, body: bytes) -> int:
        if request.method != b"POST":
            return 405
        if self.down:
            return 503
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        verified = None
        if self.public_keys is not None:
            signature = headers.get(SIGNATURE_HEADER.lower(), "")
            verified = verify_detached(signature, body, self.public_keys)
        at, wall_time = time.monotonic(), time.time()
        try:
            status = json.loads(body)["entry"][0]["resource"]
        except (ValueError, LookupError, TypeError):
            return 400  # not a notification Bundle
        arrived = Received(
            at, body, verified, wall_time,
            kind=_value(status, "type"),
            subscription=_value(status, "subscription")["reference"].rpartition("/")[2],
            event_count=sum(p["name"] == "notification-event" for p in status["parameter"]),
        )  # fmt: skip
        with self._lock:
            self.received.append(arrived)
        return 200

    def all(self, kind: str | None = None, subscription: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if (kind is None or r.kind == kind)
                and (subscription is None or r.subscription == subscription)
            ]

    def events(self, subscription: str | None = None) -> list[Notified]:
        """Every notification event received, in arrival order (repeats included)."""
        return [
            event
            for received in self.all("event-notification", subscription)
            for event in received.events()
        ]

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shut_down(self) -> None:
        """The listener closed, and the connections the service keeps alive ended."""
        self._server.close()
        connections = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for connection in connections:
            connection.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


async def _next_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request | None, bytes]:
    """The next request on a kept-alive connection and its body; None when the peer closed."""
    request, body = None, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            connection.receive_data(data)
            if not data and request is None:
                return None, b""
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


def subscription(
    topic: str,
    endpoint: str,
    *,
    patient: str | None = None,
    part: str | None = None,
    payload: str | None = None,
    heartbeat: int | None = None,
) -> dict[str, Any]:
    """A Subscription as a record system sends it (Backport IG, R4 form)."""
    from contracts.identifiers import PERSONNUMMER_SYSTEM
    from contracts.subscription_topics import (
        BACKPORT_FILTER_CRITERIA,
        BACKPORT_HEARTBEAT_PERIOD,
        BACKPORT_PAYLOAD_CONTENT,
        topic_canonical,
    )

    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "the record system follows its plans",
        "criteria": topic_canonical(topic),
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }
    filters = [f"patient={PERSONNUMMER_SYSTEM}|{patient}"] if patient else []
    filters += [f"part={part}"] if part else []
    if filters:
        body["_criteria"] = {
            "extension": [
                {"url": BACKPORT_FILTER_CRITERIA, "valueString": f"CarePlan?{'&'.join(filters)}"}
            ]
        }
    if payload:
        body["channel"]["_payload"] = {
            "extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": payload}]
        }
    if heartbeat:
        body["extension"] = [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": heartbeat}]
    return body


def subscribe(client: Any, body: dict[str, Any], seconds: float = 10.0) -> str:
    """Makes the subscription and waits for its handshake to make it active; its id."""
    response = client.post(
        "/fhir/Subscription", json=body, headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 201, response.text
    subscription_id = response.json()["id"]
    deadline = time.monotonic() + seconds
    while client.get(f"/fhir/Subscription/{subscription_id}").json()["status"] != "active":
        assert time.monotonic() < deadline, "the subscription did not become active"
        time.sleep(0.02)
    return subscription_id


def numbered(client: Any, subscription_id: str) -> int:
    """How many notifications the service has numbered for the subscription (`$status`)."""
    status = client.get(f"/fhir/Subscription/{subscription_id}/$status").json()
    parameters = status["entry"][0]["resource"]["parameter"]
    since_start = next(p for p in parameters if p["name"] == "events-since-subscription-start")
    return int(since_start["valueString"])
