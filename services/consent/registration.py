"""Who may register a consent or a block (*spärr*).

The person decides over their own information: they (or their guardian or representative,
whose token names the person they act for) register with their own token. Otherwise staff of
an organisation that the consent or block names register it, having taken it from the person
(the form, written, oral or digital, and who took it are recorded with it). An organisation
the registration does not name has no part in the person's decision: it may neither grant
itself access nor block others.
"""

from __future__ import annotations

from typing import Any

from contracts.actor import Actor

STAFF_ROLES = ("coordinator", "professional", "integration")


def named_organizations(given: dict[str, Any]) -> set[str]:
    """The organisations a consent covers, or a block blocks or names."""
    return {*given["organizations"], *given["recipients"], *given["sources"]}


def registration_refusal(actor: Actor, given: dict[str, Any]) -> str | None:
    """Why the caller may not register this consent or block, or None if they may."""
    what = "block" if given["kind"] == "block" else "consent"
    if actor.role == "patient":
        if given["patient"]["value"] != actor.patient:
            return f"a person registers a {what} for themself (or whom they represent) only"
        return None
    if actor.role not in STAFF_ROLES or not actor.organization:
        return f"a {what} is registered by the person or by staff of an organisation it names"
    if actor.organization not in named_organizations(given):
        return (
            f"a {what} is registered by the person or by staff of an organisation it names; "
            f"{actor.organization} is not named in it"
        )
    return None
