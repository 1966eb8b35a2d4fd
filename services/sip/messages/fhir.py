"""A message as FHIR `Communication`, and a posted Communication read into what `send` needs.

Rendered: `status` completed (a message is sent whole, never changed), `subject` the person,
`basedOn` the plan or `encounter` the stay it is about (and `about` either), `sender` and
`recipient` as organisation references (the unit's HSA-id where one is named), `sent`,
`received` once every recipient has marked it read, each recipient's receipt as the
`message-receipt` extension, `inResponseTo` the message it answers or corrects (with the
`message-correction` extension when it corrects it), and the text as `payload.contentString`.

Read from a create: the text, the recipients (by HSA-id of an organisation or of one of its
units taking part), what it is about, `inResponseTo`, the correction flag, an optional
secrecy judgement and the identifiers. Every refusal is a 4xx naming the element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from contracts.canonical import CANONICAL_BASE
from contracts.identifiers import HSA_ID_SYSTEM
from services.common.fhir_api import FhirError
from services.common.fhir_time import fhir_instant
from services.sip.fhir_mapping import organization_reference
from services.sip.messages.message import (
    ABOUT_TYPES,
    ADMISSION_NOTICE,
    MAX_RECIPIENTS,
    MAX_TEXT_LENGTH,
    MESSAGE,
    Message,
)

_EXT = f"{CANONICAL_BASE}/StructureDefinition"
EXT_RECEIPT = f"{_EXT}/message-receipt"
EXT_CORRECTION = f"{_EXT}/message-correction"
EXT_JUDGEMENT = f"{_EXT}/message-secrecy-judgement"
# The Encounter's own extension, on the notice that tells it (as the stay records it).
EXT_ESTIMATED_DISCHARGE = f"{_EXT}/stay-estimated-discharge"
CATEGORY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/communication-category"
# The standard's category, for record systems that know only it.
HL7_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-category"
_CATEGORY = {
    MESSAGE: ("Meddelande", "instruction"),
    ADMISSION_NOTICE: ("Inskrivningsmeddelande", "notification"),
}
_ELEMENTS = {
    "resourceType", "id", "meta", "identifier", "status", "subject", "basedOn", "encounter",
    "about", "inResponseTo", "sender", "recipient", "payload", "sent", "extension", "text",
    "category",
}  # fmt: skip


def category_of(message: Message) -> dict[str, Any]:
    display, standard = _CATEGORY[message.category]
    return {
        "coding": [
            {"system": CATEGORY_SYSTEM, "code": message.category, "display": display},
            {"system": HL7_CATEGORY_SYSTEM, "code": standard},
        ]
    }


def message_to_fhir(message: Message) -> dict[str, Any]:
    about = {"reference": f"{message.about['type']}/{message.about['id']}"}
    extensions: list[dict[str, Any]] = []
    estimated = message.estimated_discharge
    if estimated is not None:
        extensions.append(
            {"url": EXT_ESTIMATED_DISCHARGE, "valueDateTime": fhir_instant(estimated)}
        )
    if message.correction:
        extensions.append({"url": EXT_CORRECTION, "valueBoolean": True})
    for recipient in message.recipients.values():
        parts: list[dict[str, Any]] = [
            {
                "url": "recipient",
                "valueReference": organization_reference(recipient.organization, recipient.unit),
            }
        ]
        if recipient.read is not None:
            parts.append({"url": "read", "valueDateTime": fhir_instant(recipient.read.at)})
        extensions.append({"url": EXT_RECEIPT, "extension": parts})
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(message.id),
        "meta": {
            "versionId": str(message.version),
            "lastUpdated": fhir_instant(message.modified_on),
        },
        **({"identifier": list(message.identifiers)} if message.identifiers else {}),
        **({"extension": extensions} if extensions else {}),
        "status": "completed",
        "category": [category_of(message)],
        "subject": {"type": "Patient", "identifier": dict(message.subject)},
        "about": [about],
        "sent": fhir_instant(message.sent_at),
        "recipient": [
            organization_reference(r.organization, r.unit) for r in message.recipients.values()
        ],
        "sender": organization_reference(str(message.custodian), message.sender_unit),
        "payload": [{"contentString": message.text}],
    }
    if message.about["type"] == "CarePlan":
        resource["basedOn"] = [about]
    else:
        resource["encounter"] = about
    if message.replies_to is not None:
        resource["inResponseTo"] = [{"reference": f"Communication/{message.replies_to}"}]
    received = message.received
    if received is not None:
        resource["received"] = fhir_instant(received)
    return resource


@dataclass(frozen=True)
class PostedMessage:
    """A posted Communication, read: what the message is about, its text, its recipients'
    HSA-ids (each an organisation's or a unit's, resolved against the record later)."""

    about: dict[str, str]
    text: str
    recipients: list[str]
    replies_to: UUID | None
    correction: bool
    judgement: str | None
    sender: str | None


def _invalid(element: str, message: str, status: int = 422) -> FhirError:
    return FhirError(status, "invalid", f"{element}: {message}", expression=element)


def _reference(value: Any, element: str, types: tuple[str, ...]) -> tuple[str, str]:
    """A literal reference `Type/id` of one of `types`, the id a UUID."""
    reference = value.get("reference") if isinstance(value, dict) else None
    kind, _, id = reference.partition("/") if isinstance(reference, str) else ("", "", "")
    try:
        if kind not in types:
            raise ValueError
        UUID(id)
    except ValueError:
        raise _invalid(element, f"a reference {' or '.join(f'{t}/<id>' for t in types)}") from None
    return kind, id


def _hsa_id(value: Any, element: str) -> str:
    identifier = value.get("identifier") if isinstance(value, dict) else None
    if (
        not isinstance(identifier, dict)
        or identifier.get("system") not in (None, HSA_ID_SYSTEM)
        or not isinstance(identifier.get("value"), str)
        or not identifier["value"].strip()
    ):
        raise _invalid(element, f"an organisation or unit by identifier ({HSA_ID_SYSTEM})")
    return identifier["value"]


def _about(body: dict[str, Any]) -> dict[str, str]:
    named: list[tuple[str, str]] = []
    based_on = body.get("basedOn")
    if based_on is not None:
        if not isinstance(based_on, list) or len(based_on) != 1:
            raise _invalid("Communication.basedOn", "one plan: [CarePlan/<id>]")
        named.append(_reference(based_on[0], "Communication.basedOn[0]", ("CarePlan",)))
    if body.get("encounter") is not None:
        named.append(_reference(body["encounter"], "Communication.encounter", ("Encounter",)))
    about = body.get("about")
    if about is not None:
        if not isinstance(about, list) or len(about) != 1:
            raise _invalid("Communication.about", "one plan or one stay")
        named.append(_reference(about[0], "Communication.about[0]", ABOUT_TYPES))
    if not named:
        raise _invalid("Communication.basedOn", "a message is about one plan (basedOn) or one "
                       "stay (encounter)")  # fmt: skip
    if len(set(named)) != 1:
        raise _invalid("Communication.about", "a message is about one plan or one stay")
    kind, id = named[0]
    return {"type": kind, "id": id}


def _text(body: dict[str, Any]) -> str:
    payload = body.get("payload")
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], dict):
        raise _invalid("Communication.payload", "one payload with contentString")
    text = payload[0].get("contentString")
    element = "Communication.payload[0].contentString"
    if not isinstance(text, str) or not text.strip():
        raise _invalid(element, "the message's text is required")
    if len(text) > MAX_TEXT_LENGTH:
        raise _invalid(element, f"at most {MAX_TEXT_LENGTH} characters, not {len(text)}")
    return text


def _extension(body: dict[str, Any], url: str, kind: str) -> Any:
    extensions = body.get("extension") or []
    if not isinstance(extensions, list):
        raise _invalid("Communication.extension", "a list")
    for index, extension in enumerate(extensions):
        if isinstance(extension, dict) and extension.get("url") == url:
            value = extension.get(kind)
            expected = bool if kind == "valueBoolean" else str
            if not isinstance(value, expected):
                raise _invalid(f"Communication.extension[{index}]", f"{url} has a {kind}")
            return value
    return None


def _posted_category(value: Any) -> None:
    """A posted message is a message: an admission notice is its stay's to send."""
    codes = [
        coding.get("code")
        for concept in (value if isinstance(value, list) else [value] if value else [])
        for coding in ((concept or {}).get("coding") or [] if isinstance(concept, dict) else [])
        if isinstance(coding, dict) and coding.get("system") == CATEGORY_SYSTEM
    ]
    if any(code != MESSAGE for code in codes):
        raise _invalid(
            "Communication.category",
            f"a message is posted as {MESSAGE}; an admission notice is sent by "
            "Encounter/{id}/$send-admission-notice",
        )


def posted_message(body: dict[str, Any]) -> PostedMessage:
    if body.get("resourceType") != "Communication":
        raise _invalid("resourceType", "a Communication is expected", 400)
    unknown = sorted(set(body) - _ELEMENTS)
    if unknown:
        raise _invalid(f"Communication.{unknown[0]}", "not taken by this server")
    _posted_category(body.get("category"))
    if body.get("status", "completed") != "completed":
        raise _invalid("Communication.status", "a message is sent whole: completed")
    recipients = body.get("recipient")
    if not isinstance(recipients, list) or not recipients:
        raise _invalid("Communication.recipient", "at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise _invalid("Communication.recipient", f"at most {MAX_RECIPIENTS} recipients")
    replies_to = None
    in_response_to = body.get("inResponseTo")
    if in_response_to is not None:
        if not isinstance(in_response_to, list) or len(in_response_to) != 1:
            raise _invalid("Communication.inResponseTo", "one message: [Communication/<id>]")
        _, id = _reference(in_response_to[0], "Communication.inResponseTo[0]", ("Communication",))
        replies_to = UUID(id)
    sender = body.get("sender")
    judgement = _extension(body, EXT_JUDGEMENT, "valueString")
    if judgement is not None and not judgement.strip():
        raise _invalid("Communication.extension", "a secrecy judgement says what was judged")
    return PostedMessage(
        about=_about(body),
        text=_text(body),
        recipients=[_hsa_id(r, f"Communication.recipient[{i}]") for i, r in enumerate(recipients)],
        replies_to=replies_to,
        correction=bool(_extension(body, EXT_CORRECTION, "valueBoolean")),
        judgement=judgement,
        sender=None if sender is None else _hsa_id(sender, "Communication.sender"),
    )
