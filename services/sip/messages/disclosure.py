"""Who may read a message: the message's disclosure rule, of the plan's and the stay's family
(`services/common/disclosure.py`; docs/decisions/0012-messages.md).

The person reads every message about them, as they see their whole plan and stay. An
organisation that neither sent the message nor is among its recipients is told it does not
exist (404). The sender's organisation reads its own message. A recipient organisation reads
it on the legal basis it was sent on: a recorded judgement that secrecy does not prevent the
disclosure, or the person's consent, asked of the consent service at each read (from the
sender's organisation to the reader, for the purpose of the plan or the stay), so a withdrawn
consent makes the message unreadable to the recipient (404) from the next read on. A message
is one entry of one custodian: it is read whole or not at all.
"""

from __future__ import annotations

from contracts.actor import Actor
from services.common.disclosure import Disclosure
from services.common.domain import NotFound
from services.sip.application import disclosure_request
from services.sip.consent_gate import ConsentGate, ConsentServiceUnavailable
from services.sip.discharge.application import DISCHARGE_PURPOSE, STAY_RESOURCE_TYPE
from services.sip.discharge.stay import SECRECY_JUDGEMENT
from services.sip.disclosure import consent_service_down
from services.sip.messages.message import Message

MESSAGE_RESOURCE_TYPE = "Communication"
# The purpose a message's disclosure is asked for: the plan's entries' or the stay's steps'.
PLAN_PURPOSE = "sip-disclosure"


def purpose_of(about_type: str) -> str:
    return DISCHARGE_PURPOSE if about_type == STAY_RESOURCE_TYPE else PLAN_PURPOSE


class MessageDisclosure:
    """Decides, for one reader and one message, whether they may read it, on which consents."""

    def __init__(self, consent_gate: ConsentGate) -> None:
        self.consent_gate = consent_gate

    def __call__(self, message: Message, actor: Actor) -> Disclosure:
        not_known = NotFound(f"{MESSAGE_RESOURCE_TYPE}/{message.id}")
        if actor.role == "patient":
            if actor.patient == message.subject["value"]:
                return Disclosure()
            raise not_known
        reader = actor.organization
        if not reader or not message.concerns(reader):
            raise not_known
        sender = message.custodian
        if reader == sender or message.legal_basis.get("basis") == SECRECY_JUDGEMENT:
            return Disclosure()
        request = disclosure_request(
            message.subject, reader, str(sender), purpose_of(message.about["type"])
        )
        try:
            decision = self.consent_gate.check(request)
        except ConsentServiceUnavailable as error:
            raise consent_service_down(error) from None
        if not decision.permitted:
            raise not_known
        return Disclosure(tuple(decision.consents))
