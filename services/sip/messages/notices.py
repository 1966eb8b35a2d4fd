"""A stay's admission notice served as a message (docs/decisions/0012-messages.md).

The stay is the one source of truth of its notice: its own commands check the notice and each
unit's receipt, and record them. The notice's `Message` (category admission notice, about the
stay, from its ward to the notice's units, under an id derived from the stay's) is written
only with the stay's event, in the same save: `Sent` with `AdmissionNoticeSent`, `Read` with
`ReceiptConfirmed`, whether the receipt comes through the stay's `$confirm-receipt` or the
Communication's `$mark-read`. A stay noticed before notices were messages has none: its notice
and receipts stay on the Encounter only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from services.common.domain import NotFound
from services.common.fhir_time import SWEDEN
from services.sip.application import SipPlans
from services.sip.discharge.stay import PRIMARY_CARE, Stay
from services.sip.messages.message import Message
from services.sip.parts import EventActor

# Fixed for good: a notice's id is derived from its stay's, so each stay has at most one.
NOTICE_NAMESPACE = UUID("6f1d52a4-2b8e-4c4e-9a57-8f0c2a7d1e31")
# What the notice says, in the language of the record systems that show it.
_KIND_TEXT = {
    PRIMARY_CARE: "primärvård",
    "social-services": "socialtjänst",
    "municipal-health-care": "kommunal hälso- och sjukvård",
}
_PRINCIPAL_TEXT = {"region": "regionens öppna vård", "municipality": "kommunen"}


def notice_id(stay_id: UUID) -> UUID:
    return uuid5(NOTICE_NAMESPACE, str(stay_id))


def _local(instant: Any) -> str:
    return str(instant.astimezone(SWEDEN).strftime("%Y-%m-%d %H:%M"))


def notice_text(stay: Stay) -> str:
    """The admission notice as words: the ward, when admitted, whose care will be needed and
    the estimated discharge (the person is the message's subject, never named in the text)."""
    needed = ", ".join(_PRINCIPAL_TEXT.get(p, p) for p in stay.care_needed)
    units = ", ".join(
        f"{r.unit} ({_KIND_TEXT.get(r.kind, r.kind)})" for r in stay.recipients.values()
    )
    return (
        f"Inskrivningsmeddelande (LSU 2017:612): inskriven {_local(stay.admitted.at)} på "
        f"avdelning {stay.ward}. Insatser kan behövas från: {needed}. Beräknad utskrivning: "
        f"{_local(stay.estimated_discharge)}. Meddelandet går till: {units}."
    )


def notice_message(stay: Stay) -> Message:
    """The notice the stay has just recorded (not yet saved), as its message."""
    notice = stay.admission_notice
    assert notice is not None and stay.estimated_discharge is not None
    return Message.admission_notice(
        id=notice_id(stay.id),
        subject=stay.subject,
        stay=str(stay.id),
        ward=stay.ward,
        estimated_discharge=stay.estimated_discharge,
        text=notice_text(stay),
        recipients=[
            {"organization": r.organization, "unit": r.unit} for r in stay.recipients.values()
        ],
        legal_basis=dict(notice.legal_basis or {}),
        sent_at=notice.at,
        by=notice.by,
    )


def notice_of(plans: SipPlans, stay_id: UUID) -> Message | None:
    """The stay's notice message; None for a stay whose notice is not a message (sent before
    notices were, or not sent yet)."""
    try:
        message: Message = plans.aggregate_of(Message, "Communication", notice_id(stay_id))
    except NotFound:
        return None
    return message


def stay_of(plans: SipPlans, notice: Message) -> Stay:
    stay: Stay = plans.aggregate_of(Stay, "Encounter", UUID(notice.about["id"]))
    return stay


def send_notice(
    plans: SipPlans,
    stay: Stay,
    *,
    recipients: list[dict[str, str]],
    estimated_discharge: Any,
    legal_basis: dict[str, Any],
    at: Any,
    by: EventActor,
) -> Message:
    """The stay's notice recorded, and saved with its message in one write (a refusal writes
    neither)."""
    stay.send_admission_notice(
        recipients=recipients, estimated_discharge=estimated_discharge,
        legal_basis=legal_basis, at=at, by=by,
    )  # fmt: skip
    message = notice_message(stay)
    plans.save(stay, message)
    return message


def confirm_receipt(
    plans: SipPlans, stay: Stay, notice: Message | None, *, at: Any, by: EventActor
) -> None:
    """A unit's receipt of the notice: the stay's rule decides, the message's receipt follows
    it, both saved in one write (a stay noticed before notices were messages: the stay's
    alone)."""
    stay.confirm_receipt(at=at, by=by)
    if notice is not None:
        notice.notice_received(at=at, by=by)
    plans.save(stay, *([notice] if notice is not None else []))
