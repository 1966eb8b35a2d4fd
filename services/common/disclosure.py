"""What a caller may see of a resource: the answer of a resource type's disclosure rule.

Every entry of a record has a custodian: the organisation that recorded it, or the person
when they recorded it themselves. A rule answers with the custodians whose entries the caller
sees (or all of them) and the consents that allowed it; every way out (read, search,
history, the event feed, exports) shows an entry only where `sees` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.actor import Actor

# The custodian of what the person (or their representative) recorded themselves.
PERSON = "person"


def custodian_of(author: Mapping[str, Any] | None) -> str | None:
    """Whose entry an event's author (`Actor.as_event_data()`) made."""
    if not author:
        return None
    if author.get("role") == "patient":
        return PERSON
    organization = author.get("organization")
    return organization if isinstance(organization, str) and organization else None


@dataclass(frozen=True)
class Disclosure:
    """May the caller see this resource, whose entries in it, and on which consents (none
    for one's own data)."""

    consents: tuple[str, ...] = ()
    # None: every entry; otherwise the custodians whose entries the caller sees.
    custodians: frozenset[str] | None = None
    # Kinds of entry the caller does not see whoever their custodian is (in a plan: the cost
    # shares, which only the principals see).
    withheld_kinds: frozenset[str] = frozenset()

    def sees(self, custodian: str | None) -> bool:
        """Entries without a custodian are the record's frame, seen by whoever sees it."""
        return self.custodians is None or custodian is None or custodian in self.custodians

    def sees_entry(self, kind: str, custodian: str | None) -> bool:
        """May the caller see an entry of this kind and custodian?"""
        return kind not in self.withheld_kinds and self.sees(custodian)

    @property
    def complete(self) -> bool:
        return self.custodians is None


# Returns the disclosure, or raises NotFound when the caller may not see the resource.
Discloser = Callable[[Any, Actor], Disclosure]
