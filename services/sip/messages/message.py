"""The message aggregate: one message about ONE plan or ONE stay, from a unit of one
organisation taking part to units of the others (docs/decisions/0012-messages.md).

Pure domain: no I/O, no clock. A message is never edited nor deleted: after it is sent the
only thing that happens to it is that a recipient marks it read (its receipt). A correction is
a new message naming the one it corrects (`replies_to` with `correction`). What the message
is about (the plan or the stay) and who takes part in it are the application's to know: it
hands the organisations concerned, and their units, to `send`, which checks the recipients
against them before an event is made. The aggregate stays in this module: its path is part
of every stored event's topic (`services.sip.messages.message:Message.<event>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.personal_fields import AUTHOR_CLASSES
from services.common.domain import (
    InvalidCommand,
    RuleViolation,
    optional_text,
    required_instant,
    required_person_identifier,
    required_text,
)
from services.sip.parts import EventActor

# The longest text a message holds, in characters: one place, read by the FHIR boundary too.
MAX_TEXT_LENGTH = 10_000
MAX_RECIPIENTS = 20
# What a message is about: one plan or one stay, by their FHIR resource types.
ABOUT_TYPES = ("CarePlan", "Encounter")
# A message's category: one a unit wrote, or a stay's admission notice (written with the
# stay's own event, never sent on its own: docs/decisions/0012-messages.md).
MESSAGE = "message"
ADMISSION_NOTICE = "admission-notice"
CATEGORIES = (MESSAGE, ADMISSION_NOTICE)


@dataclass(frozen=True, slots=True)
class Receipt:
    at: datetime
    by: EventActor


@dataclass(frozen=True, slots=True)
class MessageRecipient:
    """An organisation the message goes to, through one of its units or the organisation as
    a whole (unit None), and its receipt once someone there has read it."""

    organization: str
    unit: str | None
    read: Receipt | None = None

    @property
    def key(self) -> str:
        return self.unit or self.organization


# The organisations a plan or a stay concerns, each with the units of it the record names
# (a recipient is an organisation as a whole, or one of these units).
Concerned = Mapping[str, frozenset[str]]


def checked_text(value: object, element: str = "text") -> str:
    text = required_text(value, element)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidCommand(element, f"at most {MAX_TEXT_LENGTH} characters, not {len(text)}")
    return text


def checked_recipients(
    values: object, sender_organization: str, concerned: Concerned
) -> list[dict[str, str | None]]:
    """Each recipient an organisation the plan or stay concerns, other than the sender's,
    through a unit known to take part where the record names its units; each once."""
    if not isinstance(values, list | tuple) or not values:
        raise InvalidCommand("recipient", "at least one recipient")
    if len(values) > MAX_RECIPIENTS:
        raise InvalidCommand("recipient", f"at most {MAX_RECIPIENTS} recipients")
    checked: list[dict[str, str | None]] = []
    for index, value in enumerate(values):
        element = f"recipient[{index}]"
        if not isinstance(value, Mapping):
            raise InvalidCommand(element, "an organisation and optionally one of its units")
        organization = required_text(value.get("organization"), f"{element}.organization")
        unit = optional_text(value.get("unit"), f"{element}.unit")
        if organization == sender_organization:
            raise InvalidCommand(element, "a message goes to another organisation taking part")
        if organization not in concerned:
            raise InvalidCommand(
                element, f"{organization} does not take part in what the message is about"
            )
        if unit is not None and unit not in concerned[organization]:
            raise InvalidCommand(
                f"{element}.unit", f"{unit} is not a unit of {organization} taking part"
            )
        checked.append({"organization": organization, "unit": unit})
    keys = [(r["organization"], r["unit"]) for r in checked]
    if len(set(keys)) != len(keys):
        raise InvalidCommand("recipient", "each recipient once")
    return checked


def _about(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or value.get("type") not in ABOUT_TYPES:
        raise InvalidCommand("about", f"a {' or '.join(ABOUT_TYPES)}")
    return {"type": str(value["type"]), "id": required_text(value.get("id"), "about.id")}


class Message(Aggregate):
    class Sent(Aggregate.Created):
        class_version = 3
        subject: dict[str, str]
        about: dict[str, str]
        text: str
        recipients: list[dict[str, Any]]
        replies_to: str | None
        correction: bool
        legal_basis: dict[str, Any]
        sent_at: datetime
        by: EventActor
        identifiers: list[dict[str, str]]
        category: str
        # An admission notice's own content: the ward it is sent from and the estimated
        # discharge (ISO 8601), as the stay's notice records them; None for a message.
        notice: dict[str, str] | None
        sender_kind: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Sent before admission notices were messages: a message a unit wrote.
            state["category"] = MESSAGE
            state["notice"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # Sent before the sender's kind was recorded: its text was sealed under the
            # region's class, which `retention_class_of` answers for None.
            state["sender_kind"] = None

    @event(Sent)
    def __init__(
        self,
        *,
        subject: dict[str, str],
        about: dict[str, str],
        text: str,
        recipients: list[dict[str, Any]],
        replies_to: str | None,
        correction: bool,
        legal_basis: dict[str, Any],
        sent_at: datetime,
        by: EventActor,
        identifiers: list[dict[str, str]],
        category: str,
        notice: dict[str, str] | None,
        sender_kind: str | None = None,
    ) -> None:
        self.subject = subject
        self.about = about
        self.text = text
        self.recipients = {
            MessageRecipient(r["organization"], r.get("unit")).key: MessageRecipient(
                r["organization"], r.get("unit")
            )
            for r in recipients
        }
        self.replies_to = replies_to
        self.correction = correction
        self.legal_basis = legal_basis
        self.sent_at = sent_at
        self.sender = by
        self.identifiers = identifiers
        self.category = category
        self.notice = notice
        # The sender's organisation's kind as the plan or stay knows it, a region or a
        # municipality: its text is that organisation's record (docs/decisions/0007).
        self.sender_kind = sender_kind

    @classmethod
    def checked(
        cls,
        *,
        subject: dict[str, str],
        about: dict[str, str],
        text: str,
        recipients: list[dict[str, Any]],
        concerned: Concerned,
        sent_at: datetime,
        by: EventActor,
        replies_to: Message | None = None,
        correction: bool = False,
    ) -> dict[str, Any]:
        """The message's content checked whole, ready for `send` once its legal basis is
        known: asked first, so that a message refused for what it says asks the consent
        service nothing."""
        required_person_identifier(subject, "subject")
        about = _about(about)
        text = checked_text(text)
        organization, _unit = _acting(by)
        if organization not in concerned:
            raise RuleViolation("sender-takes-part", "the sender's organisation takes part in it")
        checked = checked_recipients(recipients, organization, concerned)
        if correction and replies_to is None:
            raise InvalidCommand("inResponseTo", "a correction names the message it corrects")
        if replies_to is not None:
            if replies_to.about != about:
                raise InvalidCommand(
                    "inResponseTo", "the message answered or corrected is about the same record"
                )
            if correction and replies_to.sender.get("organization") != organization:
                raise RuleViolation(
                    "correction-by-sender",
                    "a message is corrected by its sender's organisation only",
                )
        return {
            "subject": dict(subject),
            "about": about,
            "text": text,
            "recipients": checked,
            "replies_to": None if replies_to is None else str(replies_to.id),
            "correction": bool(correction),
            "sent_at": required_instant(sent_at, "sent"),
            "by": by,
        }

    @classmethod
    def send(
        cls,
        *,
        legal_basis: dict[str, Any],
        identifiers: list[dict[str, str]] | None = None,
        sender_kind: str | None = None,
        **content: Any,
    ) -> Message:
        """A message from the actor's unit (`checked`'s arguments), on its legal basis, from
        an organisation of `sender_kind` (as what it is about knows it); checked whole before
        its one event is made."""
        if not isinstance(legal_basis, Mapping) or not legal_basis.get("basis"):
            raise InvalidCommand("legal_basis", "a message names the legal basis it is sent on")
        return cls(
            **cls.checked(**content),
            legal_basis=dict(legal_basis),
            identifiers=list(identifiers or []),
            category=MESSAGE,
            notice=None,
            sender_kind=sender_kind,
        )

    @classmethod
    def admission_notice(
        cls,
        *,
        id: UUID,
        subject: dict[str, str],
        stay: str,
        ward: str,
        estimated_discharge: datetime,
        text: str,
        recipients: list[dict[str, str]],
        legal_basis: dict[str, Any],
        sent_at: datetime,
        by: EventActor,
    ) -> Message:
        """A stay's admission notice as a message, from what the stay's own command checked
        and is about to record (the caller saves both together): about the stay, from its
        ward, to the notice's units, under the id the stay's notice is known by."""
        if not isinstance(legal_basis, Mapping) or not legal_basis.get("basis"):
            raise InvalidCommand("legal_basis", "a notice names the legal basis it is sent on")
        required_person_identifier(subject, "subject")
        estimate = required_instant(estimated_discharge, "estimated_discharge")
        return cls._create(
            cls.Sent,
            id=id,
            subject=dict(subject),
            about={"type": "Encounter", "id": required_text(stay, "stay")},
            text=checked_text(text),
            recipients=[{"organization": r["organization"], "unit": r["unit"]} for r in recipients],
            replies_to=None,
            correction=False,
            legal_basis=dict(legal_basis),
            sent_at=required_instant(sent_at, "sent"),
            by=by,
            identifiers=[],
            category=ADMISSION_NOTICE,
            notice={
                "ward": required_text(ward, "ward"),
                "estimated_discharge": estimate.isoformat(),
            },
            sender_kind="region",  # the hospital's ward: the region's patient record
        )

    # What other parts of the service ask of a record.

    def retention_class_of(self, entry: Mapping[str, Any]) -> str | None:
        """The retention class of a message's text (its `Sent` event's state, as it is
        sealed): its sender's organisation kind, a region's or a municipality's; None (the
        message's own class) where it was not known (docs/decisions/0007)."""
        kind = entry.get("sender_kind")
        return kind if kind in AUTHOR_CLASSES else None

    @property
    def is_admission_notice(self) -> bool:
        return self.category == ADMISSION_NOTICE

    @property
    def sender_unit(self) -> str | None:
        """The unit it is sent from: an admission notice's is the stay's ward."""
        if self.notice is not None:
            return self.notice["ward"]
        unit = self.sender.get("unit")
        return unit if isinstance(unit, str) else None

    @property
    def estimated_discharge(self) -> datetime | None:
        return (
            None
            if self.notice is None
            else datetime.fromisoformat(self.notice["estimated_discharge"])
        )

    @property
    def custodian(self) -> str | None:
        organization = self.sender.get("organization")
        return organization if isinstance(organization, str) else None

    @property
    def person_identifier(self) -> dict[str, str]:
        return self.subject

    @property
    def relied_on_consents(self) -> tuple[str, ...]:
        """The consents it was sent on: its write's access record names them."""
        return tuple(self.legal_basis.get("consents", ()))

    @property
    def recipient_organizations(self) -> set[str]:
        return {r.organization for r in self.recipients.values()}

    def concerns(self, organization: str | None) -> bool:
        """The sender's organisation and every recipient's."""
        return organization is not None and (
            organization == self.custodian or organization in self.recipient_organizations
        )

    def read_by(self, organization: str | None) -> datetime | None:
        """When the organisation's recipients had all read it; None while one has not (or
        it is not a recipient)."""
        mine = [r for r in self.recipients.values() if r.organization == organization]
        if not mine or any(r.read is None for r in mine):
            return None
        return max(r.read.at for r in mine if r.read is not None)

    @property
    def received(self) -> datetime | None:
        """When the last recipient read it; None while one has not."""
        receipts = [r.read for r in self.recipients.values()]
        if any(receipt is None for receipt in receipts):
            return None
        return max(receipt.at for receipt in receipts if receipt is not None)

    # The recipient's one step.

    def mark_read(self, *, at: datetime, by: EventActor) -> None:
        """Someone of a recipient marks it read: the receipt of the recipient it was sent to
        (their unit, or their organisation as a whole), once. An admission notice's receipt
        is its stay's, recorded with it (`notice_received`), never on its own."""
        if self.is_admission_notice:
            raise RuleViolation(
                "notice-receipt-on-the-stay", "an admission notice's receipt is its stay's"
            )
        self._receipt(at=at, by=by)

    def notice_received(self, *, at: datetime, by: EventActor) -> None:
        """The notice's read receipt, as its stay has just recorded the unit's receipt (the
        caller saves both together)."""
        if not self.is_admission_notice:
            raise RuleViolation("notice-only", "only an admission notice follows its stay")
        self._receipt(at=at, by=by)

    def _receipt(self, *, at: datetime, by: EventActor) -> None:
        organization, unit = _acting(by)
        at = required_instant(at, "at")
        recipient = self.recipients.get(unit) if unit else None
        if recipient is None or recipient.organization != organization:
            recipient = self.recipients.get(organization)
        if recipient is None or recipient.organization != organization:
            raise RuleViolation(
                "read-by-recipient", "the message was not sent to the caller's unit or organisation"
            )
        if recipient.read is not None:
            raise RuleViolation("read-once", "the recipient has marked the message read already")
        self._read(recipient=recipient.key, at=at, by=by)

    @event("Read")
    def _read(self, recipient: str, at: datetime, by: EventActor) -> None:
        self.recipients[recipient] = replace(self.recipients[recipient], read=Receipt(at, by))


def _acting(by: object) -> tuple[str, str | None]:
    if not isinstance(by, Mapping):
        raise InvalidCommand("by", "the actor is required")
    organization = required_text(by.get("organization"), "by.organization")
    return organization, optional_text(by.get("unit"), "by.unit")
