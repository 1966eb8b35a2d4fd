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
    with none is returned as it is, not copied (every FHIR answer passes here), and not even
    looked through while this process has built no `ErasedText`."""
    return _marked(content) if ErasedText.any_made else content


def _marked(content: Any) -> Any:
    kind = type(content)
    if kind is list:
        items = [_marked(v) if type(v) in _CONTAINERS else v for v in content]
        return items if any(a is not b for a, b in zip(items, content, strict=True)) else content
    if kind is not dict:
        return content
    marked: dict[str, Any] | None = None
    for name, value in content.items():
        value_kind = type(value)
        if value_kind not in _MAY_HOLD:
            continue
        element: Any = None
        if value_kind is ErasedText:
            element = erased_element(value.erased)
        else:
            inner = _marked(value)
            if inner is not value:
                marked = dict(content) if marked is None else marked
                marked[name] = inner
            if value_kind is list and any(type(v) is ErasedText for v in value):
                element = [
                    erased_element(v.erased) if type(v) is ErasedText else None for v in value
                ]
        if element is not None:
            marked = dict(content) if marked is None else marked
            marked[f"_{name}"] = element
    return content if marked is None else marked


_CONTAINERS = (dict, list)
_MAY_HOLD = (dict, list, ErasedText)
