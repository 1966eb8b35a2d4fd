"""A text the services erased under a retention rule, as the pages show it: in Swedish, with
its date and rule, and styled as an erasure, never as what someone wrote. The services mark
such a string element with data-absent-reason `masked` and the `personal-data-erased`
extension on its `_element` (docs/decisions/0007); its value is the services' English
placeholder, replaced here."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from contracts.canonical import DATA_ABSENT_REASON, EXT_ERASED
from services.web import texts, times


class ErasedShown(str):
    """The Swedish words for an erased text: a text wherever the page uses it as one, and an
    element marked as erased where a template writes it."""

    def __html__(self) -> Markup:
        return Markup('<span class="erased">{}</span>').format(str(self))


def shown(element: Any) -> ErasedShown | None:
    """The words for the string whose `_element` this is, if it marks an erasure."""
    if not isinstance(element, dict):
        return None
    by_url = {e.get("url"): e for e in element.get("extension", []) if isinstance(e, dict)}
    if by_url.get(DATA_ABSENT_REASON, {}).get("valueCode") != "masked" or EXT_ERASED not in by_url:
        return None
    parts = {p.get("url"): p for p in by_url[EXT_ERASED].get("extension", [])}
    rule = parts.get("rule", {}).get("valueString", "")
    date = times.local_date(parts.get("erasedAt", {}).get("valueDateTime"))
    return ErasedShown(
        texts.ERASED_TEXT.format(date=date, rule=texts.RETENTION_RULE.get(rule, rule))
    )


def with_erasures_shown(content: Any) -> Any:
    """The FHIR JSON with each string marked as erased replaced by its `ErasedShown`."""
    if isinstance(content, list):
        return [with_erasures_shown(value) for value in content]
    if not isinstance(content, dict):
        return content
    result = {}
    for name, value in content.items():
        marks = content.get(f"_{name}") if not name.startswith("_") else None
        if isinstance(value, str) and (words := shown(marks)) is not None:
            result[name] = words
        elif isinstance(value, list) and isinstance(marks, list):
            result[name] = [
                words if (words := shown(mark)) is not None else with_erasures_shown(item)
                for item, mark in zip(value, marks + [None] * len(value), strict=False)
            ]
        else:
            result[name] = with_erasures_shown(value)
    return result
