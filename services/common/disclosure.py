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
    # Legal bases on which an entry is disclosed to every reader of the record whoever its
    # custodian (a stay's steps on a recorded judgement that secrecy does not prevent it, and,
    # as None, its steps that name no basis of their own: the status the law has the units
    # told). A plan's entries name none and are seen by custodian alone.
    open_bases: frozenset[str | None] = frozenset()

    def sees(self, custodian: str | None) -> bool:
        """Entries without a custodian are the record's frame, seen by whoever sees it."""
        return self.custodians is None or custodian is None or custodian in self.custodians

    def sees_entry(self, kind: str | None, custodian: str | None, basis: str | None = None) -> bool:
        """May the caller see an entry of this kind and custodian, disclosed on this legal
        basis (the `basis` of its recorded `legal_basis`, None where it names none)?"""
        if kind is not None and kind in self.withheld_kinds:
            return False
        return basis in self.open_bases or self.sees(custodian)

    @property
    def complete(self) -> bool:
        return self.custodians is None


def basis_of(payload: Mapping[str, Any]) -> str | None:
    """The legal basis an event's payload records for its entry (`{"legal_basis": {"basis":
    ...}}`), None where it records none."""
    recorded = payload.get("legal_basis")
    basis = recorded.get("basis") if isinstance(recorded, Mapping) else None
    return basis if isinstance(basis, str) else None


# Returns the disclosure, or raises NotFound when the caller may not see the resource.
Discloser = Callable[[Any, Actor], Disclosure]
