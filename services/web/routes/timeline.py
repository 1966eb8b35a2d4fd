"""A plan's timeline: who did what, when, from which organisation and unit, on which consent
(one row per version, newest first, from `_history` and Provenance), and the plan as it
stood at a chosen moment (read with `_at`, and the consents it relied on then from
`$as-of`). For coordinators and professionals of the organisations taking part, and for
auditors of theirs; an organisation not taking part gets the API's 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from services.web.consent_view import ConsentSummary, consent_summary, consents_in
from services.web.dependencies import Fhir, User
from services.web.fhir_client import FhirClient, Refused, ServiceUnavailable
from services.web.form_errors import FormErrors
from services.web.pages import render
from services.web.plan_reads import load_plan
from services.web.plan_view import PlanView
from services.web.timeline_view import read_timeline
from services.web.times import fhir_instant, local_input, typed_instant

router = APIRouter()


@router.get("/plans/{plan_id}/timeline")
async def timeline(
    request: Request, plan_id: str, user: User, fhir: Fhir, at: str | None = None
) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    plan = await load_plan(fhir, plan_id)
    rows = await read_timeline(fhir, plan_id)
    consents = await _consents(fhir, {c for row in rows for c in row.consents})
    errors = FormErrors()
    then: PlanView | None = None
    then_consents: list[ConsentSummary] = []
    missing_then = False
    moment = typed_instant(at)
    if at and moment is None:
        errors.add("at", "Tidpunkten kunde inte läsas. Välj ett datum och en tid.")
    elif moment is not None:
        instant = fhir_instant(moment)
        try:
            then = await load_plan(fhir, plan_id, at=instant)
        except Refused as refused:
            if refused.status != 404:
                raise
            missing_then = True
        if then is not None:
            then_consents = await _consents_then(fhir, plan_id, instant)
    names = {m.organization: m.name for m in plan.organizations if m.organization and m.name}
    return render(
        request,
        "timeline.html",
        plan=plan,
        rows=rows,
        consents=consents,
        names=names,
        at=local_input(moment) if moment else (at or ""),
        moment=fhir_instant(moment) if moment else None,
        then=then,
        then_consents=then_consents,
        missing_then=missing_then,
        errors=errors,
        status_code=422 if errors else 200,
    )


async def _consents(fhir: FhirClient, ids: set[str]) -> dict[str, ConsentSummary]:
    """The consents the versions relied on, as the consent service shows them to this user
    now; one it does not show (or cannot) is named by its id only."""

    async def read(consent_id: str) -> tuple[str, ConsentSummary | None]:
        try:
            answer = await fhir.read("consent", f"Consent/{consent_id}")
        except (Refused, ServiceUnavailable):
            return consent_id, None
        return consent_id, consent_summary(answer.body)

    found = [await read(i) for i in sorted(ids)]
    return {i: summary for i, summary in found if summary is not None}


async def _consents_then(fhir: FhirClient, plan_id: str, instant: str) -> list[ConsentSummary]:
    """The consents the plan relied on at the instant, as they stood then (`$as-of`)."""
    try:
        answer = await fhir.read("sip", f"CarePlan/{plan_id}/$as-of", {"instant": instant})
    except (Refused, ServiceUnavailable):
        return []
    bundle: dict[str, Any] = answer.body
    return consents_in(bundle)
