"""JSON Schema of every stored event type, published in contracts/event_schemas/.

    python -m services.ops.event_schemas          # writes the files
    python -m services.ops.event_schemas --check  # exit 1 if they differ from the code

A schema describes an event's stored payload as the event feed shows it: the event's own
fields, with datetimes, UUIDs and decimals wrapped as the library's JSON transcoder writes
them ({"_type_": ..., "_data_": ...}). Each file is named for the event's class version; an
event type that changes gets a new version, and older versions are upcast on reading (see
contracts/event_schemas/README.md), never rewritten.
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import get_topic
from pydantic import TypeAdapter

from contracts.canonical import CANONICAL_BASE
from services.common.access_log import AccessRecord
from services.common.personal_data.erasure import Erasure
from services.consent.domain import Consent
from services.sip.discharge.stay import Stay
from services.sip.domain import Plan
from services.sip.messages.message import Message

SCHEMA_FOLDER = Path(__file__).resolve().parents[2] / "contracts" / "event_schemas"
AGGREGATES = {
    "sip": [Plan, Stay, Message, AccessRecord, Erasure],
    "consent": [Consent, AccessRecord, Erasure],
}
ENVELOPE = {"originator_id", "originator_version", "originator_id_type"}
# The library's base event classes of every aggregate; ours store only their subclasses.
UNSTORED_BASES = {"Event", "Created"}


def event_classes(aggregate: type) -> list[type]:
    return sorted(
        (value for value in vars(aggregate).values()
         if isinstance(value, type) and issubclass(value, CanMutateAggregate)
         and value.__name__ not in UNSTORED_BASES),
        key=lambda cls: cls.__qualname__,
    )  # fmt: skip


def schema_of(event_class: type, service: str) -> dict[str, Any]:
    hints = typing.get_type_hints(event_class)
    properties = {
        name: _transcoded(TypeAdapter(hint).json_schema())
        for name, hint in hints.items()
        if name not in ENVELOPE and typing.get_origin(hint) is not typing.ClassVar
    }
    version = getattr(event_class, "class_version", 1)
    if version > 1:  # the library stores the version of any event past its first
        properties["class_version"] = {"const": version}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{CANONICAL_BASE}/event-schemas/{service}/{event_class.__qualname__}/v{version}",
        "title": get_topic(event_class),
        "x-class-version": version,
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
    }


def _transcoded(schema: dict[str, Any]) -> dict[str, Any]:
    """Replaces the plain JSON form of transcoded types by the stored wrapper."""
    kinds = {"date-time": "datetime_iso", "date": "date_iso", "uuid": "uuid_hex"}
    if schema.get("type") == "string" and schema.get("format") in kinds:
        kind = kinds[schema["format"]]
        return {
            "type": "object",
            "properties": {"_type_": {"const": kind}, "_data_": {"type": "string"}},
            "required": ["_type_", "_data_"],
        }
    return {key: _walk(value) for key, value in schema.items()}


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return _transcoded(value)
    if isinstance(value, list):
        return [_walk(item) for item in value]
    return value


def generate() -> dict[Path, str]:
    files = {}
    for service, aggregates in AGGREGATES.items():
        for aggregate in aggregates:
            for event_class in event_classes(aggregate):
                schema = schema_of(event_class, service)
                name = f"{event_class.__qualname__}.v{schema['x-class-version']}.json"
                files[SCHEMA_FOLDER / service / name] = json.dumps(schema, indent=2) + "\n"
    return files


def published_schemas() -> dict[Path, str]:
    """The published schemas of the current event versions (older versions stay published
    for the events stored before a change, and are not compared)."""
    current = generate()
    current_names = {path.name.rsplit(".v", 1)[0] for path in current}
    return {
        path: path.read_text()
        for path in SCHEMA_FOLDER.glob("*/*.json")
        if path in current or path.name.rsplit(".v", 1)[0] not in current_names
    }


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        if published_schemas() != files:
            print("contracts/event_schemas differ from the code: run "
                  "python -m services.ops.event_schemas")  # fmt: skip
            return 1
        return 0
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    print(f"wrote {len(files)} schemas to {SCHEMA_FOLDER}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
