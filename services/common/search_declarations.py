"""Search parameters declared once, each with its FHIR type, its expression and how a value
of it is read; the search routes read a query through the declarations and the
CapabilityStatement lists them from the same objects, so the statement cannot promise a
parameter, or a type, that the search does not serve.

A value is read into a condition on the resource type's index (keyword arguments of its
`search`) and/or a test of an aggregate as the caller sees it (asked after the disclosure
rule, so a match found only in a withheld entry is no match). As R4 says, a comma is OR
between values and a repeated parameter is AND; the index is asked once per value, which
keeps each index's own search a plain conjunction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.common.fhir_api import FhirError
from services.common.fhir_time import published
from services.common.http_conventions import ignoring_unknown_parameters
from services.common.result_parameters import RESULT_PARAMETER_FIELDS, RESULT_PARAMETERS
from services.common.search import AND, date_bounds

SearchType = Literal["token", "reference", "date", "string", "uri"]
Arguments = dict[str, Any]  # keyword arguments of an index's search
Test = Callable[[Any], bool]
INCLUDE = "_include"


@dataclass(frozen=True)
class Alternative:
    """One value of a condition: what it asks of the index, and of the aggregate."""

    arguments: Arguments
    test: Test | None = None


@dataclass(frozen=True)
class SearchParameter:
    """One search parameter: `index` reads a value into the index's arguments, `test` into
    a test of the aggregate as the caller sees it (either or both); `modifiers` read the
    value of `name:modifier` (e.g. `subject:identifier`) into the index's arguments."""

    name: str
    type: SearchType
    expression: str
    documentation: str
    index: Callable[[str], Arguments] | None = None
    test: Callable[[str], Test] | None = None
    modifiers: Mapping[str, Callable[[str], Arguments]] = field(default_factory=dict)
    definition: str | None = None  # the canonical SearchParameter, where R4 defines one

    def alternative(self, modifier: str | None, value: str) -> Alternative:
        """One value read, or a 400 naming the parameter."""
        name = f"{self.name}:{modifier}" if modifier else self.name
        try:
            if not value:
                raise FhirError(400, "invalid", f"{name} is given without a value")
            if modifier is not None:
                return Alternative(self.modifiers[modifier](value))
            return Alternative(
                self.index(value) if self.index else {},
                self.test(value) if self.test else None,
            )
        except FhirError as error:
            error.expression = error.expression or name
            raise

    def capability(self) -> dict[str, Any]:
        entry = {"name": self.name, "type": self.type, "documentation": self.documentation}
        if self.definition:
            entry["definition"] = self.definition
        return entry


@dataclass(frozen=True)
class Condition:
    """One occurrence of a parameter: any of its alternatives (comma: OR) holds."""

    name: str
    alternatives: tuple[Alternative, ...]

    def holds_for(self, aggregate: Any) -> bool:
        tests = [a.test for a in self.alternatives if a.test is not None]
        return not tests or any(test(aggregate) for test in tests)


@dataclass(frozen=True)
class AskedSearch:
    """A query read through the declarations: its conditions (all to hold) and the query as
    it was used (without what `Prefer: handling=lenient` ignored), for the `self` link."""

    conditions: tuple[Condition, ...]
    used: dict[str, str]

    def matching_ids(self, search: Callable[..., list[Any]]) -> list[Any]:
        """The ids the index finds for every condition, in the index's order."""
        fixed: Arguments = {}
        combined: list[Condition] = []
        for condition in self.conditions:
            only = condition.alternatives[0].arguments
            if len(condition.alternatives) == 1 and not set(only) & set(fixed):
                fixed |= only
            elif any(a.arguments for a in condition.alternatives):
                combined.append(condition)
        ids = search(**fixed)
        for condition in combined:
            # Asked with the fixed arguments (one may be replaced here) and then kept only
            # where the fixed ones hold too: every condition holds for what is left.
            allowed = set().union(
                *(
                    search(**(fixed | alternative.arguments))
                    for alternative in condition.alternatives
                )
            )
            ids = [found for found in ids if found in allowed]
        return ids

    def matches(self, aggregate: Any) -> bool:
        """Every condition's test holds for the aggregate as the caller sees it."""
        return all(condition.holds_for(aggregate) for condition in self.conditions)


@dataclass(frozen=True)
class SearchDeclarations:
    """A resource type's search: its parameters, what `_sort` orders by (a value of the
    aggregate: a datetime or None) and what `_include` serves."""

    resource_type: str
    parameters: tuple[SearchParameter, ...]
    sort_keys: Mapping[str, Callable[[Any], datetime | None]] = field(default_factory=dict)
    includes: tuple[str, ...] = ()

    def parameter(self, name: str) -> tuple[SearchParameter, str | None] | None:
        base, _, modifier = name.partition(":")
        for parameter in self.parameters:
            if parameter.name == base and (not modifier or modifier in parameter.modifiers):
                return parameter, modifier or None
        return None

    def asked(self, query: Mapping[str, str]) -> AskedSearch:
        """The query's conditions; an unknown parameter is a 400 unless `Prefer:
        handling=lenient` asked it ignored (the answer then says which)."""
        unknown = sorted(
            name
            for name in query
            if name not in RESULT_PARAMETERS
            and not (name == INCLUDE and self.includes)
            and self.parameter(name) is None
        )
        if unknown and not ignoring_unknown_parameters(unknown):
            raise FhirError(
                400,
                "not-supported",
                f"unsupported search parameter(s): {', '.join(unknown)}; supported: "
                + ", ".join(p.name for p in self.parameters),
                expression=unknown[0],
            )
        conditions = []
        for name, value in query.items():
            found = self.parameter(name)
            if found is None:
                continue
            parameter, modifier = found
            for occurrence in value.split(AND):
                conditions.append(
                    Condition(
                        name,
                        tuple(
                            parameter.alternative(modifier, one) for one in values_of(occurrence)
                        ),
                    )
                )
        used = {name: value for name, value in query.items() if name not in unknown}
        return AskedSearch(tuple(conditions), used)

    def form_fields(self) -> dict[str, str]:
        """Every name a query may use, with what it is (for OpenAPI)."""
        fields = {}
        for parameter in self.parameters:
            fields[parameter.name] = f"{parameter.type}: {parameter.documentation}"
            for modifier in parameter.modifiers:
                fields[f"{parameter.name}:{modifier}"] = (
                    f"{parameter.type}: {parameter.documentation}"
                )
        if self.includes:
            fields[INCLUDE] = " | ".join(self.includes)
        return fields | RESULT_PARAMETER_FIELDS

    def capability(self) -> dict[str, Any]:
        """The statement's searchParam (and searchInclude) for this resource type."""
        entry: dict[str, Any] = {"searchParam": [p.capability() for p in self.parameters]}
        if self.includes:
            entry["searchInclude"] = list(self.includes)
        return entry


_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def values_of(occurrence: str) -> list[str]:
    """The values of one occurrence of a parameter: split at each comma (OR), except one
    escaped as `\\,` (R4 search.html §3.1.1.3), which belongs to the value."""
    return [value.replace("\\,", ",") for value in _UNESCAPED_COMMA.split(occurrence)]


def _id_test(value: str) -> Test:
    return lambda aggregate: str(aggregate.id) == value


def _last_updated_test(value: str) -> Test:
    since, until = date_bounds("_lastUpdated", value)

    def test(aggregate: Any) -> bool:
        moment = published(aggregate.modified_on)
        return (since is None or moment >= since) and (until is None or moment <= until)

    return test


# Every resource type's search has these (R4: Resource.id, Resource.meta.lastUpdated).
ID = SearchParameter(
    "_id", "token", "Resource.id", "the logical id (comma: any of them)", test=_id_test,
    definition="http://hl7.org/fhir/SearchParameter/Resource-id",
)  # fmt: skip
LAST_UPDATED = SearchParameter(
    "_lastUpdated",
    "date",
    "Resource.meta.lastUpdated",
    "when it last changed: eq/ge/gt/le/lt prefixed, repeatable (AND)",
    test=_last_updated_test,
    definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
)
COMMON_PARAMETERS = (ID, LAST_UPDATED)


def last_updated(aggregate: Any) -> datetime:
    return published(aggregate.modified_on)
