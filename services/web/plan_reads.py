"""Reading a plan for a page: the CarePlan, its CareTeam, Goals and Appointments, asked of
the SIP service at once, with the user's token."""

from __future__ import annotations

import asyncio
from typing import Any

from services.web.fhir_client import FhirClient, Refused
from services.web.plan_view import PlanView, goal_ids, meeting_ids, plan_view


async def load_plan(fhir: FhirClient, plan_id: str, at: str | None = None) -> PlanView:
    """The plan as this user may see it now, or as it stood at the instant `at`."""
    params = {"_at": at} if at else None
    plan = (await fhir.read("sip", f"CarePlan/{plan_id}", params)).body

    async def optional(path: str) -> dict[str, Any] | None:
        try:
            return (await fhir.read("sip", path, params)).body
        except Refused:  # a part withheld from this user, or not there at `at`
            return None

    goal_paths = [f"Goal/{g}" for g in goal_ids(plan)]
    team, *rest = await asyncio.gather(
        optional(f"CareTeam/{plan_id}-team"),
        *(optional(path) for path in goal_paths),
        *(optional(f"Appointment/{m}") for m in meeting_ids(plan)),
    )
    goals = [r for r in rest[: len(goal_paths)] if r]
    meetings = [r for r in rest[len(goal_paths) :] if r]
    return plan_view(plan, team, goals, meetings)


async def search_plans(fhir: FhirClient, form: dict[str, Any]) -> list[PlanView]:
    bundle = await fhir.search("sip", "CarePlan", form)
    plans = [
        plan_view(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "CarePlan"
    ]
    # The service pages in a stable order (by id); the list shows the latest changed first.
    return sorted(plans, key=lambda plan: plan.last_updated or "", reverse=True)
