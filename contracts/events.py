"""Where a stored creation event names the person whose data it is and the organisation whose
information it is.

The audit feed reads these fields from the stored events as they are, not from aggregates, so
that a log that was tampered with stays readable. Stored payloads are never rewritten (the hash
chain covers them), so these names are fixed for good: the services' events and the feed agree
on them here, and the feed need not know either service.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreationFields:
    """`person`: the payload field holding the person's identifier ({"system", "value"});
    `custodian`: the path to the organisation's HSA-id, through nested fields."""

    person: str
    custodian: tuple[str, ...]


# Keyed by the FHIR resource type each event-sourced aggregate is served as.
CREATION_FIELDS: dict[str, CreationFields] = {
    # services.sip.domain:Plan.Started
    "CarePlan": CreationFields(person="subject", custodian=("starting_organization",)),
    # services.consent.domain:Consent.Given: the organisation of whoever recorded it
    "Consent": CreationFields(person="patient", custodian=("recorded_by", "organization")),
    # services.sip.discharge.stay:Stay.Admitted: the inpatient stay, the hospital's record
    "Encounter": CreationFields(person="subject", custodian=("organization",)),
    # services.sip.messages.message:Message.Sent: a message, the sender organisation's
    "Communication": CreationFields(person="subject", custodian=("by", "organization")),
    # services.common.access_log:AccessRecord.Recorded
    "AuditEvent": CreationFields(person="patient", custodian=("custodian",)),
}
