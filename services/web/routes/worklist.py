"""The coordinator's worklist: the plans the user's organisation takes part in, with status
and next follow-up, and the filters a working day needs (overdue follow-ups, invitations
waiting for us, open deviations against us, drafts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from services.common.fhir_time import swedish_today
from services.web.dependencies import Fhir, User
from services.web.pages import render
from services.web.plan_reads import search_plans

router = APIRouter()

Filter = Literal["all", "overdue", "invitations", "deviations", "drafts"]
FILTERS = {
    "all": "Alla planer",
    "overdue": "Försenad uppföljning",
    "invitations": "Inbjudningar till oss",
    "deviations": "Öppna avvikelser mot oss",
    "drafts": "Utkast",
}


@router.get("/worklist")
async def worklist(request: Request, user: User, fhir: Fhir, filter: Filter = "all") -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    today = swedish_today()  # the coordinator's date, not the machine's (UTC in production)
    form: dict[str, str] = {"care-team-organization": user.organization or ""}
    if filter == "overdue":
        form["follow-up-due"] = f"le{(today - timedelta(days=1)).isoformat()}"
        form["status"] = "active"
    elif filter == "drafts":
        form["status"] = "draft"
    elif filter == "invitations":
        form["invitation-pending"] = user.organization or ""
        del form["care-team-organization"]
    plans = await search_plans(fhir, form)
    if filter == "deviations":
        plans = [p for p in plans if p.open_deviations_against(user.organization)]
    plans.sort(key=lambda p: (p.next_follow_up or "9999", p.title))
    return render(
        request,
        "worklist.html",
        plans=plans,
        filter=filter,
        filters=FILTERS,
        today=today,
    )
