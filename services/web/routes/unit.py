"""My unit (Min enhet): what the user's unit has to see to and answer, each asked of the API in
one search, all at once: the stays (discharge from inpatient care) with their next deadline
and the hours left (overdue first, in red and in words), the messages to the unit (unread
first), and the meeting invitations to the user's organisation still to answer, each with its
form (accept, decline, or propose another time) posted as an AppointmentResponse."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from services.web.dependencies import Fhir, User
from services.web.fhir_client import ChangedMeanwhile, FhirClient, Issue, Refused
from services.web.form_errors import FormErrors, place_refusal
from services.web.invitations_view import ANSWERS, answer_resource, invitations_to_answer
from services.web.messages_view import incoming
from services.web.pages import render
from services.web.plan_forms import instant_of
from services.web.session import SignedInUser
from services.web.stay_view import StayView, search_stays

router = APIRouter()

INVITATION_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
VERSION = re.compile(r"^[0-9]{1,9}$")
ANSWER_FIELDS = ("answer", "start", "end", "comment")
CHANGED = (
    "Inbjudan har ändrats sedan du öppnade sidan (till exempel en ny tid). Se hur den ser ut "
    "nu och svara igen."
)


def concerns_unit(stay: StayView, user: SignedInUser) -> bool:
    """The stay names the user's unit: its ward, a unit the notice went to, the fixed care
    contact's unit, or the owner of one of its duties."""
    unit = user.unit
    units = {stay.ward, stay.care_contact_unit, *(r.unit for r in stay.recipients)}
    return bool(unit) and (unit in units or any(d.owner_unit == unit for d in stay.duties))


def clock_order(stay: StayView) -> tuple[bool, bool, str]:
    duty = stay.next_duty
    return (not stay.overdue, duty is None or duty.due is None, (duty and duty.due) or "")


@router.get("/unit")
async def my_unit(
    request: Request, user: User, fhir: Fhir, answered: str | None = None
) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    notices = [f"Svaret är skickat: {ANSWERS[answered].lower()}."] if answered in ANSWERS else []
    return await show_unit(request, user, fhir, notices=notices)


async def show_unit(
    request: Request,
    user: SignedInUser,
    fhir: FhirClient,
    *,
    answering: str | None = None,
    posted: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    notices: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    found, messages, invitations = await asyncio.gather(
        search_stays(fhir, {"status": "in-progress"}),
        incoming(fhir, user),
        invitations_to_answer(fhir, user),
    )
    stays = sorted(found, key=clock_order)
    return render(
        request,
        "unit.html",
        status_code=status_code,
        stays=[s for s in stays if concerns_unit(s, user)],
        others=[s for s in stays if not concerns_unit(s, user)],
        messages=messages,
        unread=sum(m.unread_by(user) for m in messages),
        invitations=invitations,
        answers=ANSWERS,
        answering=answering,
        posted=posted or {},
        errors=errors or FormErrors(),
        notices=notices or [],
        now=datetime.now(UTC),
    )


def _answer_field(issue: Issue) -> str | None:
    expression = issue.expression or ""
    for element, name in (
        ("participantStatus", "answer"),
        ("start", "start"),
        ("end", "end"),
        ("comment", "comment"),
    ):
        if expression.endswith(f".{element}") or f"name='{element}'" in expression:
            return name
    return None


def checked_answer(posted: dict[str, str]) -> tuple[dict[str, Any], FormErrors]:
    """The answer's values as the API takes them, or what is wrong with them, by field."""
    errors = FormErrors()
    answer = posted.get("answer", "")
    values: dict[str, Any] = {"answer": answer, "comment": posted.get("comment", "").strip()}
    if answer not in ANSWERS:
        errors.add("answer", "Välj ett svar.")
    if answer == "tentative":
        for name, label in (("start", "föreslagen början"), ("end", "föreslaget slut")):
            if not posted.get(name):
                errors.add(name, f"Ange {label}: datum och klockslag.")
                continue
            try:
                values[name] = instant_of(posted[name])
            except ValueError as problem:
                errors.add(name, str(problem))
        start, end = values.get("start"), values.get("end")
        if start and end and datetime.fromisoformat(end) <= datetime.fromisoformat(start):
            errors.add("end", "Slutet ska vara efter början.")
    return values, errors


@router.post("/invitations/{invitation_id}/answer")
async def answer_invitation(
    request: Request, invitation_id: str, user: User, fhir: Fhir
) -> Response:
    if not INVITATION_ID.fullmatch(invitation_id):
        raise HTTPException(404)
    form = await request.form()
    posted = {name: str(form.get(name) or "") for name in (*ANSWER_FIELDS, "version")}
    again = {"answering": invitation_id, "posted": posted}
    if not VERSION.fullmatch(posted["version"]):
        errors = FormErrors()
        errors.add(None, "Formuläret saknar inbjudans version. Ladda om sidan och försök igen.")
        return await show_unit(request, user, fhir, errors=errors, status_code=400, **again)
    values, errors = checked_answer(posted)
    if errors:
        return await show_unit(request, user, fhir, errors=errors, status_code=422, **again)
    resource = answer_resource(
        invitation_id, values["answer"], user.organization or "",
        values.get("start"), values.get("end"), values["comment"] or None,
    )  # fmt: skip
    try:
        await fhir.create("sip", resource, if_match=posted["version"])
    except ChangedMeanwhile:
        errors = FormErrors()
        errors.add(None, CHANGED)
        return await show_unit(request, user, fhir, errors=errors, status_code=409, **again)
    except Refused as refused:
        if refused.status == 404:
            raise  # an invitation the user may not see: the not-found page
        errors = place_refusal(refused, ANSWER_FIELDS, field_of=_answer_field)
        return await show_unit(
            request, user, fhir, errors=errors, status_code=refused.status, **again
        )
    return RedirectResponse(f"/unit?answered={values['answer']}", status_code=303)
