"""Extensions both services put on resources (canonical URLs in contracts.canonical)."""

from __future__ import annotations

from typing import Any

from contracts.canonical import DATA_ABSENT_REASON, EXT_ERASED, EXT_RECORDED_BY
from contracts.identifiers import HSA_ID_SYSTEM
from services.common.personal_data.envelope import Erased, ErasedText


def recorded_by_extension(actor: dict[str, Any], url: str = EXT_RECORDED_BY) -> dict[str, Any]:
    parts = [{"url": "subject", "valueString": actor["subject"]}]
    parts.append({"url": "role", "valueCode": actor["role"]})
    for key in ("organization", "unit"):
        if actor.get(key):
            parts.append(
                {"url": key, "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": actor[key]}}
            )
    return {"url": url, "extension": parts}


def erased_element(erased: Erased) -> dict[str, Any]:
    """The `_element` of a string whose text was erased: FHIR's data-absent-reason `masked`,
    and when and under which rule (docs/decisions/0007)."""
    return {
        "extension": [
            {"url": DATA_ABSENT_REASON, "valueCode": "masked"},
            {
                "url": EXT_ERASED,
                "extension": [
                    {"url": "erasedAt", "valueDateTime": erased.erased_at},
                    {"url": "rule", "valueString": erased.rule},
                ],
            },
        ]
    }


def with_erasures_marked(content: Any) -> Any:
    """The JSON with each erased text (an `ErasedText` the record was built with) marked by
    `erased_element` on its `_element`, so a record system tells it from real text. Content
    with none is returned as it is, not copied (every FHIR answer passes here)."""
    if isinstance(content, list):
        items = [with_erasures_marked(value) for value in content]
        return items if any(a is not b for a, b in zip(items, content, strict=True)) else content
    if not isinstance(content, dict):
        return content
    marked: dict[str, Any] | None = None
    for name, value in content.items():
        if isinstance(value, ErasedText):
            element: Any = erased_element(value.erased)
        elif isinstance(value, list) and any(isinstance(v, ErasedText) for v in value):
            element = [
                erased_element(v.erased) if isinstance(v, ErasedText) else None for v in value
            ]
        else:
            element = None
            inner = with_erasures_marked(value) if isinstance(value, dict | list) else value
            if inner is not value:
                marked = dict(content) if marked is None else marked
                marked[name] = inner
        if element is not None:
            marked = dict(content) if marked is None else marked
            marked[f"_{name}"] = element
    return content if marked is None else marked
