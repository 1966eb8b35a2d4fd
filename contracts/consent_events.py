"""What the consent service publishes on its event feed (`GET /events`), for the services
that follow it.

A feed item's `type` is the event's topic, `<module>:Consent.<event name>`; its `payload` is
the event's stored fields. The event names are the consent aggregate's event classes
(services/consent/domain.py), which never change once events are stored under them.
"""

from __future__ import annotations

# The feed's `type` filter for the consent aggregate's events (no access records).
CONSENT_AGGREGATE = "Consent"

# The consent aggregate's events.
CONSENT_GIVEN = "Given"
CONSENT_WITHDRAWN = "Withdrawn"
CONSENT_ENTERED_IN_ERROR = "EnteredInError"
CONSENT_BLOCK_OVERRIDDEN = "BlockOverridden"
CONSENT_EVENTS = (
    CONSENT_GIVEN,
    CONSENT_WITHDRAWN,
    CONSENT_ENTERED_IN_ERROR,
    CONSENT_BLOCK_OVERRIDDEN,
)
# After these a consent no longer permits anything.
CONSENT_ENDING_EVENTS = (CONSENT_WITHDRAWN, CONSENT_ENTERED_IN_ERROR)

# Fields of the Given event's payload that followers read.
GIVEN_PATIENT = "patient"  # the person's identifier: {"system": ..., "value": ...}


def consent_event_name(feed_type: str) -> str | None:
    """The consent event a feed item's `type` names, or None for any other aggregate's."""
    _, _, qualified_name = feed_type.partition(":")
    aggregate, _, name = qualified_name.rpartition(".")
    return name if aggregate == CONSENT_AGGREGATE else None
