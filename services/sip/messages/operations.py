"""The message's one operation: `POST /fhir/Communication/{id}/$mark-read`, declared once
(services/common/operations). Someone of a recipient marks the message read, the receipt of
the recipient it was sent to (their unit, or their organisation as a whole), once; the common
pipeline loads the message through its disclosure rule (404 for an organisation it does not
concern, and for a recipient once the person's consent no longer allows it), honours
`If-Match` and saves the receipt with its access-log record in one write."""

from __future__ import annotations

from typing import Any

from contracts.actor import Actor
from services.common.fhir_api import FhirError
from services.common.operations.declaration import NoParameters, Operation, OperationCall
from services.sip.messages.application import STAFF
from services.sip.messages.disclosure import MESSAGE_RESOURCE_TYPE
from services.sip.messages.message import Message
from services.sip.messages.notices import confirm_receipt, stay_of


def _staff(actor: Actor) -> None:
    if actor.role not in STAFF:
        raise FhirError(403, "forbidden", "a message is marked read by staff of a recipient")
    if not actor.organization:
        raise FhirError(403, "forbidden", "a message is marked read for an organisation")


def mark_read(call: OperationCall[NoParameters]) -> None:
    """A message's receipt; an admission notice's is its stay's receipt, which decides, with
    the message's read receipt following it in the same write (services/sip/messages/notices)."""
    message: Message = call.target
    if not message.is_admission_notice:
        message.mark_read(at=call.at, by=call.by)
        return
    if not call.actor.unit:
        raise FhirError(
            403, "forbidden", "a notice's receipt is confirmed from the unit it went to"
        )
    plans = call.state.plans
    confirm_receipt(plans, stay_of(plans, message), message, at=call.at, by=call.by)


MARK_READ: Operation[Any] = Operation(
    "mark-read",
    MESSAGE_RESOURCE_TYPE,
    "A recipient marks the message read (its receipt; Communication.received once every "
    "recipient has): from the unit it was sent to, or for the organisation it was sent to. "
    "An admission notice's is the stay's receipt ($confirm-receipt of its Encounter) as well.",
    NoParameters,
    mark_read,
    may_call=_staff,
)
OPERATIONS: list[Operation[Any]] = [MARK_READ]
