"""The plan: its page (the four legal elements first, then goals, participants, meetings,
follow-up, costs, deviations, the changes waiting for the person's approval, activation and
closure), every edit through one route that reads the posted form into the operation's
Parameters (services/web/plan_forms.py), and the printable plan for the person."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from services.common.fhir_time import swedish_today
from services.web import plan_page, texts, times
from services.web.dependencies import Fhir, User
from services.web.operation_forms import Errors, FormPage, submit_operation
from services.web.pages import render
from services.web.plan_forms import (
    FORMS,
    PRINCIPALS,
    forms_for,
    meeting_label,
    member_label,
    notes_of,
    organization_label,
    place_of,
    principal_user,
)
from services.web.plan_reads import load_plan
from services.web.plan_view import PlanView
from services.web.session import SignedInUser

router = APIRouter()

PLAN_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
PROPOSAL_NOTICE = "Ändringen gäller när personen har godkänt den."


def checked_plan_id(plan_id: str) -> str:
    if not PLAN_ID.fullmatch(plan_id):
        raise HTTPException(404)
    return plan_id


@router.get("/plans/{plan_id}")
async def plan_page_route(
    request: Request, plan_id: str, user: User, fhir: Fhir, done: str | None = None
) -> Response:
    plan = await load_plan(fhir, checked_plan_id(plan_id))
    notices = []
    spec = FORMS.get(done or "")
    if spec is not None:
        notices.append(spec.done)
        if spec.proposes and plan.status == "active" and not user.is_person:
            notices.append(PROPOSAL_NOTICE)
    return show_plan(request, plan, user, notices=notices)


@router.post("/plans/{plan_id}/{operation}")
async def edit_plan(
    request: Request, plan_id: str, operation: str, user: User, fhir: Fhir
) -> Response:
    plan_id = checked_plan_id(plan_id)
    spec = FORMS.get(operation)
    if spec is None:
        raise HTTPException(404)

    def show(plan: PlanView, posted: dict[str, list[str]], errors: Errors, status: int) -> Response:
        return show_plan(request, plan, user, operation, posted, errors, status)

    async def changed(plan: PlanView, posted: dict[str, list[str]], version: str) -> Response:
        changes = await plan_page.changes_since(fhir, plan_id, version, plan)
        return show_plan(request, plan, user, operation, posted, {}, 409, conflict=changes)

    page = FormPage(
        load=lambda: load_plan(fhir, plan_id),
        show=show,
        changed=changed,
        done=lambda _: f"/plans/{plan_id}?done={operation}",
        missing_version=texts.MISSING_PLAN_VERSION,
    )
    return await submit_operation(
        request, fhir, user, spec, f"CarePlan/{plan_id}/${operation}", page
    )


@router.get("/plans/{plan_id}/print")
async def print_plan(request: Request, plan_id: str, user: User, fhir: Fhir) -> Response:
    plan = await load_plan(fhir, checked_plan_id(plan_id))
    return render(
        request,
        "plan_print.html",
        plan=plan,
        printed=swedish_today().isoformat(),
        **helpers(plan),
    )


def show_plan(
    request: Request,
    plan: PlanView,
    user: SignedInUser,
    operation: str | None = None,
    posted: dict[str, list[str]] | None = None,
    errors: dict[str, list[str]] | None = None,
    status_code: int = 200,
    notices: list[str] | None = None,
    conflict: list[str] | None = None,
) -> Response:
    forms = forms_for(plan, user, operation, posted, errors)
    shown = any(f.spec.operation == operation for group in forms.values() for f in group)
    # A refused form the user's role cannot use at all is not shown: its refusal is.
    refusals = [] if shown else [m for messages in (errors or {}).values() for m in messages]
    return render(
        request,
        "plan.html",
        status_code=status_code,
        plan=plan,
        forms=forms,
        notices=notices or [],
        conflict=conflict,
        failed=FORMS[operation].legend if operation and status_code >= 400 else None,
        failed_id=f"form-{operation}" if shown else None,
        refusals=refusals,
        show_costs=principal_user(plan, user)
        or any(i.costs for i in plan.interventions)
        or bool(plan.withheld_kinds("cost-allocation")),
        **helpers(plan),
    )


def helpers(plan: PlanView) -> dict[str, Any]:
    """What the templates call to say the plan's codes and references plainly."""
    persons = {m.id: member_label(m) for m in plan.persons if m.id}
    return {
        "when": times.local,
        "org": lambda hsa_id: organization_label(plan, hsa_id),
        "withheld": lambda *kinds: plan_page.withheld_sentences(plan, *kinds),
        "change_text": lambda change: plan_page.change_in_swedish(plan, change),
        "note_text": plan_page.note_in_swedish,
        "intervention_text": lambda i: plan_page.intervention_text(plan, i),
        "person_name": lambda who: persons.get(who, who),
        "member_label": member_label,
        "meeting_label": meeting_label,
        "place_of": place_of,
        "notes_of": notes_of,
        "principals": PRINCIPALS,
        "print_name": lambda who: print_name(plan, who),
        "title": PERSON_NUMBER.sub("…", plan.title),
    }


# A personnummer or samordningsnummer typed into a plan's title stays out of <title>.
PERSON_NUMBER = re.compile(r"\b(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}\b")


HSA_ID = re.compile(r"^SE[0-9]{10,12}(-[A-Za-z0-9]{1,20})?$")
PRINTED_PRINCIPAL = {"region": "Regionen", "municipality": "Kommunen"}


def print_name(plan: PlanView, who: str | None) -> str:
    """An organisation's or participant's name for the person's printout, never an id."""
    if not who:
        return "–"
    for member in plan.organizations:
        if member.organization == who:
            return member.name or PRINTED_PRINCIPAL.get(member.kind, "En annan organisation")
    return "En organisation" if HSA_ID.fullmatch(who) else who
