"""Meeting invitations to answer, as the pages show them: the `Appointment`s of plans the SIP
service lists for the user's organisation with its answer still needed (one search), and an
answer as the `AppointmentResponse` the service takes (accepted, declined, or tentative with
another time proposed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.identifiers import HSA_ID_SYSTEM
from services.web.fhir_client import FhirClient, Refused
from services.web.session import SignedInUser
from services.web.stay_view import entries, hsa_of

CHAIR = "CHAIR"
ANSWERS = {
    "accepted": "Vi kommer",
    "declined": "Vi kan inte komma",
    "tentative": "Vi föreslår en annan tid",
}


@dataclass(frozen=True)
class InvitationView:
    id: str
    version: str  # the plan's: an answer is sent with If-Match on it
    plan_id: str
    start: str | None
    end: str | None
    place: str
    agenda: str
    organizer: str
    status: str

    @property
    def form_id(self) -> str:
        return f"form-answer-{self.id}"


def _organizer(appointment: dict[str, Any]) -> str:
    for participant in appointment.get("participant", []):
        codes = [c.get("code") for t in participant.get("type", []) for c in t.get("coding", [])]
        if CHAIR in codes:
            return hsa_of(participant.get("actor"))
    return ""


def invitation_of(appointment: dict[str, Any]) -> InvitationView:
    plan = str(((appointment.get("basedOn") or [{}])[0]).get("reference") or "")
    return InvitationView(
        id=str(appointment.get("id", "")),
        version=str((appointment.get("meta") or {}).get("versionId") or ""),
        plan_id=plan.removeprefix("CarePlan/"),
        start=appointment.get("start"),
        end=appointment.get("end"),
        place=str(appointment.get("comment") or ""),
        agenda=str(appointment.get("description") or ""),
        organizer=_organizer(appointment),
        status=str(appointment.get("status") or ""),
    )


async def invitations_to_answer(fhir: FhirClient, user: SignedInUser) -> list[InvitationView]:
    """The meetings the user's organisation is invited to and has not answered (for their
    current time), soonest first: one search; none where the service serves no search of
    Appointments."""
    if not user.organization or user.is_person:
        return []
    try:
        bundle = await fhir.search(
            "sip",
            "Appointment",
            {"actor": user.organization, "part-status": "needs-action", "_count": "200"},
        )
    except Refused as refused:
        if refused.status in (404, 405):
            return []  # a service without meeting invitations (before issue 17, part 4)
        raise
    found = [invitation_of(a) for a in entries(bundle, "Appointment")]
    return sorted(
        (i for i in found if i.status not in ("cancelled", "fulfilled")),
        key=lambda i: i.start or "",
    )


def answer_resource(
    invitation_id: str,
    answer: str,
    organization: str,
    start: str | None = None,
    end: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """The AppointmentResponse of the user's organisation to the invitation."""
    resource: dict[str, Any] = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{invitation_id}"},
        "actor": {"identifier": {"system": HSA_ID_SYSTEM, "value": organization}},
        "participantStatus": answer,
    }
    if start and end:
        resource["start"], resource["end"] = start, end
    if comment:
        resource["comment"] = comment
    return resource
