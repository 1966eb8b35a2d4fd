"""The result parameters of every search and `_history` (R4 search.html §3.1.1.5):
`_count`, `_summary`, `_elements`, `_total` and `_sort`, read once here.

They decide how much of each match an answer shows, never which resources match: a subset
(`_summary=true`, `_elements`) is cut from the resource as the caller may already see it, so
it can only leave out, never reveal, and it is tagged SUBSETTED as R4 asks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from services.common.fhir_api import FhirError, whole_number

MAX_COUNT = 1000
# Accepted on every search and history, none of them a condition on what matches.
RESULT_PARAMETERS = frozenset(
    {"_count", "_summary", "_elements", "_total", "_totalMethod", "_sort", "_cursor", "_format",
     "_pretty"}
)  # fmt: skip
RESULT_PARAMETER_FIELDS = {
    "_count": "matches a page holds: 0 (the total only) to 1000",
    "_summary": "true (summary elements) | data | count (the total only) | false",
    "_elements": "the elements to show, comma-separated (tagged SUBSETTED)",
    "_total": "none | estimate | accurate",
    "_totalMethod": "count | estimate (as fhirpy's count() asks; the total is always exact)",
    "_sort": "comma-separated sort keys, - for descending",
    "_cursor": "a page after the first, as the Bundle's next or previous link gives it",
}
SUMMARIES = ("true", "false", "count", "data")
TOTALS = ("none", "estimate", "accurate")
# fhirpy's `count()` asks `_totalMethod` (Aidbox's name): the total is always exact, so each
# value is met as asked or better; another is a 400 rather than a hint silently dropped.
TOTAL_METHODS = ("count", "estimate")
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
# Kept in every subset: what makes it a resource at all.
_ALWAYS = ("resourceType", "id", "meta")
_ELEMENT_NAME = re.compile(r"[a-z][A-Za-z0-9]{0,63}")


def count_parameter(value: str | None, default: int) -> int:
    """`_count`: 0 (only the total) up to MAX_COUNT, or a 400 naming `_count`."""
    if value is None:
        return default
    number = whole_number(value, max_digits=len(str(MAX_COUNT)))
    if number is None or number > MAX_COUNT:
        raise FhirError(
            400,
            "invalid",
            f"_count is a whole number from 0 (only the total) to {MAX_COUNT}",
            expression="_count",
        )
    return number


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is not None and value not in allowed:
        raise FhirError(
            400, "not-supported", f"{name} is one of {', '.join(allowed)}", expression=name
        )
    return value


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name


def sort_parameter(value: str | None, sortable: Collection[str]) -> tuple[SortKey, ...]:
    """`_sort=-date,_lastUpdated`: the keys in order, each of `sortable`, or a 400."""
    if value is None:
        return ()
    keys = []
    for part in value.split(","):
        name = part.removeprefix("-")
        if name not in sortable or any(key.name == name for key in keys):
            offered = ", ".join(sorted(sortable)) or "nothing"
            raise FhirError(
                400,
                "not-supported",
                f"_sort takes a comma-separated list of {offered}, each once, "
                "with - for descending",
                expression="_sort",
            )
        keys.append(SortKey(name, part.startswith("-")))
    return tuple(keys)


@functools.lru_cache(maxsize=32)
def element_names(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every top-level element, the summary ones) of a FHIR R4B resource type, as the
    fhir.resources models declare them, so no hand-kept list can drift from the standard."""
    fields = get_fhir_model_class(resource_type).model_fields
    every, summary = set(), set()
    for name, field in fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        element = field.alias or name
        every.add(element)
        if extra.get("summary_element_property") or extra.get("element_required"):
            summary.add(element)
    return frozenset(every), frozenset(summary)


def _elements(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = frozenset(value.split(","))
    if not all(_ELEMENT_NAME.fullmatch(name) for name in names):
        raise FhirError(
            400,
            "invalid",
            "_elements is a comma-separated list of element names, like status,subject",
            expression="_elements",
        )
    return names


@dataclass(frozen=True)
class ResultParameters:
    count: int  # 0: the total only
    summary: str | None
    elements: frozenset[str] | None
    total: str | None
    sort: tuple[SortKey, ...]
    total_method: str | None = None

    @classmethod
    def of(
        cls, query: Mapping[str, str], default_count: int, sortable: Collection[str] = ()
    ) -> ResultParameters:
        """Every result parameter of `query` read, or a 400 naming the one that is wrong."""
        summary = _choice(query, "_summary", SUMMARIES)
        elements = _elements(query.get("_elements"))
        if elements is not None and summary not in (None, "false"):
            raise FhirError(
                400, "invalid", "_elements and _summary are not used together",
                expression="_elements",
            )  # fmt: skip
        count = count_parameter(query.get("_count"), default_count)
        total_method = _choice(query, "_totalMethod", TOTAL_METHODS)
        return cls(
            count=0 if summary == "count" else count,
            summary=summary,
            elements=elements,
            total=_choice(query, "_total", TOTALS),
            sort=sort_parameter(query.get("_sort"), sortable),
            total_method=total_method,
        )

    @property
    def only_total(self) -> bool:
        return self.count == 0

    @property
    def asks_total(self) -> bool:
        """Whether the client asked for a total: `_total=accurate|estimate` (an estimate is
        answered exactly), a count only, or fhirpy's `_totalMethod`. Where a total costs the
        store's size (a type's `_history`) it is given only when asked."""
        return (
            self.total in ("accurate", "estimate")
            or self.only_total
            or self.total_method is not None
        )

    def check_elements(self, resource_type: str) -> None:
        """`_elements` names elements the resource type has (a 400 naming it otherwise)."""
        if self.elements is None:
            return
        unknown = sorted(self.elements - element_names(resource_type)[0])
        if unknown:
            raise FhirError(
                400,
                "invalid",
                f"_elements: {resource_type} has no element {', '.join(unknown)}",
                expression="_elements",
            )

    def shaped(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as these parameters ask it shown: whole, or a subset of it."""
        if self.summary == "true":
            kept = element_names(resource["resourceType"])[1]
        elif self.summary == "data":
            kept = element_names(resource["resourceType"])[0] - {"text"}
        elif self.elements is not None:
            kept = self.elements
        else:
            return resource
        subset = {
            name: value for name, value in resource.items() if name in kept or name in _ALWAYS
        }
        meta = dict(subset.get("meta", {}))
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        subset["meta"] = meta
        return subset

    def finish(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A Bundle with its matches shaped, its total as `_total` asks and, for a count
        only, no entries."""
        for entry in bundle.get("entry", []):
            if entry.get("search", {}).get("mode", "match") == "match" and "resource" in entry:
                entry["resource"] = self.shaped(entry["resource"])
        if self.total == "none":
            bundle.pop("total", None)
        if self.only_total:
            bundle.pop("entry", None)
        return bundle
