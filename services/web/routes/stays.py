"""A stay's page (discharge from inpatient care):
its steps, its duties with their clocks, and the forms of the steps that are the user's unit's
to take now, posted as the stay's Encounter operations with the version the page showed; and
the admission (`Encounter/$admit`), the form that makes a stay. Every form is posted through
services/web/operation_forms.py, as the plan's are."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from services.web import texts
from services.web.dependencies import Fhir, User
from services.web.operation_forms import Errors, FormPage, submit_operation
from services.web.pages import render
from services.web.plan_forms import FORM_ERROR
from services.web.session import SignedInUser
from services.web.stay_forms import ADMIT, STAY_FORMS, admit_form, stay_forms_for
from services.web.stay_view import StayView, load_stay
from services.web.submissions import submission_of

router = APIRouter()
Posted = dict[str, list[str]]

STAY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def checked_stay_id(stay_id: str) -> str:
    if not STAY_ID.fullmatch(stay_id):
        raise HTTPException(404)
    return stay_id


@router.get("/stays/admit")
async def admit_page(request: Request, user: User) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    return show_admit(request, user)


@router.post("/stays/admit")
async def admit(request: Request, user: User, fhir: Fhir) -> Response:
    """The type-level `Encounter/$admit`: it makes the stay, so no version is sent; the form's
    submission key makes it once, however often the form is posted."""

    async def nothing_to_load() -> None:
        return None

    page = FormPage(
        load=nothing_to_load,
        show=lambda _, posted, errors, status: show_admit(request, user, posted, errors, status),
        done=lambda answer: f"/stays/{checked_stay_id(str(answer.body.get('id')))}?done=admit",
        missing_version=None,
        submission=submission_of(await request.form()),
    )
    return await submit_operation(request, fhir, user, ADMIT, "Encounter/$admit", page)


def show_admit(
    request: Request,
    user: SignedInUser,
    posted: Posted | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "stay_admit.html",
        status_code=status_code,
        form=admit_form(user, posted, errors),
        failed=ADMIT.legend if status_code >= 400 else None,
    )


@router.get("/stays/{stay_id}")
async def stay_page(
    request: Request, stay_id: str, user: User, fhir: Fhir, done: str | None = None
) -> Response:
    stay = await load_stay(fhir, checked_stay_id(stay_id))
    spec = ADMIT if done == ADMIT.operation else STAY_FORMS.get(done or "")
    return show_stay(request, stay, user, notices=[spec.done] if spec else [])


@router.post("/stays/{stay_id}/{operation}")
async def take_step(
    request: Request, stay_id: str, operation: str, user: User, fhir: Fhir
) -> Response:
    stay_id = checked_stay_id(stay_id)
    spec = STAY_FORMS.get(operation)
    if spec is None:
        raise HTTPException(404)

    def show(stay: StayView, posted: Posted, errors: Errors, status: int) -> Response:
        return show_stay(request, stay, user, operation, posted, errors, status)

    async def changed(stay: StayView, posted: Posted, version: str) -> Response:
        return show(stay, posted, {FORM_ERROR: [texts.STAY_CHANGED]}, 409)

    page = FormPage(
        load=lambda: load_stay(fhir, stay_id),
        show=show,
        changed=changed,
        done=lambda _: f"/stays/{stay_id}?done={operation}",
        missing_version=texts.MISSING_STAY_VERSION,
    )
    return await submit_operation(
        request, fhir, user, spec, f"Encounter/{stay_id}/${operation}", page
    )


def show_stay(
    request: Request,
    stay: StayView,
    user: SignedInUser,
    operation: str | None = None,
    posted: Posted | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
    notices: list[str] | None = None,
) -> Response:
    forms = stay_forms_for(stay, user, operation, posted, errors)
    shown = any(f.spec.operation == operation for f in forms)
    # A refused form the user's role cannot use at all is not shown: its refusal is.
    refusals = [] if shown else [m for messages in (errors or {}).values() for m in messages]
    return render(
        request,
        "stay.html",
        status_code=status_code,
        stay=stay,
        forms=forms,
        notices=notices or [],
        refusals=refusals,
        failed=STAY_FORMS[operation].legend if operation and status_code >= 400 else None,
        now=datetime.now(UTC),
        withheld_kind=texts.WITHHELD_KIND,
    )
