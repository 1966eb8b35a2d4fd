"""Who may see a consent: the consent's disclosure rule."""

from __future__ import annotations

from contracts.actor import Actor
from services.common.disclosure import Disclosure
from services.common.domain import NotFound
from services.consent.domain import Consent


def disclose_consent(consent: Consent, actor: Actor) -> Disclosure:
    """The person sees their own consents; an organisation those that cover it or that it
    recorded."""
    if actor.role == "patient":
        if actor.patient == consent.patient["value"]:
            return Disclosure()
    elif actor.organization in consent.organizations or (
        actor.organization == consent.recorded_by.get("organization")
    ):
        return Disclosure()
    raise NotFound(f"Consent/{consent.id}")
