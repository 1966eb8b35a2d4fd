"""A Subscription (Backport IG, R4 form) as a record system sends it, checked whole before
anything is written, and as the service shows it to its owner.

    criteria            the topic's canonical URL (contracts/subscription_topics.py)
    _criteria           backport-filter-criteria: `CarePlan?patient=system|value&part=need`
                        (`organization=` may name only the caller's own organisation)
    channel.type        rest-hook; channel.endpoint: see endpoints.py
    channel._payload    backport-payload-content: id-only (default) or full-resource
    extension           backport-heartbeat-period (seconds), backport-timeout (1-30 s)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B.subscription import Subscription

from contracts.actor import Actor
from contracts.identifiers import InvalidIdentifier, parse_person_identifier
from contracts.subscription_topics import (
    BACKPORT_FILTER_CRITERIA,
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_SUBSCRIPTION_PROFILE,
    BACKPORT_TIMEOUT,
)
from services.common.fhir_api import FhirError, parse_resource
from services.common.subscriptions.endpoints import EndpointRefused, check_endpoint
from services.common.subscriptions.store import SubscriptionRow
from services.common.subscriptions.topics import Topic

PAYLOADS = ("id-only", "full-resource")
DEFAULT_TIMEOUT_SECONDS = 5
MIN_HEARTBEAT_SECONDS = 1
MAX_HEARTBEAT_SECONDS = 86_400


@dataclass(frozen=True)
class Requested:
    """What a record system asked for, checked."""

    topic: Topic
    person: tuple[str, str] | None
    parts: tuple[str, ...] | None
    endpoint: str
    payload: str
    heartbeat_seconds: int | None
    timeout_seconds: int
    reason: str
    status: str  # requested, or off (a subscription paused by its owner)


def refused(expression: str, diagnostics: str, status: int = 422) -> FhirError:
    return FhirError(
        status, "invalid" if status == 422 else "structure", diagnostics, expression=expression
    )


def subscription_from_fhir(
    body: dict[str, Any], topics: Iterable[Topic], actor: Actor, allowances: Iterable[str]
) -> Requested:
    parse_resource(Subscription, body)  # the structure; the rules follow
    topic = _topic(body.get("criteria"), topics)
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise refused("Subscription.channel.type", "the channel type is rest-hook")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str):
        raise refused("Subscription.channel.endpoint", "a rest-hook needs an endpoint")
    try:
        check_endpoint(endpoint, allowances)
    except EndpointRefused as refusal:
        raise refused("Subscription.channel.endpoint", str(refusal)) from None
    if channel.get("payload") not in (None, "application/fhir+json"):
        raise refused("Subscription.channel.payload", "notifications are application/fhir+json")
    person, parts = _filters(body, topic, actor)
    status = body.get("status")
    if status not in ("requested", "active", "off"):
        raise refused("Subscription.status", "a new or changed subscription is requested or off")
    return Requested(
        topic=topic,
        person=person,
        parts=parts,
        endpoint=endpoint,
        payload=_payload(channel),
        heartbeat_seconds=_seconds(
            body, BACKPORT_HEARTBEAT_PERIOD, MIN_HEARTBEAT_SECONDS, MAX_HEARTBEAT_SECONDS
        ),
        timeout_seconds=_seconds(body, BACKPORT_TIMEOUT, 1, 30) or DEFAULT_TIMEOUT_SECONDS,
        reason=str(body.get("reason") or "")[:1024],
        status="off" if status == "off" else "requested",
    )


def _topic(criteria: Any, topics: Iterable[Topic]) -> Topic:
    for topic in topics:
        if criteria in (topic.canonical, topic.code):
            return topic
    known = ", ".join(topic.canonical for topic in topics)
    raise refused("Subscription.criteria", f"criteria names a topic this server has: {known}")


def _extensions(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict):
        return []
    return [
        e for e in element.get("extension") or [] if isinstance(e, dict) and e.get("url") == url
    ]


def _filters(
    body: dict[str, Any], topic: Topic, actor: Actor
) -> tuple[tuple[str, str] | None, tuple[str, ...] | None]:
    person, parts = None, None
    for extension in _extensions(body.get("_criteria"), BACKPORT_FILTER_CRITERIA):
        resource_type, _, query = str(extension.get("valueString") or "").partition("?")
        if resource_type != topic.resource_type:
            raise refused(
                "Subscription.criteria", f"a filter reads {topic.resource_type}?name=value"
            )
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "organization" and value != actor.organization:
                raise refused(
                    "Subscription.criteria",
                    "organization= names the subscriber's own organisation only",
                )
            elif name == "patient":
                person = _person(value)
            elif name == "part" and topic.parts:
                parts = _parts(value, topic)
            elif name not in ("organization",):
                raise refused(
                    "Subscription.criteria",
                    f"the topic filters by {', '.join(topic.filters)}, not {name[:40]}",
                )
    return person, parts


def _person(value: str) -> tuple[str, str]:
    system, _, identifier = value.rpartition("|")
    try:
        parsed = parse_person_identifier(system, identifier)
    except InvalidIdentifier as error:
        raise refused("Subscription.criteria", f"patient=system|value: {error}") from None
    return parsed.system, parsed.value


def _parts(value: str, topic: Topic) -> tuple[str, ...]:
    parts = tuple(part for part in value.split(",") if part)
    unknown = [part for part in parts if part not in topic.parts]
    if not parts or unknown:
        raise refused("Subscription.criteria", f"part is one or more of {', '.join(topic.parts)}")
    return parts


def _payload(channel: dict[str, Any]) -> str:
    found = _extensions(channel.get("_payload"), BACKPORT_PAYLOAD_CONTENT)
    payload = found[0].get("valueCode") if found else "id-only"
    if payload not in PAYLOADS:
        raise refused(
            "Subscription.channel.payload", f"the payload content is one of {', '.join(PAYLOADS)}"
        )
    return str(payload)


def _seconds(body: dict[str, Any], url: str, least: int, most: int) -> int | None:
    found = _extensions(body, url)
    if not found:
        return None
    value = found[0].get("valueUnsignedInt")
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        name = url.rpartition("/")[2]
        raise refused(
            "Subscription.extension", f"{name} is a whole number of seconds, {least} to {most}"
        )
    return value


def subscription_to_fhir(
    row: SubscriptionRow, topic: Topic, person: str | None = None
) -> dict[str, Any]:
    """`person`: the number the person filter names, opened (the row keeps its index)."""
    filters = []
    if person:
        filters.append(f"patient={row.person_system}|{person}")
    if row.parts:
        filters.append(f"part={row.parts}")
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": row.id,
        "meta": {
            "versionId": str(row.version),
            "lastUpdated": row.last_updated,
            "profile": [BACKPORT_SUBSCRIPTION_PROFILE],
        },
        "status": row.status,
        "reason": row.reason,
        "criteria": topic.canonical,
        "channel": {
            "type": "rest-hook",
            "endpoint": row.endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": row.payload}]
            },
        },
        "extension": [{"url": BACKPORT_TIMEOUT, "valueUnsignedInt": row.timeout_seconds}],
    }
    if filters:
        criteria = f"{topic.resource_type}?{'&'.join(filters)}"
        resource["_criteria"] = {
            "extension": [{"url": BACKPORT_FILTER_CRITERIA, "valueString": criteria}]
        }
    if row.heartbeat_seconds:
        resource["extension"].append(
            {"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": row.heartbeat_seconds}
        )
    if row.last_error:
        resource["error"] = row.last_error
    return resource
