"""Secure messages as the pages show them: the `Communication`s the SIP service gives this user
(about a plan or a stay), each with its sender, recipients, receipts and text, read into plain
dataclasses; and a new message as the Communication the service takes. Whether the user may
see or send a message is the API's decision: a page shows what it answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.canonical import CANONICAL_BASE
from services.web.fhir_client import FhirClient
from services.web.plan_view import extension, extensions, part
from services.web.session import SignedInUser
from services.web.stay_view import entries, hsa_of, organization_in
from services.web.submissions import identified_once

_EXT = f"{CANONICAL_BASE}/StructureDefinition"
EXT_RECEIPT = f"{_EXT}/message-receipt"
EXT_CORRECTION = f"{_EXT}/message-correction"
EXT_JUDGEMENT = f"{_EXT}/message-secrecy-judgement"
CATEGORY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/communication-category"
MESSAGE = "message"  # a message a unit wrote; else a stay's admission notice
ABOUT_PATH = {"Encounter": "stays", "CarePlan": "plans"}


@dataclass(frozen=True)
class Receipt:
    recipient: str  # the unit's HSA-id, or the organisation's
    organization: str
    read: str | None


@dataclass(frozen=True)
class MessageView:
    id: str
    version: str
    sent: str | None
    sender_unit: str
    sender_organization: str
    about_type: str  # CarePlan | Encounter
    about_id: str
    text: str
    receipts: list[Receipt]
    replies_to: str | None
    correction: bool
    category: str = MESSAGE

    @property
    def thread(self) -> str:
        """The page of the plan's or the stay's messages."""
        return f"/{ABOUT_PATH.get(self.about_type, 'stays')}/{self.about_id}/messages"

    def my_receipt(self, user: SignedInUser) -> Receipt | None:
        """The receipt of the user's unit, else of the user's organisation as a whole."""
        mine = [r for r in self.receipts if r.recipient == user.unit] or [
            r for r in self.receipts if r.recipient == user.organization
        ]
        return mine[0] if mine else None

    def unread_by(self, user: SignedInUser) -> bool:
        receipt = self.my_receipt(user)
        return receipt is not None and receipt.read is None


def category_of(resource: dict[str, Any]) -> str:
    codes = [
        coding.get("code")
        for concept in resource.get("category") or []
        for coding in concept.get("coding") or []
        if coding.get("system") == CATEGORY_SYSTEM
    ]
    return str(codes[0]) if codes else MESSAGE


def message_of(resource: dict[str, Any]) -> MessageView:
    about = str(((resource.get("about") or [{}])[0]).get("reference") or "")
    about_type, _, about_id = about.partition("/")
    replies = str(((resource.get("inResponseTo") or [{}])[0]).get("reference") or "")
    sender = resource.get("sender") or {}
    receipts = []
    for receipt in extensions(resource, EXT_RECEIPT):
        recipient = part(receipt, "recipient")
        receipts.append(
            Receipt(hsa_of(recipient), organization_in(recipient), part(receipt, "read"))
        )
    correction = extension(resource, EXT_CORRECTION) or {}
    return MessageView(
        id=str(resource.get("id", "")),
        version=str((resource.get("meta") or {}).get("versionId") or ""),
        sent=resource.get("sent"),
        sender_unit=hsa_of(sender),
        sender_organization=organization_in(sender),
        about_type=about_type,
        about_id=about_id,
        text=str(((resource.get("payload") or [{}])[0]).get("contentString") or ""),
        receipts=receipts,
        replies_to=replies.removeprefix("Communication/") or None,
        correction=bool(correction.get("valueBoolean")),
        category=category_of(resource),
    )


def unread_first(messages: list[MessageView], user: SignedInUser) -> list[MessageView]:
    """Unread by the user's unit first, each group newest first."""
    newest = sorted(messages, key=lambda m: m.sent or "", reverse=True)
    return sorted(newest, key=lambda m: not m.unread_by(user))


async def search_messages(fhir: FhirClient, form: dict[str, str]) -> list[MessageView]:
    bundle = await fhir.search("sip", "Communication", {"_count": "200", "_sort": "-sent", **form})
    return [message_of(resource) for resource in entries(bundle, "Communication")]


async def incoming(fhir: FhirClient, user: SignedInUser) -> list[MessageView]:
    """The messages to the user's unit or organisation, unread first: one search."""
    to = ",".join(dict.fromkeys(x for x in (user.unit, user.organization) if x))
    if not to:
        return []
    return unread_first(await search_messages(fhir, {"recipient": to}), user)


def new_message(
    about_type: str,
    about_id: str,
    text: str,
    recipients: list[str],
    submission: str,
    judgement: str | None = None,
    replies_to: str | None = None,
    correction: bool = False,
) -> tuple[dict[str, Any], str]:
    """The Communication to create, and its `If-None-Exist` (the form's submission key: a
    message sent twice by a double click is sent once)."""
    about = {"reference": f"{about_type}/{about_id}"}
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "about": [about],
        "recipient": [{"identifier": {"value": r}} for r in recipients],
        "payload": [{"contentString": text}],
    }
    extension_list: list[dict[str, Any]] = []
    if judgement:
        extension_list.append({"url": EXT_JUDGEMENT, "valueString": judgement})
    if replies_to:
        resource["inResponseTo"] = [{"reference": f"Communication/{replies_to}"}]
        if correction:
            extension_list.append({"url": EXT_CORRECTION, "valueBoolean": True})
    if extension_list:
        resource["extension"] = extension_list
    return identified_once(resource, submission)
