"""Who may do what to a plan: one matrix of roles × operations, and the organisation
condition of each allowed cell. Every plan operation's checks are built from its row here
(`guard`), `docs/role-matrix.md` is generated from it (`matrix_markdown`), and
tests/test_role_matrix.py calls every cell over HTTP. A cell that is not in the matrix is
refused: a new operation or role is closed until someone writes down who may use it.

Reads are not here: who sees a plan (and which of its entries) is the disclosure rule's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from contracts.actor import ROLES, Actor
from services.common.fhir_api import FhirError
from services.common.operations.declaration import OperationCall
from services.sip.domain import PERSON_PARTIES, PRINCIPALS, Plan

Holds = Callable[[Plan, Actor, Any], bool]


@dataclass(frozen=True)
class Condition:
    """The organisation (or person) condition of an allowed cell; `rule` names it in a 403."""

    rule: str
    says: str
    holds: Holds


def _organization(actor: Actor) -> str:
    return actor.organization or ""


def _principal_taking_part(plan: Plan, actor: Actor) -> bool:
    return plan.kind_of(_organization(actor)) in PRINCIPALS


def _overall_responsible(plan: Plan, actor: Actor) -> bool:
    # Before anyone holds it, the organisation that started the plan answers for it.
    holder = plan.overall_responsible or plan.starting_organization
    return _organization(actor) == holder


def _invited(plan: Plan, actor: Actor) -> bool:
    # The starting organisation takes part from the start: it has no invitation to accept.
    organization = _organization(actor)
    return plan.takes_part(organization) and organization != plan.starting_organization


def _deviation_against_caller(plan: Plan, actor: Actor, parameters: Any) -> bool:
    deviation = getattr(parameters, "deviation", None)
    if deviation not in plan.deviations:
        return plan.takes_part(_organization(actor))  # the domain names the unknown deviation
    against = plan.deviation_against(deviation)
    if against is None:  # reported without an intervention: any organisation taking part
        return plan.takes_part(_organization(actor))
    return _organization(actor) == against


def _own_plan(plan: Plan, actor: Actor) -> bool:
    return actor.patient is not None and actor.patient == plan.subject.get("value")


TAKES_PART = Condition(
    "organization-takes-part",
    "any organisation taking part in the plan",
    lambda plan, actor, _: plan.takes_part(_organization(actor)),
)
PRINCIPAL = Condition(
    "principal-takes-part",
    "a principal (region or municipality) taking part in the plan",
    lambda plan, actor, _: _principal_taking_part(plan, actor),
)
OVERALL_RESPONSIBLE = Condition(
    "overall-responsible",
    "the organisation holding the overall responsibility (before one does: the starting one)",
    lambda plan, actor, _: _overall_responsible(plan, actor),
)
STARTING_OR_RESPONSIBLE = Condition(
    "starting-or-responsible",
    "the starting organisation or the one holding the overall responsibility",
    lambda plan, actor, _: (
        _organization(actor) in (plan.starting_organization, plan.overall_responsible)
    ),
)
INVITED = Condition(
    "invited-organization",
    "the caller's own organisation, taking part by invitation (not the starting one, which "
    "takes part from the start)",
    lambda plan, actor, _: _invited(plan, actor),
)
DEVIATION_AGAINST = Condition(
    "deviation-against-caller",
    "only the organisation the deviation is against (the one responsible for its "
    "intervention); a deviation without an intervention: any organisation taking part",
    _deviation_against_caller,
)
MEETING_APPROVAL = Condition(
    "staff-record-a-meetings-approval",
    "any organisation taking part, recording the approval of a meeting the person attended "
    "(approvedBy = meeting); the person's own approval is given with the person's token",
    lambda plan, actor, p: (
        plan.takes_part(_organization(actor)) and getattr(p, "approvedBy", None) == "meeting"
    ),
)
PERSON_APPROVES = Condition(
    "person-approves",
    "the person's own plan, approving as the person, guardian or representative (a meeting's "
    "approval is recorded by staff)",
    lambda plan, actor, p: _own_plan(plan, actor) and getattr(p, "approvedBy", None) != "meeting",
)
MEETING_REJECTION = Condition(
    "staff-record-a-meetings-rejection",
    "any organisation taking part, recording the rejection of a meeting the person attended "
    "(rejectedBy = meeting); the person's own rejection is given with the person's token",
    lambda plan, actor, p: (
        plan.takes_part(_organization(actor)) and getattr(p, "rejectedBy", None) == "meeting"
    ),
)
PERSON_REJECTS = Condition(
    "person-rejects",
    "the person's own plan, rejecting as the person, guardian or representative (a meeting's "
    "rejection is recorded by staff)",
    lambda plan, actor, p: _own_plan(plan, actor) and getattr(p, "rejectedBy", None) != "meeting",
)
OWN_PLAN = Condition(
    "own-plan",
    "the person's own plan (the person, or a guardian or representative with the person's token)",
    lambda plan, actor, _: _own_plan(plan, actor),
)
PERSON_WITHDRAWS = Condition(
    "person-withdraws",
    "the person's own plan, with reason person-withdrew",
    lambda plan, actor, p: (
        _own_plan(plan, actor) and getattr(p, "reason", None) == "person-withdrew"
    ),
)
OWN_ORGANIZATION = Condition(
    "own-organization",
    "a plan of the caller's own organisation (the author is the caller's organisation)",
    lambda plan, actor, _: plan.starting_organization == _organization(actor),
)


def _answers_for_own(plan: Plan, actor: Actor, p: Any) -> bool:
    """Staff answer a meeting invitation for their own organisation, or record the answer of
    a participant of the plan (the person, a relative) given to them."""
    named = getattr(p, "organization", None)
    return plan.takes_part(_organization(actor)) and named in (None, _organization(actor))


def _person_answers(plan: Plan, actor: Actor, p: Any) -> bool:
    participant = plan.participants.get(getattr(p, "participant", None) or "")
    named_self = getattr(p, "organization", None) is None and (
        participant is None or participant.kind in PERSON_PARTIES
    )
    return _own_plan(plan, actor) and named_self


def _organizer(plan: Plan, actor: Actor, p: Any) -> bool:
    meeting = plan.meetings.get(getattr(p, "meeting", None) or "")
    if meeting is None:  # the domain names the unknown meeting
        return plan.takes_part(_organization(actor))
    return meeting.organizer is not None and meeting.organizer == _organization(actor)


MEETING_ANSWER = Condition(
    "meeting-answer-for-own",
    "any organisation taking part, answering for itself (organization: its own HSA-id, or "
    "none) or recording a participant's answer (participant: participant-N)",
    _answers_for_own,
)
PERSON_ANSWERS = Condition(
    "person-answers",
    "the person's own plan, answering as the person, guardian or representative (participant: "
    "theirs, or none)",
    _person_answers,
)
MEETING_ORGANIZER = Condition(
    "meeting-organizer",
    "the organisation that sent the meeting invitation",
    _organizer,
)

STAFF = ("coordinator", "professional", "integration")


def _cells(condition: Condition, *roles: str) -> dict[str, Condition]:
    return {role: condition for role in roles}


MATRIX: dict[str, dict[str, Condition]] = {
    "create": _cells(OWN_ORGANIZATION, "coordinator", "integration"),
    "activate": _cells(STARTING_OR_RESPONSIBLE, "coordinator", "integration"),
    "invite-organization": _cells(PRINCIPAL, "coordinator", "integration"),
    "accept-invitation": _cells(INVITED, *STAFF),
    "add-participant": _cells(PRINCIPAL, "coordinator", "integration"),
    "record-need": {**_cells(TAKES_PART, *STAFF), "patient": OWN_PLAN},
    "set-goal": {**_cells(TAKES_PART, *STAFF), "patient": OWN_PLAN},
    "revise-goal": {**_cells(TAKES_PART, *STAFF), "patient": OWN_PLAN},
    "assess-goal": _cells(TAKES_PART, *STAFF),
    "assign-intervention": _cells(TAKES_PART, "coordinator", "integration"),
    "set-intervention-status": _cells(TAKES_PART, *STAFF),
    "assign-overall-responsibility": _cells(PRINCIPAL, "coordinator"),
    "schedule-meeting": _cells(TAKES_PART, *STAFF),
    "record-meeting": _cells(TAKES_PART, *STAFF),
    "invite-to-meeting": _cells(TAKES_PART, *STAFF),
    "answer-meeting": {**_cells(MEETING_ANSWER, *STAFF), "patient": PERSON_ANSWERS},
    "reschedule-meeting": _cells(MEETING_ORGANIZER, *STAFF),
    "cancel-meeting": _cells(MEETING_ORGANIZER, *STAFF),
    "set-follow-up": _cells(PRINCIPAL, "coordinator", "integration"),
    "record-follow-up": _cells(TAKES_PART, *STAFF),
    "allocate-cost": _cells(PRINCIPAL, "coordinator", "integration"),
    "agree-cost-allocation": _cells(PRINCIPAL, "coordinator", "integration"),
    "approve-changes": {"coordinator": MEETING_APPROVAL, "patient": PERSON_APPROVES},
    "reject-changes": {"coordinator": MEETING_REJECTION, "patient": PERSON_REJECTS},
    "close": {
        **_cells(OVERALL_RESPONSIBLE, "coordinator", "integration"),
        "patient": PERSON_WITHDRAWS,
    },
    "report-deviation": _cells(TAKES_PART, *STAFF),
    "answer-deviation": _cells(DEVIATION_AGAINST, *STAFF),
}
"""Operation → role → the condition under which that role may call it. Auditors appear in no
row: they read history and logs and change nothing."""


def allowed(operation: str, role: str) -> Condition | None:
    return MATRIX[operation].get(role)


def _role_refused(operation: str, role: str) -> FhirError:
    return FhirError(
        403,
        "forbidden",
        f"role matrix: ${operation} is not open to the role {role} (docs/role-matrix.md)",
        rule=f"role-matrix-{operation}",
    )


@dataclass(frozen=True)
class Guard:
    """An operation's checks, as its matrix row says."""

    operation: str

    @property
    def patient_may(self) -> bool:
        return allowed(self.operation, "patient") is not None

    def may_call(self, actor: Actor) -> None:
        if allowed(self.operation, actor.role) is None:
            raise _role_refused(self.operation, actor.role)

    def may_change(self, call: OperationCall[Any]) -> None:
        self.check(call.target, call.actor, call.parameters)

    def check(self, plan: Plan, actor: Actor, parameters: Any = None) -> None:
        condition = allowed(self.operation, actor.role)
        if condition is None:
            raise _role_refused(self.operation, actor.role)
        if not condition.holds(plan, actor, parameters):
            raise FhirError(
                403,
                "forbidden",
                f"role matrix: ${self.operation} by a {actor.role} needs {condition.says}",
                rule=condition.rule,
            )


def may_start(actor: Actor, starting_organization: str) -> None:
    """`POST CarePlan`, checked from the matrix's `create` row before anything is written."""
    draft = SimpleNamespace(starting_organization=starting_organization)
    guard("create").check(draft, actor)  # type: ignore[arg-type]


def guard(operation: str) -> Guard:
    if operation not in MATRIX:
        raise KeyError(f"{operation} has no row in the role matrix")
    return Guard(operation)


def matrix_markdown() -> str:
    """docs/role-matrix.md: `python -m services.sip.permissions > docs/role-matrix.md`."""
    conditions = {c.rule: c for row in MATRIX.values() for c in row.values()}
    lines = [
        "# Who may do what to a plan",
        "",
        "Generated from `services/sip/permissions.py` (`python -m services.sip.permissions`);",
        "tests/test_role_matrix.py calls every cell over HTTP on both backends and checks that",
        "this file is the generated one. A refused cell is a 403 OperationOutcome naming the",
        "rule (`role-matrix-<operation>` for a role the row does not name, else the condition's",
        "rule); nothing is written. Reads are the disclosure rule's, not this matrix's.",
        "",
        "| operation | " + " | ".join(ROLES) + " |",
        "| --- | " + " | ".join("---" for _ in ROLES) + " |",
    ]
    for operation, row in MATRIX.items():
        name = "`POST CarePlan`" if operation == "create" else f"`${operation}`"
        cells = [f"`{row[role].rule}`" if role in row else "—" for role in ROLES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## The conditions", ""]
    lines += [f"- `{rule}`: {condition.says}." for rule, condition in conditions.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(matrix_markdown(), end="")
