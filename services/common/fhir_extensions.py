"""Extensions both services put on resources (canonical URLs in contracts.canonical)."""

from __future__ import annotations

from typing import Any

from contracts.canonical import EXT_RECORDED_BY
from contracts.identifiers import HSA_ID_SYSTEM


def recorded_by_extension(actor: dict[str, Any], url: str = EXT_RECORDED_BY) -> dict[str, Any]:
    parts = [{"url": "subject", "valueString": actor["subject"]}]
    parts.append({"url": "role", "valueCode": actor["role"]})
    for key in ("organization", "unit"):
        if actor.get(key):
            parts.append(
                {"url": key, "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": actor[key]}}
            )
    return {"url": url, "extension": parts}
