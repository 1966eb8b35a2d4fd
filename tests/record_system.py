"""A record system's notification endpoint (rest-hook) on a loopback port, as the
subscription tests and the latency bench use it: it keeps every notification Bundle it is
sent, when it arrived, and whether the service's signature over it verified; told to, it
answers 503 as a receiver that is down."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.common.subscriptions.signing import SIGNATURE_HEADER, verify_detached


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    bundle: dict[str, Any]
    signature_verified: bool | None  # None: no keys to verify with
    wall_time: float = 0.0  # time.time() on arrival (the latency bench's clock)

    def status(self) -> dict[str, Any]:
        return self.bundle["entry"][0]["resource"]

    def value(self, name: str) -> Any:
        for parameter in self.status()["parameter"]:
            if parameter["name"] == name:
                return next(v for k, v in parameter.items() if k.startswith("value"))
        return None

    @property
    def kind(self) -> str:
        return self.value("type")

    @property
    def subscription(self) -> str:
        return self.value("subscription")["reference"].rpartition("/")[2]

    def events(self) -> list[Notified]:
        return notified_in(self.bundle, self.subscription)


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


class _Server(ThreadingHTTPServer):
    # A hundred subscriptions open a hundred connections at once: the standard library's
    # backlog of 5 would drop most of their first packets (a second's retransmission).
    request_queue_size = 256
    daemon_threads = True


class RecordSystem:
    def __init__(self, public_keys: dict[str, Any] | None = None) -> None:
        self.public_keys = public_keys
        self.received: list[Received] = []
        self.down = False
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                signature = self.headers.get(SIGNATURE_HEADER, "")
                verified = None
                if receiver.public_keys is not None:
                    verified = verify_detached(signature, body, receiver.public_keys)
                with receiver._lock:
                    receiver.received.append(
                        Received(time.monotonic(), json.loads(body), verified, time.time())
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

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
        self._server.shutdown()
        self._server.server_close()


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
