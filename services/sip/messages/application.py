"""Sending a message: who takes part in what it is about, the recipients resolved against
them, the legal basis asked (the person's consent, as for the plan's entries and the stay's
steps, or a recorded secrecy judgement), and the message made. The caller loads the plan or
the stay through its own disclosure rule first (an organisation it does not concern is told it
does not exist) and saves the message inside the create's write."""

from __future__ import annotations

from typing import Any

from services.common.domain import InvalidCommand, RuleViolation
from services.common.fhir_api import FhirError
from services.sip.application import consent_or_judgement
from services.sip.consent_gate import ConsentGate, ConsentServiceUnavailable
from services.sip.discharge.stay import Stay
from services.sip.disclosure import consent_service_down
from services.sip.domain import Plan
from services.sip.messages.disclosure import purpose_of
from services.sip.messages.fhir import PostedMessage
from services.sip.messages.message import Concerned, Message
from services.sip.parts import EventActor

STAFF = ("professional", "coordinator", "integration")
# The element of a posted Communication each of the domain's refusals is about.
_ELEMENT_OF = {
    "recipient": "Communication.recipient",
    "text": "Communication.payload[0].contentString",
    "inResponseTo": "Communication.inResponseTo",
    "judgement": "Communication.extension",
}


def concerned_in(record: Plan | Stay) -> Concerned:
    """The organisations taking part in a plan or concerned by a stay, each with the units
    the record names of it."""
    if isinstance(record, Stay):
        units: dict[str, set[str]] = {record.organization: {record.ward}}
        for recipient in record.recipients.values():
            units.setdefault(recipient.organization, set()).add(recipient.unit)
        if record.care_contact is not None:
            contact = record.care_contact
            units.setdefault(contact.organization, set()).add(contact.unit)
        return {organization: frozenset(named) for organization, named in units.items()}
    return {
        o.hsa_id: frozenset({o.acceptance.unit} if o.acceptance and o.acceptance.unit else ())
        for o in record.organizations.values()
    }


def resolved_recipients(hsa_ids: list[str], concerned: Concerned) -> list[dict[str, Any]]:
    """Each HSA-id as an organisation taking part, or as a unit of one; 422 naming the
    recipient that is neither."""
    resolved = []
    for index, hsa_id in enumerate(hsa_ids):
        if hsa_id in concerned:
            resolved.append({"organization": hsa_id, "unit": None})
            continue
        owner = next((o for o, units in concerned.items() if hsa_id in units), None)
        if owner is None:
            element = f"Communication.recipient[{index}]"
            raise FhirError(
                422, "invalid",
                f"{element}: {hsa_id} is no organisation or unit taking part in what the "
                "message is about", expression=element, rule="recipient-takes-part",
            )  # fmt: skip
        resolved.append({"organization": owner, "unit": hsa_id})
    return resolved


def may_send(actor_role: str, organization: str | None) -> None:
    if actor_role not in STAFF:
        raise FhirError(403, "forbidden", "messages are sent by staff of an organisation")
    if not organization:
        raise FhirError(403, "forbidden", "a message is sent from an organisation")


def send(
    record: Plan | Stay,
    posted: PostedMessage,
    *,
    replies_to: Message | None,
    consent_gate: ConsentGate,
    at: Any,
    by: EventActor,
    identifiers: list[dict[str, str]],
) -> Message:
    """The message, checked whole (nothing written yet): recipients, text, what it answers
    and the legal basis of telling each recipient organisation about the person."""
    concerned = concerned_in(record)
    recipients = resolved_recipients(posted.recipients, concerned)
    if posted.sender is not None and posted.sender not in (by.get("unit"), by.get("organization")):
        raise FhirError(
            422, "invalid", "Communication.sender: a message is sent from the caller's own unit",
            expression="Communication.sender",
        )  # fmt: skip
    told = {str(r["organization"]) for r in recipients}
    content = {
        "subject": record.subject, "about": posted.about, "text": posted.text,
        "recipients": recipients, "concerned": concerned, "sent_at": at, "by": by,
        "replies_to": replies_to, "correction": posted.correction,
    }  # fmt: skip
    try:
        Message.checked(**content)  # before the consent service is asked
        basis = consent_or_judgement(
            consent_gate, record.subject, purpose_of(posted.about["type"]), by, told,
            posted.judgement,
        )  # fmt: skip
        return Message.send(
            legal_basis=basis,
            identifiers=identifiers,
            sender_kind=record.kind_of(str(by.get("organization"))),
            **content,
        )
    except ConsentServiceUnavailable as error:
        raise consent_service_down(error) from None
    except InvalidCommand as refused:
        element = _ELEMENT_OF.get(refused.element.split("[")[0].split(".")[0], "Communication")
        raise FhirError(
            422, "invalid", refused.message, rule=refused.rule, expression=element
        ) from None
    except RuleViolation as refused:
        element = (
            "Communication.recipient"
            if refused.rule == "disclosure-requires-consent-or-judgement"
            else "Communication.inResponseTo"
            if refused.rule == "correction-by-sender"
            else "Communication"
        )
        raise FhirError(
            409, "business-rule", refused.message, rule=refused.rule, expression=element
        ) from None
