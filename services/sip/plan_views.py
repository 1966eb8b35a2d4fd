"""CareTeam, Goal, Appointment and AppointmentResponse: resources that are views of one part
of a plan.

They are rendered from the plan as the reader may see it (services/sip/redaction.py): a goal
or meeting whose custodian the reader may not see is not there (404), and a view from which
something was withheld carries the same withheld marks as the CarePlan.

Their id is `<plan id>-<part>` (`-team`, `-goal-1`, `-meeting-2`,
`-meeting-2-response-1`) and their `versionId` is
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
from services.common.resource_routes import (
    Disclosed,
    ResourceAccess,
    ResourceVersion,
    resource_id,
)
from services.sip.domain import Plan
from services.sip.fhir_mapping import care_team_to_fhir, goal_to_fhir
from services.sip.meetings.fhir import answers_of, appointment_of, appointment_response_of


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
    PlanView("Appointment", lambda plan: plan.meetings, appointment_of),
    PlanView("AppointmentResponse", answers_of, appointment_response_of),
)


class PlanViewResource:
    """A view's resources as versioned resources, for the common version routes."""

    def __init__(self, access: ResourceAccess, view: PlanView) -> None:
        self.access = access
        self.view = view
        self.resource_type = view.resource_type

    def locate(self, id: str) -> tuple[UUID, str]:
        plan_id, part = self.view.split_id(id)
        return resource_id(plan_id), part

    def render(self, plan: Plan, part: str) -> dict[str, Any] | None:
        return self.view.render_part(plan, part)

    def versions(self, disclosed: Disclosed) -> dict[str, list[ResourceVersion]]:
        """Every part's versions as the caller may see them, oldest first, from one replay
        of the plan's events (a part the caller may not see has none)."""
        history: dict[str, list[ResourceVersion]] = {}
        seen: dict[str, dict[str, Any]] = {}
        for plan in disclosed.versions():
            for part in self.view.parts(plan):
                resource = self.view.render(plan, part)
                content = _content(resource)
                if seen.get(part) != content:
                    versions = history.setdefault(part, [])
                    versions.append(
                        ResourceVersion(
                            published(plan.modified_on),
                            resource["meta"]["versionId"],
                            created=not versions,
                            render=lambda resource=resource: resource,
                        )
                    )
                    seen[part] = content
        return history

    def changes(
        self, disclosed: Disclosed, version: int, at: datetime
    ) -> dict[str, ResourceVersion]:
        """The parts that plan `version` made or changed, as the caller may see them: the
        same versions `versions` lists, found from that version and the one before."""
        # One replay up to the version before, then its one event: not two replays.
        step = disclosed.stepper()
        before = step(version - 1) if version > 1 else None
        plan = step(version)
        earlier = (
            {part: _content(self.view.render(before, part)) for part in self.view.parts(before)}
            if before is not None
            else {}
        )
        changed = {}
        for part in self.view.parts(plan):
            resource = self.view.render(plan, part)
            if earlier.get(part) != _content(resource):
                changed[part] = ResourceVersion(
                    published(plan.modified_on),
                    resource["meta"]["versionId"],
                    created=part not in earlier,
                    render=lambda resource=resource: resource,
                )
        return changed

    # Not every plan event changes the part: the plan's versions are read to count them.
    replays_to_count = True

    def history_length(
        self, disclosed: Disclosed | None, since: datetime | None, events: int
    ) -> int:
        assert disclosed is not None
        return sum(
            1
            for versions in self.versions(disclosed).values()
            for version in versions
            if since is None or version.at >= since
        )


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """A view's resource without its meta (the plan version it was read from)."""
    return {key: value for key, value in resource.items() if key != "meta"}
