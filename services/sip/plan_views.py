"""CareTeam, Goal and Appointment: resources that are views of one part of a plan.

Their id is `<plan id>-<part>` (`-team`, `-goal-1`, `-meeting-2`) and their `versionId` is
the plan version they were read from. Their history is the plan's history seen through the
view: one version for each plan version at which the part first appeared or looked different,
so an auditor sees when a goal was set, revised and assessed without the plan's other
changes, and every version a history lists can be read again with vread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.common.fhir_time import published
from services.sip.application import SipPlans
from services.sip.domain import Plan
from services.sip.fhir_mapping import appointment_to_fhir, care_team_to_fhir, goal_to_fhir


@dataclass(frozen=True)
class PlanView:
    resource_type: str
    parts: Callable[[Plan], Iterable[str]]
    render: Callable[[Plan, str], dict[str, Any]]

    def split_id(self, resource_id: str) -> tuple[str, str]:
        """(plan id, part) of `<plan id>-<part>`."""
        return resource_id[:36], resource_id[37:]

    def render_part(self, plan: Plan, part: str) -> dict[str, Any] | None:
        return self.render(plan, part) if part in set(self.parts(plan)) else None


PLAN_VIEWS = (
    PlanView("CareTeam", lambda plan: ("team",), lambda plan, _: care_team_to_fhir(plan)),
    PlanView("Goal", lambda plan: plan.goals, goal_to_fhir),
    PlanView("Appointment", lambda plan: plan.meetings, appointment_to_fhir),
)


@dataclass(frozen=True)
class ViewVersion:
    resource: dict[str, Any]
    at: datetime
    created: bool  # the part's first version

    @property
    def version_id(self) -> str:
        return self.resource["meta"]["versionId"]


def view_history(plans: SipPlans, plan_id: UUID, view: PlanView) -> dict[str, list[ViewVersion]]:
    """Every part's versions, oldest first, from one replay of the plan's events."""
    history: dict[str, list[ViewVersion]] = {}
    seen: dict[str, dict[str, Any]] = {}
    for plan in plans.versions(plan_id):
        for part in view.parts(plan):
            resource = view.render(plan, part)
            content = {key: value for key, value in resource.items() if key != "meta"}
            if seen.get(part) != content:
                versions = history.setdefault(part, [])
                moment = published(plan.modified_on)
                versions.append(ViewVersion(resource, moment, created=not versions))
                seen[part] = content
    return history
