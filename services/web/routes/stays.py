"""A stay's page (discharge from inpatient care):
its steps, its duties with their clocks, and the forms of the steps that are the user's unit's
to take now, posted as the stay's Encounter operations with the version the page showed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from services.web import texts
from services.web.dependencies import Fhir, User
from services.web.fhir_client import ChangedMeanwhile, Refused
from services.web.pages import render
from services.web.plan_forms import FORM_ERROR, Invalid, parameters_of, refusal_errors
from services.web.routes.plans import MISSING_VERSION, VERSION, posted_values
from services.web.session import SignedInUser
from services.web.stay_forms import STAY_FORMS, stay_forms_for
from services.web.stay_view import StayView, load_stay

router = APIRouter()

STAY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
CHANGED = (
    "Någon annan har ändrat vistelsen medan du arbetade. Se hur den ser ut nu och försök igen."
)


def checked_stay_id(stay_id: str) -> str:
    if not STAY_ID.fullmatch(stay_id):
        raise HTTPException(404)
    return stay_id


@router.get("/stays/{stay_id}")
async def stay_page(
    request: Request, stay_id: str, user: User, fhir: Fhir, done: str | None = None
) -> Response:
    stay = await load_stay(fhir, checked_stay_id(stay_id))
    spec = STAY_FORMS.get(done or "")
    return show_stay(request, stay, user, notices=[spec.done] if spec else [])


@router.post("/stays/{stay_id}/{operation}")
async def take_step(
    request: Request, stay_id: str, operation: str, user: User, fhir: Fhir
) -> Response:
    stay_id = checked_stay_id(stay_id)
    spec = STAY_FORMS.get(operation)
    if spec is None:
        raise HTTPException(404)
    form = await request.form()
    posted = posted_values(form)
    version = str(form.get("version") or "")
    if not VERSION.fullmatch(version):
        stay = await load_stay(fhir, stay_id)
        errors = {FORM_ERROR: [MISSING_VERSION.replace("planens", "vistelsens")]}
        return show_stay(request, stay, user, operation, posted, errors, status_code=400)
    try:
        parameters = parameters_of(spec, posted)
    except Invalid as invalid:
        stay = await load_stay(fhir, stay_id)
        return show_stay(request, stay, user, operation, posted, invalid.errors, 400)
    try:
        await fhir.operation("sip", f"Encounter/{stay_id}/${operation}", parameters, version)
    except ChangedMeanwhile:
        stay = await load_stay(fhir, stay_id)
        return show_stay(request, stay, user, operation, posted, {FORM_ERROR: [CHANGED]}, 409)
    except Refused as refused:
        stay = await load_stay(fhir, stay_id)  # a stay the user may not see: the 404 page
        errors = refusal_errors(spec, refused, stay, user)  # type: ignore[arg-type]
        return show_stay(request, stay, user, operation, posted, errors, refused.status)
    return RedirectResponse(f"/stays/{stay_id}?done={operation}", status_code=303)


def show_stay(
    request: Request,
    stay: StayView,
    user: SignedInUser,
    operation: str | None = None,
    posted: dict[str, list[str]] | None = None,
    errors: dict[str, list[str]] | None = None,
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
