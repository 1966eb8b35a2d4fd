"""A subscription topic as a service declares it, what one of its events means for
subscribers, and the topic as a FHIR SubscriptionTopic resource."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.subscription_topics import topic_canonical

# Where a topic's notifications come from: the event log, or the worker's time-driven check.
EVENTS, TIMED = "events", "timed"


@dataclass(frozen=True)
class Topic:
    code: str
    title: str
    description: str
    resource_type: str
    source: str = EVENTS
    parts: tuple[str, ...] = ()  # what `part=` may name; empty: no part filter

    @property
    def canonical(self) -> str:
        return topic_canonical(self.code)

    @property
    def filters(self) -> tuple[str, ...]:
        return ("organization", "patient", *(("part",) if self.parts else ()))


@dataclass(frozen=True)
class Occurrence:
    """What one stored event means for one topic: which part it concerns, and which
    organisations it is told to (None: every organisation that may read the resource)."""

    topic: str
    part: str | None = None
    told_to: frozenset[str] | None = None


# (event name, its payload, the resource as it is now) -> the topics' occurrences
Classifier = Callable[[str, Mapping[str, Any], Any], list[Occurrence]]
# () -> (topic, aggregate id, key) of each time-driven happening due now, noted once per key
TimedCheck = Callable[[], list[tuple[str, str, str]]]


def topic_resource(topic: Topic) -> dict[str, Any]:
    """The topic as an R4B SubscriptionTopic."""
    filters = [
        {"description": "The subscriber's own organisation (HSA-id); the only one allowed",
         "filterParameter": "organization"},
        {"description": "One person: system|personnummer", "filterParameter": "patient"},
    ]  # fmt: skip
    if topic.parts:
        filters.append(
            {"description": f"Which part of the plan, comma-separated: {', '.join(topic.parts)}",
             "filterParameter": "part"}
        )  # fmt: skip
    return {
        "resourceType": "SubscriptionTopic",
        "id": topic.code,
        "url": topic.canonical,
        "title": topic.title,
        "status": "active",
        "description": topic.description,
        "resourceTrigger": [{"description": topic.description, "resource": topic.resource_type}],
        "canFilterBy": [{"resource": topic.resource_type, **f} for f in filters],
        "notificationShape": [{"resource": topic.resource_type}],
    }


def transcoded_text(value: Any) -> str:
    """A text of an event's stored payload (the transcoder may have wrapped it)."""
    if isinstance(value, dict) and "_data_" in value:
        value = value["_data_"]
    return value if isinstance(value, str) else ""
