"""Secure messages (Communication) about a plan or a stay: the thread of each (its messages,
unread by the user's unit first, and a form to send a message, an answer or a correction), and
opening a message, which marks it read for the user's unit (its receipt)."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from services.web.dependencies import Fhir, User
from services.web.fhir_client import FhirClient, Issue, Refused
from services.web.form_errors import FormErrors, place_refusal
from services.web.messages_view import (
    ABOUT_PATH,
    MessageView,
    message_of,
    new_message,
    search_messages,
    unread_first,
)
from services.web.pages import render
from services.web.plan_reads import load_plan
from services.web.session import SignedInUser
from services.web.stay_view import load_stay
from services.web.submissions import new_submission, submission_of
from services.web.texts import RECIPIENT_KIND

router = APIRouter()

RECORD_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
ABOUT_TYPE = {path: about_type for about_type, path in ABOUT_PATH.items()}
FIELDS = ("recipient", "text", "judgement", "correction")
MAX_TEXT = 10_000


@dataclass
class Thread:
    """A plan's or a stay's messages, and whom a message about it may go to."""

    about_type: str
    about_id: str
    title: str
    back: str
    recipients: list[tuple[str, str]]  # (HSA-id, label)
    messages: list[MessageView] = field(default_factory=list)

    def message(self, message_id: str | None) -> MessageView | None:
        return next((m for m in self.messages if m.id == message_id), None)


def _checked(kind: str, record_id: str) -> str:
    if kind not in ABOUT_TYPE or not RECORD_ID.fullmatch(record_id):
        raise HTTPException(404)
    return ABOUT_TYPE[kind]


async def load_thread(
    fhir: FhirClient, user: SignedInUser, about_type: str, about_id: str
) -> Thread:
    """The record through its own read (404 for whom it does not concern), then its messages
    in one search."""
    mine = {user.unit, user.organization}
    if about_type == "Encounter":
        stay = await load_stay(fhir, about_id)
        units = [(stay.ward, f"Avdelningen {stay.ward} ({stay.organization})")] + [
            (r.unit, f"{RECIPIENT_KIND.get(r.kind, r.kind)}: {r.unit} ({r.organization})")
            for r in stay.recipients
        ]
        thread = Thread(about_type, about_id, "Meddelanden om vistelsen", f"/stays/{about_id}",
                        [u for u in units if u[0] not in mine])  # fmt: skip
        search = {"encounter": f"Encounter/{about_id}"}
    else:
        plan = await load_plan(fhir, about_id)
        members = [
            (m.organization, f"{m.name or m.organization} ({m.organization})")
            for m in plan.organizations
            if m.organization and m.organization not in mine
        ]
        thread = Thread(about_type, about_id, f"Meddelanden om planen {plan.title}",
                        f"/plans/{about_id}", members)  # fmt: skip
        search = {"based-on": f"CarePlan/{about_id}"}
    thread.messages = unread_first(await search_messages(fhir, search), user)
    return thread


@router.get("/{kind}/{record_id}/messages")
async def thread_page(
    request: Request, kind: str, record_id: str, user: User, fhir: Fhir,
    reply: str | None = None, sent: str | None = None,
) -> Response:  # fmt: skip
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    thread = await load_thread(fhir, user, _checked(kind, record_id), record_id)
    answered = thread.message(reply)
    values: dict[str, Any] = {"submission": new_submission()}
    if answered is not None:
        values["recipient"] = [answered.sender_unit]
    return show_thread(request, thread, values, FormErrors(), answered, bool(sent))


@router.post("/{kind}/{record_id}/messages")
async def send(request: Request, kind: str, record_id: str, user: User, fhir: Fhir) -> Response:
    about_type = _checked(kind, record_id)
    form = await request.form()
    values: dict[str, Any] = {
        "recipient": [str(v) for v in form.getlist("recipient") if str(v).strip()],
        "text": str(form.get("text") or ""),
        "judgement": str(form.get("judgement") or "").strip(),
        "correction": str(form.get("correction") or "") == "true",
        "inResponseTo": str(form.get("inResponseTo") or ""),
        "submission": submission_of(form),
    }
    errors = FormErrors()
    if not values["text"].strip():
        errors.add("text", "Skriv meddelandet.")
    elif len(values["text"]) > MAX_TEXT:
        errors.add("text", f"Meddelandet får vara högst {MAX_TEXT} tecken.")
    if not values["recipient"]:
        errors.add("recipient", "Välj minst en mottagare.")
    if values["inResponseTo"] and not RECORD_ID.fullmatch(values["inResponseTo"]):
        raise HTTPException(404)
    if not errors:
        resource, condition = new_message(
            about_type, record_id, values["text"], values["recipient"], values["submission"],
            values["judgement"] or None, values["inResponseTo"] or None, values["correction"],
        )  # fmt: skip
        try:
            await fhir.create("sip", resource, if_none_exist=condition)
        except Refused as refused:
            errors = place_refusal(refused, FIELDS, field_of=_field_of)
            status = refused.status
        else:
            return RedirectResponse(f"/{kind}/{record_id}/messages?sent=1", status_code=303)
    else:
        status = 422
    thread = await load_thread(fhir, user, about_type, record_id)
    answered = thread.message(values["inResponseTo"])
    return show_thread(request, thread, values, errors, answered, status_code=status)


def _field_of(issue: Issue) -> str | None:
    """The form's field a refusal of the Communication is about."""
    expression = issue.expression or ""
    if issue.rule == "disclosure-requires-consent-or-judgement" or "extension" in expression:
        return "judgement"
    if "recipient" in expression or issue.rule == "recipient":
        return "recipient"
    if "payload" in expression:
        return "text"
    if issue.rule == "correction-by-sender":
        return "correction"
    return None


@router.post("/messages/{message_id}/open")
async def open_message(request: Request, message_id: str, user: User, fhir: Fhir) -> Response:
    """Opens a message: marked read for the user's unit if it was not, then shown in its
    thread. A posted form (with the CSRF token), so no link from elsewhere marks it read."""
    if not RECORD_ID.fullmatch(message_id):
        raise HTTPException(404)
    message = message_of((await fhir.read("sip", f"Communication/{message_id}")).body)
    if message.unread_by(user):
        # Read meanwhile by someone else of the unit, or not the user's to mark: shown anyway.
        with suppress(Refused):
            await fhir.operation(
                "sip", f"Communication/{message_id}/$mark-read", [], message.version
            )
    return RedirectResponse(f"{message.thread}#message-{message_id}", status_code=303)


def show_thread(
    request: Request,
    thread: Thread,
    values: dict[str, Any],
    errors: FormErrors,
    answered: MessageView | None,
    sent: bool = False,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "messages.html",
        status_code=status_code,
        thread=thread,
        values=values,
        errors=errors,
        answered=answered,
        sent=sent,
        kind=ABOUT_PATH[thread.about_type],
    )
