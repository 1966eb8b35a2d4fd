"""The notification Bundle (Subscriptions Backport IG, R4 form): a `history` Bundle whose
first entry is the subscription's status as Parameters, then the focus resources when the
payload is `full-resource`. References are relative (`CarePlan/{id}`): the worker has no
request to take the service's public address from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from contracts.canonical import CANONICAL_BASE
from contracts.subscription_topics import (
    BACKPORT_NOTIFICATION_PROFILE,
    BACKPORT_STATUS_PROFILE,
    topic_canonical,
)
from services.common.fhir_time import fhir_instant, now
from services.common.subscriptions.store import NotificationRow, SubscriptionRow

EXT_PLAN_PART = f"{CANONICAL_BASE}/StructureDefinition/notification-part"
# Bundle.type of each kind: what the receiver is sent, and what $status and $events answer.
HANDSHAKE, HEARTBEAT, EVENT = "handshake", "heartbeat", "event-notification"
QUERY_STATUS, QUERY_EVENT = "query-status", "query-event"


@dataclass(frozen=True)
class Told:
    """One numbered notification as the subscriber is told it now: with its focus only if
    the subscriber may read the resource at this moment, with the resource only for a
    full-resource payload."""

    notification: NotificationRow
    shown: bool
    resource: dict[str, Any] | None = None


def status_parameters(row: SubscriptionRow, kind: str, told: list[Told]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{row.id}"}},
        {"name": "topic", "valueCanonical": topic_canonical(row.topic)},
        {"name": "status", "valueCode": row.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(row.events_count)},
    ]
    parameters += [_event(item) for item in told]
    if row.last_error and kind in (QUERY_STATUS, HANDSHAKE):
        parameters.append({"name": "error", "valueCodeableConcept": {"text": row.last_error}})
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [BACKPORT_STATUS_PROFILE]},
        "parameter": parameters,
    }


def _event(item: Told) -> dict[str, Any]:
    notification = item.notification
    parts: list[dict[str, Any]] = [
        {"name": "event-number", "valueString": str(notification.event_number)},
        {"name": "timestamp", "valueInstant": notification.occurred_at},
    ]
    event: dict[str, Any] = {"name": "notification-event", "part": parts}
    if not item.shown:  # no longer readable: the number only, so the count stays whole
        return event
    reference = f"{notification.focus_type}/{notification.focus_id}"
    parts.append({"name": "focus", "valueReference": {"reference": reference}})
    if notification.part:
        event["extension"] = [{"url": EXT_PLAN_PART, "valueCode": notification.part}]
    return event


def notification_bundle(row: SubscriptionRow, kind: str, told: list[Told]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": status_parameters(row, kind, told),
            "request": {"method": "GET", "url": f"Subscription/{row.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    for item in told:
        if item.shown and item.resource is not None:
            resource = item.resource
            entries.append(
                {
                    "fullUrl": f"{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "request": {
                        "method": "PUT",
                        "url": f"{resource['resourceType']}/{resource['id']}",
                    },
                    "response": {"status": "200"},
                }
            )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [BACKPORT_NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": fhir_instant(now()),
        "entry": entries,
    }
