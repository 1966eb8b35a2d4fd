"""The SIP plan aggregate: a coordinated individual plan through its whole life.

The law's minimum content (HSL 16 kap. 4 §, SoL 2 kap. 7 §): which interventions are needed,
which principal is responsible for each (down to unit), what others than the principals do,
and which principal has the overall responsibility. Practice adds needs and wishes in the
person's own words, the person's goals, participants, meetings, follow-up and closure.

Pure domain: no I/O, no clock. Every command names who did it (`by`) and when (`at`), and
every event records both. Parts of the plan get ids in order (need-1, goal-2, ...), so a
replay gives the same ids; an id whose entry a rejection dropped is never given again.

Events carry plain dicts, stored as they always were; applying one turns them into the
frozen values of services/sip/parts.py. The aggregate stays in this module: its path is part
of every stored event's topic (`services.sip.domain:Plan.<event>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from contracts.personal_fields import AUTHOR_CLASSES
from services.common.disclosure import custodian_of
from services.common.domain import (
    RuleViolation,
    optional_date,
    optional_text,
    required_date,
    required_instant,
    required_person_identifier,
    required_text,
    required_texts,
)
from services.sip.parts import (
    Approval,
    Closure,
    CostAllocation,
    Deviation,
    DeviationAnswer,
    EventActor,
    FollowUp,
    Goal,
    GoalAssessment,
    GoalRevision,
    Intervention,
    InvitationAcceptance,
    Meeting,
    MeetingAnswer,
    Need,
    OverallResponsibility,
    Participant,
    PendingChange,
    ProposedFollowUpDate,
    Rejection,
    TakingPart,
)

PRINCIPALS = ("region", "municipality")
ORGANIZATION_KINDS = (*PRINCIPALS, "other")
INITIATIVES = ("region-unit", "municipal-unit", "person", "relative")
PARTICIPANT_KINDS = ("person", "relative", "guardian", "representative", "professional")
INTERVENTION_KINDS = (
    "treatment",
    "care",
    "support",
    "preventive",
    "rehabilitating",
    "self-care",
    "other",
)
INTERVENTION_STATUSES = ("planned", "in-progress", "done", "stopped")
GOAL_OUTCOMES = ("achieved", "partially-achieved", "not-achieved")
CLOSE_REASONS = ("goals-reached", "person-withdrew", "moved", "died", "replaced")
MEETING_ANSWERS = ("accepted", "declined", "tentative")
APPROVERS = ("person", "guardian", "representative", "meeting")
PERSON_PARTIES = ("person", "guardian", "representative")  # may speak for the person
# When the principals have not agreed otherwise (the seed's rule for placements).
DEFAULT_COST_SPLIT = {"region": 100 / 3, "municipality": 200 / 3}


class Plan(Aggregate):
    class Started(Aggregate.Created):
        class_version = 3
        subject: dict[str, str]
        starting_organization: str
        starting_organization_kind: str
        initiative: str
        title: str | None
        description: str | None
        started_at: datetime
        started_by: EventActor
        identifiers: list[dict[str, str]] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Plans started before organisation kinds were recorded came from a region unit.
            state["starting_organization_kind"] = "region"
            state["initiative"] = "region-unit"

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # Plans started before business identifiers were kept have none.
            state["identifiers"] = []

    @event(Started)
    def __init__(
        self,
        # Before the `*`: the library takes every keyword-only argument as required, and
        # callers from before identifiers existed give none.
        identifiers: list[dict[str, str]] | None = None,
        *,
        subject: dict[str, str],
        starting_organization: str,
        starting_organization_kind: str,
        initiative: str,
        title: str | None,
        description: str | None,
        started_at: datetime,
        started_by: EventActor,
    ) -> None:
        self.subject = subject
        # The creating system's names for the plan (system, value); unique per organisation.
        self.identifiers = [dict(identifier) for identifier in identifiers or []]
        self.starting_organization = starting_organization
        self.initiative = initiative
        self.title = title
        self.description = description
        self.started_at = started_at
        self.started_by = started_by
        self.status = "draft"
        self.activated_at: datetime | None = None
        self.consents: list[str] = []
        self.withdrawn_consents: list[str] = []
        self.changed_by = started_by
        self.organizations: dict[str, TakingPart] = {
            starting_organization: TakingPart(
                hsa_id=starting_organization,
                kind=starting_organization_kind,
                name=None,
                invited_at=started_at,
                acceptance=InvitationAcceptance(at=started_at),
            )
        }
        # Invited by staff to an active plan: they take part once the person approves.
        self.proposed_organizations: dict[str, TakingPart] = {}
        self.participants: dict[str, Participant] = {}
        self.needs: dict[str, Need] = {}
        self.goals: dict[str, Goal] = {}
        self.interventions: dict[str, Intervention] = {}
        self.meetings: dict[str, Meeting] = {}
        self.follow_ups: list[FollowUp] = []
        self.next_follow_up: date | None = None
        # A date staff set on an active plan: in force, yet the person may reject it.
        self.proposed_follow_up: ProposedFollowUpDate | None = None
        self.overall_responsibility: OverallResponsibility | None = None
        # A transfer on an active plan: the holder above keeps it until the person approves.
        self.proposed_overall_responsibility: OverallResponsibility | None = None
        self.cost_allocations: dict[str, CostAllocation] = {}
        self.deviations: dict[str, Deviation] = {}
        self.pending_changes: list[PendingChange] = []
        self.approvals: list[Approval] = []
        self.rejections: list[Rejection] = []
        self.closure: Closure | None = None

    @classmethod
    def _create(cls, event_class: Any, **kwargs: Any) -> Plan:
        """Starting a plan: the command's values are checked here, not in `__init__`, which
        also applies stored `Started` events on every replay and must take them as they are."""
        required_person_identifier(kwargs.get("subject"), "subject")
        required_text(kwargs.get("starting_organization"), "starting_organization")
        optional_text(kwargs.get("title"), "title")
        optional_text(kwargs.get("description"), "description")
        required_instant(kwargs.get("started_at"), "started_at")
        return super()._create(event_class, **kwargs)

    # What other parts of the service ask of a plan.

    @property
    def custodian(self) -> str | None:
        """The organisation whose data this is, for the access log."""
        return self.starting_organization

    @property
    def person_identifier(self) -> dict[str, str]:
        return self.subject

    @property
    def relied_on_consents(self) -> list[str]:
        return self.consents

    @property
    def overall_responsible(self) -> str | None:
        """The organisation holding the overall responsibility, if one does."""
        return self.overall_responsibility.organization if self.overall_responsibility else None

    def takes_part(self, organization: str) -> bool:
        """Invited and, on an active plan, approved by the person: a proposed organisation
        (`proposed_organizations`) sees nothing and does nothing until then."""
        return organization in self.organizations

    def kind_of(self, organization: str) -> str | None:
        taking_part = self.organizations.get(organization)
        return taking_part.kind if taking_part else None

    def retention_class_of(self, entry: Mapping[str, Any]) -> str | None:
        """The retention class of an entry's free text (an event's state, as it is sealed):
        the kind of its author's organisation, a region's or a municipality's
        (docs/decisions/0007); None (the plan's own class) for the person's own entries and
        another kind's."""
        author = entry.get("by") or entry.get("started_by")
        organization = author.get("organization") if isinstance(author, Mapping) else None
        if not organization or custodian_of(author) != organization:
            return None
        kind = entry.get("starting_organization_kind") or self.kind_of(organization)
        return kind if kind in AUTHOR_CLASSES else None

    @property
    def principals_taking_part(self) -> set[str]:
        return {o.kind for o in self.organizations.values() if o.kind in PRINCIPALS}

    @property
    def invitations_pending(self) -> list[str]:
        """The organisations taking part that have not accepted their invitation yet."""
        return [o.hsa_id for o in self.organizations.values() if o.acceptance is None]

    # Rules every change obeys.

    def _ensure_open(self) -> None:
        if self.closure is not None:
            raise RuleViolation("closed-plan-unchanged", "the plan is closed; nothing changes")

    def _ensure_taking_part(self, organization: str | None, rule: str, what: str) -> None:
        if organization is None or not self.takes_part(organization):
            raise RuleViolation(rule, f"{what} must be an organisation taking part in the plan")

    def _propose(
        self,
        change: str,
        at: datetime,
        by: EventActor,
        entry: str | None = None,
        *,
        new: bool = False,
    ) -> None:
        """Changes to an active plan wait for the person's approval; until then the entry they
        touch is shown as proposed. The person's own changes need no one else's approval."""
        self.changed_by = by
        if self._awaits_approval(by):
            self.pending_changes.append(
                PendingChange(change=change, at=at, by=by, entry=entry, new=new)
            )

    def _awaits_approval(self, by: EventActor) -> bool:
        return self.status == "active" and by.get("role") != "patient"

    def proposals_for(self, entry: str) -> list[PendingChange]:
        """The changes to an entry (need-1, goal-2, participant-1, an organisation's HSA-id)
        waiting for the person's approval."""
        return [change for change in self.pending_changes if change.entry == entry]

    def proposer_of(self, entry: str) -> str | None:
        """The custodian of the latest proposal on an entry (its proposed text or status)."""
        proposals = self.proposals_for(entry)
        return custodian_of(proposals[-1].by) if proposals else None

    def proposed_new(self, entry: str) -> bool:
        """Whether the entry itself is a proposal, added to the active plan but not approved."""
        return any(change.new for change in self.proposals_for(entry))

    def _next_id(self, kind: str, parts: Mapping[str, Any]) -> str:
        """The id of the next part of a kind (need-3, goal-2, ...): one past the highest given,
        counting the entries a rejection dropped, so no id is ever given twice. Until a
        rejection the ids run without gaps, and this is the count plus one, as it always was."""
        given = [*parts, *(entry for r in self.rejections for entry in r.dropped)]
        numbers = [
            int(number)
            for prefix, _, number in (part.rpartition("-") for part in given)
            if prefix == kind and number.isdigit()
        ]
        return f"{kind}-{max(numbers, default=0) + 1}"

    @staticmethod
    def _choice(value: str, allowed: tuple[str, ...], rule: str, what: str) -> None:
        if value not in allowed:
            raise RuleViolation(rule, f"{what} is one of {', '.join(allowed)}, not '{value}'")

    # Participation.

    def invite_organization(
        self, *, hsa_id: str, kind: str, name: str | None, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        required_text(hsa_id, "organization")
        optional_text(name, "name")
        self._choice(kind, ORGANIZATION_KINDS, "organization-kind", "an organisation's kind")
        if hsa_id in self.organizations:
            raise RuleViolation("organization-invited-once", f"{hsa_id} already takes part")
        if hsa_id in self.proposed_organizations:
            raise RuleViolation(
                "organization-invited-once", f"{hsa_id} is invited already, waiting for approval"
            )
        self._organization_invited(hsa_id=hsa_id, kind=kind, name=name, at=at, by=by)

    @event("OrganizationInvited")
    def _organization_invited(
        self, hsa_id: str, kind: str, name: str | None, at: datetime, by: EventActor
    ) -> None:
        invited = TakingPart(hsa_id=hsa_id, kind=kind, name=name, invited_at=at)
        if self._awaits_approval(by):  # takes part once the person approves
            self.proposed_organizations[hsa_id] = invited
        else:
            self.organizations[hsa_id] = invited
        self._propose(f"organisation {hsa_id} invited", at, by, hsa_id, new=True)

    def accept_invitation(
        self,
        *,
        organization: str,
        unit: str | None,
        contact: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        """The invited organisation answers that it takes part, naming the unit that does and
        whom to ask there. Its own statement, not a change to the plan's content: in force at
        once, on an active plan too. An organisation proposed on an active plan is invited
        too, and its answer moves with it when the person approves (over the API it sees
        nothing of the plan before that, so it answers after: docs/disclosure.md)."""
        self._ensure_open()
        required_text(organization, "organization")
        optional_text(unit, "unit")
        optional_text(contact, "contact")
        invited = self.organizations.get(organization) or self.proposed_organizations.get(
            organization
        )
        if invited is None:
            raise RuleViolation(
                "invitation-accepted-by-invited", f"{organization} is not invited to the plan"
            )
        if invited.acceptance is not None:
            raise RuleViolation(
                "invitation-accepted-once",
                f"{organization} started the plan and takes part from the start"
                if organization == self.starting_organization
                else f"{organization} has accepted its invitation already",
            )
        self._invitation_accepted(
            organization=organization, unit=unit, contact=contact, at=at, by=by
        )

    @event("InvitationAccepted")
    def _invitation_accepted(
        self, organization: str, unit: str | None, contact: str | None, at: datetime, by: EventActor
    ) -> None:
        acceptance = InvitationAcceptance(at=at, unit=unit, contact=contact)
        for invited in (self.organizations, self.proposed_organizations):
            if organization in invited:
                invited[organization] = replace(invited[organization], acceptance=acceptance)
        self.changed_by = by

    def add_participant(self, *, participant: dict[str, Any], at: datetime, by: EventActor) -> str:
        self._ensure_open()
        for element in ("name", "role", "organization", "unit"):
            optional_text(participant.get(element), element)
        kind = participant.get("kind", "")
        self._choice(kind, PARTICIPANT_KINDS, "participant-kind", "a participant's kind")
        if kind == "relative" and not participant.get("person_agrees"):
            raise RuleViolation(
                "relative-needs-person-agreement",
                "a relative takes part only where the person agrees",
            )
        if kind == "professional":
            self._ensure_taking_part(
                participant.get("organization"),
                "participant-organization-takes-part",
                "a professional's organisation",
            )
        participant_id = self._next_id("participant", self.participants)
        self._participant_added(participant={**participant, "id": participant_id}, at=at, by=by)
        return participant_id

    @event("ParticipantAdded")
    def _participant_added(self, participant: dict[str, Any], at: datetime, by: EventActor) -> None:
        added = replace(Participant.from_payload(participant), custodian=custodian_of(by))
        self.participants[added.id] = added
        self._propose(f"{added.kind} {added.id} added", at, by, added.id, new=True)

    # Needs and goals, in the person's own words.

    def record_need(self, *, text: str, wishes: str | None, at: datetime, by: EventActor) -> str:
        self._ensure_open()
        required_text(text, "text")
        optional_text(wishes, "wishes")
        need_id = self._next_id("need", self.needs)
        self._need_recorded(need_id=need_id, text=text, wishes=wishes, at=at, by=by)
        return need_id

    @event("NeedRecorded")
    def _need_recorded(
        self, need_id: str, text: str, wishes: str | None, at: datetime, by: EventActor
    ) -> None:
        self.needs[need_id] = Need(
            id=need_id, text=text, wishes=wishes, recorded_at=at, custodian=custodian_of(by)
        )
        self._propose(f"{need_id} recorded", at, by, need_id, new=True)

    def set_goal(
        self,
        *,
        text: str,
        target_date: date | None,
        need_ids: list[str],
        at: datetime,
        by: EventActor,
    ) -> str:
        self._ensure_open()
        required_text(text, "text")
        optional_date(target_date, "targetDate")
        required_texts(need_ids, "need")
        self._ensure_known(need_ids, self.needs, "goal-addresses-known-needs")
        goal_id = self._next_id("goal", self.goals)
        self._goal_set(
            goal_id=goal_id, text=text, target_date=target_date, need_ids=need_ids, at=at, by=by
        )
        return goal_id

    @event("GoalSet")
    def _goal_set(
        self,
        goal_id: str,
        text: str,
        target_date: date | None,
        need_ids: list[str],
        at: datetime,
        by: EventActor,
    ) -> None:
        self.goals[goal_id] = Goal(
            id=goal_id,
            text=text,
            target_date=target_date,
            need_ids=tuple(need_ids),
            set_at=at,
            custodian=custodian_of(by),
        )
        self._propose(f"{goal_id} set", at, by, goal_id, new=True)

    def revise_goal(
        self,
        *,
        goal_id: str,
        text: str,
        target_date: date | None,
        reason: str,
        at: datetime,
        by: EventActor,
    ) -> None:
        self._ensure_open()
        required_text(text, "text")
        required_text(reason, "reason")
        optional_date(target_date, "targetDate")
        self._ensure_known([goal_id], self.goals, "known-goal")
        self._goal_revised(
            goal_id=goal_id, text=text, target_date=target_date, reason=reason, at=at, by=by
        )

    @event("GoalRevised")
    def _goal_revised(
        self,
        goal_id: str,
        text: str,
        target_date: date | None,
        reason: str,
        at: datetime,
        by: EventActor,
    ) -> None:
        goal = self.goals[goal_id]
        proposed = GoalRevision(text=text, target_date=target_date, reason=reason, at=at)
        if self._awaits_approval(by):  # the approved text stays until the person approves
            self.goals[goal_id] = replace(goal, proposal=proposed)
        else:
            self.goals[goal_id] = replace(_revised(goal, proposed), custodian=custodian_of(by))
        self._propose(f"{goal_id} revised", at, by, goal_id)

    def assess_goal(
        self, *, goal_id: str, outcome: str, note: str | None, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        self._ensure_known([goal_id], self.goals, "known-goal")
        optional_text(note, "note")
        self._choice(outcome, GOAL_OUTCOMES, "goal-outcome", "a goal's outcome")
        self._goal_assessed(goal_id=goal_id, outcome=outcome, note=note, at=at, by=by)

    @event("GoalAssessed")
    def _goal_assessed(
        self, goal_id: str, outcome: str, note: str | None, at: datetime, by: EventActor
    ) -> None:
        assessment = GoalAssessment(outcome=outcome, note=note, assessed_by=custodian_of(by), at=at)
        goal = self.goals[goal_id]
        if self._awaits_approval(by):  # the approved outcome stays until the person approves
            self.goals[goal_id] = replace(goal, proposed_assessment=assessment)
        else:
            self.goals[goal_id] = _assessed(goal, assessment)
        self._propose(f"{goal_id} assessed {outcome}", at, by, goal_id)

    # Interventions and responsibility.

    def assign_intervention(
        self, *, intervention: dict[str, Any], at: datetime, by: EventActor
    ) -> str:
        self._ensure_open()
        self._ensure_intervention_values(intervention)
        self._choice(
            intervention.get("kind", ""),
            INTERVENTION_KINDS,
            "intervention-kind",
            "an intervention's kind",
        )
        principal = intervention.get("responsible_principal", "")
        self._choice(
            principal,
            ORGANIZATION_KINDS,
            "intervention-responsible-principal",
            "the principal responsible for an intervention",
        )
        self._ensure_known(intervention.get("need_ids", []), self.needs, "known-need")
        self._ensure_known(intervention.get("goal_ids", []), self.goals, "known-goal")
        performer = intervention.get("performer_organization")
        if performer is not None:
            self._ensure_taking_part(
                performer,
                "intervention-organization-takes-part",
                "the organisation performing an intervention",
            )
        elif intervention.get("performer_participant") not in self.participants:
            raise RuleViolation(
                "intervention-has-performer",
                "an intervention is performed by an organisation taking part or by a participant",
            )
        if principal in PRINCIPALS:
            responsible = intervention.get("responsible_organization")
            self._ensure_taking_part(
                responsible, "intervention-organization-takes-part", "the responsible organisation"
            )
            if self.kind_of(responsible) != principal:
                raise RuleViolation(
                    "responsible-principal-matches-organization",
                    f"{responsible} is not a {principal} taking part in the plan",
                )
        intervention_id = self._next_id("intervention", self.interventions)
        structure = {k: v for k, v in intervention.items() if k != "text"}
        self._intervention_assigned(
            intervention={**structure, "id": intervention_id, "status": "planned"},
            at=at,
            by=by,
            text=intervention["text"],
        )
        return intervention_id

    @staticmethod
    def _ensure_intervention_values(intervention: Mapping[str, Any]) -> None:
        required_text(intervention.get("text"), "text")
        for element in (
            "performer_organization",
            "performer_unit",
            "performer_participant",
            "responsible_organization",
            "responsible_unit",
        ):
            optional_text(intervention.get(element), element)
        for element in ("need_ids", "goal_ids"):
            required_texts(intervention.get(element, []), element)
        for element in ("start", "end"):
            optional_date(intervention.get(element), element)

    class InterventionAssigned(Aggregate.Event):
        """v2 keeps the intervention's description (`text`, its author's free text) in a field
        of its own, sealed under its author's class, and the structure later events name by
        id (`intervention`) under the plan's (docs/decisions/0007)."""

        class_version = 2
        intervention: dict[str, Any]
        at: datetime
        by: EventActor
        text: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Upcasters run before the sealed dict is opened: its text stays in it.
            state["text"] = None

    @event(InterventionAssigned)
    def _intervention_assigned(
        self, intervention: dict[str, Any], at: datetime, by: EventActor, text: str | None = None
    ) -> None:
        payload = intervention if text is None else {**intervention, "text": text}
        assigned = replace(Intervention.from_payload(payload), custodian=custodian_of(by))
        self.interventions[assigned.id] = assigned
        self._propose(f"{assigned.id} assigned", at, by, assigned.id, new=True)

    def change_intervention_status(
        self, *, intervention_id: str, status: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        self._ensure_known([intervention_id], self.interventions, "known-intervention")
        optional_text(reason, "reason")
        self._choice(
            status, INTERVENTION_STATUSES, "intervention-status", "an intervention's status"
        )
        if status == "stopped" and not reason:
            raise RuleViolation(
                "stopped-intervention-reason", "a stopped intervention needs a reason"
            )
        self._intervention_status_changed(
            intervention_id=intervention_id, status=status, reason=reason, at=at, by=by
        )

    @event("InterventionStatusChanged")
    def _intervention_status_changed(
        self, intervention_id: str, status: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        current = self.interventions[intervention_id]
        if self._awaits_approval(by):  # the approved status stays until the person approves
            changed = replace(current, proposed_status=status, proposed_status_reason=reason)
        else:
            changed = replace(current, status=status, status_reason=reason)
        self.interventions[intervention_id] = changed
        self._propose(f"{intervention_id} {status}", at, by, intervention_id)

    def assign_overall_responsibility(
        self, *, organization: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        required_text(organization, "organization")
        optional_text(reason, "reason")
        if self.kind_of(organization) not in PRINCIPALS:
            raise RuleViolation(
                "overall-responsibility-principal",
                "overall responsibility lies with a region or municipality taking part",
            )
        if self.overall_responsibility is not None:
            if self.overall_responsibility.organization == organization:
                raise RuleViolation("overall-responsibility-changes", f"{organization} has it")
            proposed = self.proposed_overall_responsibility
            if proposed is not None and proposed.organization == organization:
                raise RuleViolation(
                    "overall-responsibility-changes",
                    f"a transfer to {organization} waits for approval already",
                )
            if not reason:
                raise RuleViolation(
                    "overall-responsibility-transfer-reason", "a transfer needs a reason"
                )
        self._overall_responsibility_assigned(
            organization=organization, reason=reason, at=at, by=by
        )

    @event("OverallResponsibilityAssigned")
    def _overall_responsibility_assigned(
        self, organization: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        previous = self.overall_responsibility
        # Stored events from before invitations waited for approval may name an organisation
        # that is now only proposed: it is found there, and replays as it was recorded.
        invited = self.organizations.get(organization) or self.proposed_organizations[organization]
        assigned = OverallResponsibility(
            organization=organization,
            principal=invited.kind,
            since=at,
            reason=reason,
            previous=previous.organization if previous else None,
        )
        if self._awaits_approval(by):  # the holder keeps it (and may close) until approval
            self.proposed_overall_responsibility = assigned
        else:
            self.overall_responsibility = assigned
        self._propose(f"overall responsibility to {organization}", at, by)

    # Meetings and follow-up.

    def schedule_meeting(self, *, meeting: dict[str, Any], at: datetime, by: EventActor) -> str:
        self._ensure_open()
        required_instant(meeting.get("start"), "start")
        required_instant(meeting.get("end"), "end")
        self._ensure_meeting_place(meeting.get("location"), meeting.get("video"))
        required_texts(meeting.get("invitees", []), "invitee")
        meeting_id = f"meeting-{len(self.meetings) + 1}"
        structure = {k: v for k, v in meeting.items() if k != "location"}
        self._meeting_scheduled(
            meeting={**structure, "id": meeting_id, "status": "booked"},
            at=at,
            by=by,
            location=meeting.get("location"),
        )
        return meeting_id

    class MeetingScheduled(Aggregate.Event):
        """v2 keeps the meeting's place (its author's free text) in a field of its own, sealed
        under its author's class, as MeetingInvited v2 does (docs/decisions/0007)."""

        class_version = 2
        meeting: dict[str, Any]
        at: datetime
        by: EventActor
        location: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Upcasters run before the sealed dict is opened: its place stays in it.
            state["location"] = None

    @event(MeetingScheduled)
    def _meeting_scheduled(
        self,
        meeting: dict[str, Any],
        at: datetime,
        by: EventActor,
        location: str | None = None,
    ) -> None:
        self._add_meeting(meeting if location is None else {**meeting, "location": location}, by)

    def _add_meeting(self, meeting: dict[str, Any], by: EventActor) -> None:
        """A meeting scheduled or invited to, the writer's organisation its custodian."""
        added = replace(Meeting.from_payload(meeting), custodian=custodian_of(by))
        self.meetings[added.id] = added
        self.changed_by = by

    def record_meeting(
        self,
        *,
        meeting_id: str,
        attendees: list[str],
        notes: str | None,
        approved_changes: bool,
        at: datetime,
        by: EventActor,
    ) -> None:
        self._ensure_open()
        self._ensure_known([meeting_id], self.meetings, "known-meeting")
        required_texts(attendees, "attendee")
        optional_text(notes, "notes")
        if approved_changes and not self._the_person_among(attendees):
            raise RuleViolation(
                "meeting-approval-needs-the-person",
                "a meeting approves changes only if the person or their guardian or "
                "representative attended: name their participant id (participant-N) as attendee",
            )
        self._meeting_held(
            meeting_id=meeting_id,
            attendees=attendees,
            notes=notes,
            approved_changes=approved_changes,
            at=at,
            by=by,
        )

    @event("MeetingHeld")
    def _meeting_held(
        self,
        meeting_id: str,
        attendees: list[str],
        notes: str | None,
        approved_changes: bool,
        at: datetime,
        by: EventActor,
    ) -> None:
        self.meetings[meeting_id] = replace(
            self.meetings[meeting_id],
            status="fulfilled",
            attendees=tuple(attendees),
            notes=notes,
            notes_custodian=custodian_of(by),
        )
        self.changed_by = by
        if approved_changes:
            self._approve(approved_by="meeting", meeting_id=meeting_id, at=at, by=by)

    # Meeting invitations (services/sip/meetings, docs/decisions/0013): the organiser invites
    # participants of the plan, each answers, the organiser reschedules or cancels.

    def invite_to_meeting(self, *, meeting: dict[str, Any], at: datetime, by: EventActor) -> str:
        self._ensure_open()
        organizer = by.get("organization")
        if by.get("role") == "patient" or not organizer:
            raise RuleViolation("meeting-organizer", "a meeting is organised by an organisation")
        self._ensure_meeting_time(meeting.get("start"), meeting.get("end"))
        self._ensure_meeting_place(meeting.get("location"), meeting.get("video"))
        optional_text(meeting.get("agenda"), "agenda")
        participants = required_texts(meeting.get("participants", []), "participant")
        if not participants:
            raise RuleViolation("meeting-has-participants", "a meeting invites participants")
        for kind, named in (
            ("organization", [p for p in participants if p not in self.participants]),
            ("participant", [p for p in participants if p in self.participants]),
        ):
            if len(set(named)) != len(named):
                raise RuleViolation(f"meeting-{kind}-once", "each participant is invited once")
        strangers = [p for p in participants if not self.in_the_plan(p)]
        if strangers:
            # A participant of the plan is named by its id (participant-N), an organisation
            # by its HSA-id: the rule names which of the two was wrong.
            kind = "participant" if strangers[0].startswith("participant-") else "organization"
            raise RuleViolation(
                f"meeting-{kind}-in-plan",
                f"{', '.join(strangers)}: not in the plan (an organisation taking part, or a "
                "participant of the plan named by its id, participant-N)",
            )
        meeting_id = self._next_id("meeting", self.meetings)
        structure = {k: v for k, v in meeting.items() if k not in ("agenda", "location")}
        self._meeting_invited(
            meeting={
                **structure,
                "participants": participants,
                "id": meeting_id,
                "status": "booked",
                "organizer": organizer,
            },
            at=at,
            by=by,
            agenda=meeting.get("agenda"),
            location=meeting.get("location"),
        )
        return meeting_id

    def in_the_plan(self, participant: str) -> bool:
        """An organisation taking part (its HSA-id) or a participant of the plan (its id); one
        added to an active plan and waiting for the person's approval is not yet, as an
        organisation proposed is not."""
        if participant in self.participants:
            return not self.proposed_new(participant)
        return self.takes_part(participant)

    @staticmethod
    def _ensure_meeting_time(start: object, end: object) -> None:
        start = required_instant(start, "start")
        if required_instant(end, "end") <= start:
            raise RuleViolation("meeting-ends-after-start", "a meeting ends after it starts")

    @staticmethod
    def _ensure_meeting_place(location: object, video: object) -> None:
        if not optional_text(location, "location") and not optional_text(video, "video"):
            raise RuleViolation("meeting-place", "a meeting has a place or a video link")

    class MeetingInvited(Aggregate.Event):
        """v2 keeps the invitation's agenda and place (its author's free texts) in fields of
        their own, sealed under its author's class, and the meeting later events name under
        the plan's (docs/decisions/0007)."""

        class_version = 2
        meeting: dict[str, Any]
        at: datetime
        by: EventActor
        agenda: str | None
        location: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Upcasters run before the sealed dict is opened: its texts stay in it.
            state["agenda"] = None
            state["location"] = None

    @event(MeetingInvited)
    def _meeting_invited(
        self,
        meeting: dict[str, Any],
        at: datetime,
        by: EventActor,
        agenda: str | None = None,
        location: str | None = None,
    ) -> None:
        texts = {"agenda": agenda, "location": location}
        self._add_meeting({**meeting, **{k: v for k, v in texts.items() if v is not None}}, by)

    def _open_invitation(self, meeting_id: str) -> Meeting:
        self._ensure_open()
        self._ensure_known([meeting_id], self.meetings, "known-meeting")
        meeting = self.meetings[meeting_id]
        if not meeting.invitation:
            raise RuleViolation("meeting-invitation", f"{meeting_id} was not sent as invitation")
        if meeting.status == "cancelled":
            raise RuleViolation("meeting-cancelled", f"{meeting_id} is cancelled")
        if meeting.status == "fulfilled":
            raise RuleViolation("meeting-held", f"{meeting_id} has been held")
        return meeting

    def answer_meeting(
        self,
        *,
        meeting_id: str,
        participant: str,
        answer: str,
        proposed_start: datetime | None,
        proposed_end: datetime | None,
        comment: str | None,
        at: datetime,
        by: EventActor,
    ) -> str:
        """An invited participant's answer; an answer repeated as it stands changes nothing
        (a retried request): the answer given is returned."""
        meeting = self._open_invitation(meeting_id)
        required_text(participant, "actor")
        if participant not in meeting.participants:
            raise RuleViolation(
                "meeting-answer-by-invited", f"{participant} is not invited to {meeting_id}"
            )
        self._choice(answer, MEETING_ANSWERS, "meeting-answer", "an answer")
        optional_text(comment, "comment")
        if proposed_start is not None or proposed_end is not None:
            if answer != "tentative":
                raise RuleViolation(
                    "meeting-proposal-tentative",
                    "another time is proposed with the answer tentative",
                )
            self._ensure_meeting_time(proposed_start, proposed_end)
        given = meeting.answer_of(participant)
        asked = (answer, proposed_start, proposed_end, comment)
        if given is not None and asked == (
            given.answer,
            given.proposed_start,
            given.proposed_end,
            given.comment,
        ):
            return given.id
        answer_id = f"{meeting_id}-response-{len(meeting.answers) + 1}"
        self._meeting_answered(
            meeting_id=meeting_id,
            answer={
                "id": answer_id,
                "participant": participant,
                "answer": answer,
                "proposed_start": proposed_start,
                "proposed_end": proposed_end,
            },
            at=at,
            by=by,
            comment=comment,
        )
        return answer_id

    class MeetingAnswered(Aggregate.Event):
        """v2 keeps the answer's comment (its author's free text) in a field of its own,
        sealed under its author's class, and the answer the meeting names under the plan's
        (docs/decisions/0007)."""

        class_version = 2
        meeting_id: str
        answer: dict[str, Any]
        at: datetime
        by: EventActor
        comment: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Upcasters run before the sealed dict is opened: its comment stays in it.
            state["comment"] = None

    @event(MeetingAnswered)
    def _meeting_answered(
        self,
        meeting_id: str,
        answer: dict[str, Any],
        at: datetime,
        by: EventActor,
        comment: str | None = None,
    ) -> None:
        meeting = self.meetings[meeting_id]
        if comment is not None:
            answer = {**answer, "comment": comment}
        given = MeetingAnswer(
            id=answer["id"],
            participant=answer["participant"],
            answer=answer["answer"],
            at=at,
            by=by,
            schedule=meeting.schedule,
            proposed_start=answer.get("proposed_start"),
            proposed_end=answer.get("proposed_end"),
            comment=answer.get("comment"),
            custodian=custodian_of(by),
        )
        self.meetings[meeting_id] = replace(meeting, answers=(*meeting.answers, given))
        self.changed_by = by

    def reschedule_meeting(
        self,
        *,
        meeting_id: str,
        start: datetime,
        end: datetime,
        location: str | None,
        video: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        """A new time (and place): every participant is asked again."""
        meeting = self._open_invitation(meeting_id)
        self._ensure_meeting_time(start, end)
        location = location if location is not None or video is not None else meeting.location
        video = video if location is not None or video is not None else meeting.video
        self._ensure_meeting_place(location, video)
        self._meeting_rescheduled(
            meeting_id=meeting_id, start=start, end=end, location=location, video=video, at=at,
            by=by,
        )  # fmt: skip

    @event("MeetingRescheduled")
    def _meeting_rescheduled(
        self,
        meeting_id: str,
        start: datetime,
        end: datetime,
        location: str | None,
        video: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        meeting = self.meetings[meeting_id]
        self.meetings[meeting_id] = replace(
            meeting, start=start, end=end, location=location, video=video,
            schedule=meeting.schedule + 1,
        )  # fmt: skip
        self.changed_by = by

    def cancel_meeting(
        self, *, meeting_id: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        self._open_invitation(meeting_id)
        optional_text(reason, "reason")
        self._meeting_cancelled(meeting_id=meeting_id, reason=reason, at=at, by=by)

    @event("MeetingCancelled")
    def _meeting_cancelled(
        self, meeting_id: str, reason: str | None, at: datetime, by: EventActor
    ) -> None:
        self.meetings[meeting_id] = replace(
            self.meetings[meeting_id], status="cancelled", cancel_reason=reason
        )
        self.changed_by = by

    def _the_person_among(self, attendees: list[str] | tuple[str, ...]) -> bool:
        """Attendees name participants by their id; the person is there if the participant of
        kind person, guardian or representative is."""
        return any(
            self.participants[a].kind in PERSON_PARTIES for a in attendees if a in self.participants
        )

    def set_follow_up(self, *, follow_up_date: date, at: datetime, by: EventActor) -> None:
        self._ensure_open()
        required_date(follow_up_date, "date")
        self._follow_up_date_set(follow_up_date=follow_up_date, at=at, by=by)

    @event("FollowUpDateSet")
    def _follow_up_date_set(self, follow_up_date: date, at: datetime, by: EventActor) -> None:
        if self._awaits_approval(by) and self.proposed_follow_up is None:
            # The approved date, which a rejection gives back.
            self.proposed_follow_up = ProposedFollowUpDate(replaced=self.next_follow_up)
        self.next_follow_up = follow_up_date
        # Replays stay possible for whatever was stored before the command refused a non-date.
        shown = follow_up_date.isoformat() if follow_up_date is not None else "none"
        self._propose(f"follow-up on {shown}", at, by)

    def record_follow_up(
        self,
        *,
        reviewed: str,
        changes: str | None,
        next_date: date | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        self._ensure_open()
        required_text(reviewed, "reviewed")
        optional_text(changes, "changes")
        optional_date(next_date, "nextDate")
        if self.status != "active":
            raise RuleViolation("follow-up-of-active-plan", "only an active plan is followed up")
        self._follow_up_recorded(
            reviewed=reviewed, changes=changes, next_date=next_date, at=at, by=by
        )

    @event("FollowUpRecorded")
    def _follow_up_recorded(
        self,
        reviewed: str,
        changes: str | None,
        next_date: date | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        self.follow_ups.append(
            FollowUp(
                reviewed=reviewed,
                changes=changes,
                at=at,
                by=by,
                was_due=self.next_follow_up,
                custodian=custodian_of(by),
            )
        )
        self.next_follow_up = next_date
        self.proposed_follow_up = None  # a follow-up held sets the next date, proposal or not
        if changes:
            self._propose(f"follow-up changes: {changes}", at, by)
        else:
            self.changed_by = by

    def follow_up_overdue(self, today: date) -> bool:
        return (
            self.closure is None and self.next_follow_up is not None and self.next_follow_up < today
        )

    # Cost allocation for placements.

    def propose_cost_allocation(
        self,
        *,
        intervention_id: str,
        shares: list[dict[str, Any]],
        period_start: date,
        period_end: date | None,
        at: datetime,
        by: EventActor,
        split_unclear: bool = False,
    ) -> str:
        """Shares as the principals give them; none, only when the proposing principal
        records that the split is unclear: then the default split, in force once the other
        principal records the same (`agree_cost_allocation`)."""
        self._ensure_open()
        self._ensure_known([intervention_id], self.interventions, "known-intervention")
        required_date(period_start, "periodStart")
        optional_date(period_end, "periodEnd")
        unclear_by: list[str] = []
        if shares and split_unclear:
            raise RuleViolation(
                "default-split-only-when-unclear", "shares are given, so the split is not unclear"
            )
        if not shares:
            if not split_unclear:
                raise RuleViolation(
                    "default-split-only-when-unclear",
                    "no shares given: the default 1/3–2/3 split applies only when both "
                    "principals record that the split is unclear (splitUnclear)",
                )
            shares = self._default_shares()
            proposer = by.get("organization") or ""
            if self.kind_of(proposer) not in PRINCIPALS:
                raise RuleViolation(
                    "cost-shares-between-principals", "only a principal declares the split unclear"
                )
            unclear_by = [proposer]
        for share in shares:
            if self.kind_of(share.get("organization", "")) not in PRINCIPALS:
                raise RuleViolation(
                    "cost-shares-between-principals",
                    "costs are shared between a region and a municipality taking part",
                )
            if (share.get("percent") is None) == (share.get("amount_sek") is None):
                raise RuleViolation("cost-share-amount", "a share is in percent or in kronor")
        percents = [share["percent"] for share in shares if share.get("percent") is not None]
        if percents and (len(percents) != len(shares) or abs(sum(percents) - 100) > 0.01):
            raise RuleViolation("cost-shares-whole", "shares in percent add up to 100")
        allocation_id = self._next_id("cost", self.cost_allocations)
        self._cost_allocation_proposed(
            allocation={
                "id": allocation_id,
                "intervention_id": intervention_id,
                "shares": shares,
                "period_start": period_start,
                "period_end": period_end,
                # Declaring the split unclear is the proposer's agreement to the default split.
                "agreed_by": list(unclear_by),
                "in_force": False,
                "split_unclear_by": list(unclear_by),
            },
            at=at,
            by=by,
        )
        return allocation_id

    def _default_shares(self) -> list[dict[str, Any]]:
        """When the split is unclear: one third the region, two thirds the municipality."""
        shares = []
        for principal, percent in DEFAULT_COST_SPLIT.items():
            organization = next(
                (o.hsa_id for o in self.organizations.values() if o.kind == principal), None
            )
            if organization is None:
                raise RuleViolation(
                    "cost-shares-between-principals", f"no {principal} takes part to share the cost"
                )
            shares.append(
                {
                    "principal": principal,
                    "organization": organization,
                    "percent": round(percent, 2),
                    "amount_sek": None,
                }
            )
        shares[-1]["percent"] = round(100 - shares[0]["percent"], 2)
        return shares

    @event("CostAllocationProposed")
    def _cost_allocation_proposed(
        self, allocation: dict[str, Any], at: datetime, by: EventActor
    ) -> None:
        proposed = replace(CostAllocation.from_payload(allocation), custodian=custodian_of(by))
        self.cost_allocations[proposed.id] = proposed
        self.changed_by = by

    def agree_cost_allocation(
        self, *, allocation_id: str, organization: str, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        self._ensure_known([allocation_id], self.cost_allocations, "known-cost-allocation")
        allocation = self.cost_allocations[allocation_id]
        if organization not in allocation.parties:
            raise RuleViolation(
                "cost-agreed-by-parties", f"{organization} is not a party to this cost allocation"
            )
        if organization in allocation.agreed_by:
            raise RuleViolation("cost-agreed-once", f"{organization} has agreed already")
        self._cost_allocation_agreed(
            allocation_id=allocation_id, organization=organization, at=at, by=by
        )

    @event("CostAllocationAgreed")
    def _cost_allocation_agreed(
        self, allocation_id: str, organization: str, at: datetime, by: EventActor
    ) -> None:
        allocation = self.cost_allocations[allocation_id]
        agreed_by = (*allocation.agreed_by, organization)
        # A default split is agreed by recording that the split is unclear.
        unclear_by = allocation.split_unclear_by
        if unclear_by:
            unclear_by = (*unclear_by, organization)
        # In force only when both principals have agreed.
        self.cost_allocations[allocation_id] = replace(
            allocation,
            agreed_by=agreed_by,
            in_force=allocation.parties <= set(agreed_by),
            split_unclear_by=unclear_by,
        )
        self.changed_by = by

    # The person's approval, activation and closure.

    def approve_changes(
        self, *, approved_by: str, meeting_id: str | None, at: datetime, by: EventActor
    ) -> None:
        self._ensure_open()
        self._choice(approved_by, APPROVERS, "approver", "who approves")
        self._ensure_the_persons_answer("approval", approved_by, meeting_id)
        self._changes_approved(approved_by=approved_by, meeting_id=meeting_id, at=at, by=by)

    def _ensure_the_persons_answer(
        self, answer: str, answered_by: str, meeting_id: str | None
    ) -> None:
        """An approval or rejection answers changes that wait, and one recorded for a meeting
        names a held meeting that the person (or their guardian or representative) attended."""
        verb = {"approval": "approve", "rejection": "reject"}[answer]
        if not self.pending_changes:
            raise RuleViolation(f"changes-to-{verb}", "no changes wait for approval")
        if answered_by == "meeting":
            meeting = self.meetings.get(meeting_id or "")
            if meeting is None or not self._the_person_among(meeting.attendees):
                raise RuleViolation(
                    f"meeting-{answer}-needs-the-person",
                    f"a meeting's {answer} names a held meeting (meeting) that the person or "
                    "their guardian or representative attended",
                )

    @event("ChangesApproved")
    def _changes_approved(
        self, approved_by: str, meeting_id: str | None, at: datetime, by: EventActor
    ) -> None:
        self._approve(approved_by=approved_by, meeting_id=meeting_id, at=at, by=by)

    def _approve(
        self, *, approved_by: str, meeting_id: str | None, at: datetime, by: EventActor
    ) -> None:
        self._apply_proposals(at)
        self.proposed_follow_up = None
        self.approvals.append(
            Approval(
                approved_by=approved_by,
                meeting_id=meeting_id,
                at=at,
                changes=tuple(self.pending_changes),
                by=by,
            )
        )
        self.pending_changes = []
        self.changed_by = by

    def _apply_proposals(self, at: datetime) -> None:
        """What was held as a proposal (an invited organisation, a transfer of the overall
        responsibility, a goal's revision or assessment, an intervention's status) comes into
        force with the approval."""
        self.organizations.update(self.proposed_organizations)
        self.proposed_organizations = {}
        if self.proposed_overall_responsibility is not None:  # held from the approval on
            self.overall_responsibility = replace(self.proposed_overall_responsibility, since=at)
            self.proposed_overall_responsibility = None
        for entry in {c.entry for c in self.pending_changes if c.entry}:
            goal = self.goals.get(entry)
            if goal is not None and goal.proposal is not None:
                # The text in force is now the proposer's entry.
                self.goals[entry] = replace(
                    _revised(replace(goal, proposal=None), goal.proposal),
                    custodian=self.proposer_of(entry),
                )
            goal = self.goals.get(entry)
            if goal is not None and goal.proposed_assessment is not None:
                self.goals[entry] = _assessed(goal, goal.proposed_assessment)
            intervention = self.interventions.get(entry)
            if intervention is not None and intervention.proposed_status is not None:
                self.interventions[entry] = replace(
                    intervention,
                    status=intervention.proposed_status,
                    status_reason=intervention.proposed_status_reason,
                    proposed_status=None,
                    proposed_status_reason=None,
                )

    def reject_changes(
        self,
        *,
        rejected_by: str,
        meeting_id: str | None,
        reason: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        """The person says no to the changes waiting for their approval, all of them at once,
        as an approval takes them all: the plan stays as the person approved it."""
        self._ensure_open()
        optional_text(reason, "reason")
        self._choice(rejected_by, APPROVERS, "rejecter", "who rejects")
        self._ensure_the_persons_answer("rejection", rejected_by, meeting_id)
        self._changes_rejected(
            rejected_by=rejected_by, meeting_id=meeting_id, reason=reason, at=at, by=by
        )

    @event("ChangesRejected")
    def _changes_rejected(
        self,
        rejected_by: str,
        meeting_id: str | None,
        reason: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        dropped = self._drop_proposals()
        self.rejections.append(
            Rejection(
                rejected_by=rejected_by,
                meeting_id=meeting_id,
                reason=reason,
                at=at,
                changes=tuple(self.pending_changes),
                by=by,
                dropped=dropped,
            )
        )
        self.pending_changes = []
        self.changed_by = by

    def _drop_proposals(self) -> tuple[str, ...]:
        """Undoes what waits for approval: an entry that is itself a proposal (a need, goal,
        intervention, participant or organisation) is removed, with the cost allocations of a
        removed intervention and the references to it from the entries that stay; a goal's
        proposed revision and assessment, an intervention's proposed status and a proposed
        transfer of the overall responsibility are dropped; a proposed follow-up date gives
        way to the one it replaced. Returns the ids of what was removed."""
        proposed = {c.entry for c in self.pending_changes if c.new and c.entry}
        removed = set(self.proposed_organizations)
        self.proposed_organizations = {}
        self.proposed_overall_responsibility = None
        if self.proposed_follow_up is not None:
            self.next_follow_up = self.proposed_follow_up.replaced
            self.proposed_follow_up = None
        for parts in (self.participants, self.needs, self.goals, self.interventions):
            for entry in proposed & set(parts):
                del parts[entry]
                removed.add(entry)
        for allocation_id, allocation in list(self.cost_allocations.items()):
            if allocation.intervention_id in removed:
                del self.cost_allocations[allocation_id]
                removed.add(allocation_id)

        def kept(ids: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(i for i in ids if i not in removed)

        for goal_id, goal in self.goals.items():
            self.goals[goal_id] = replace(
                goal, need_ids=kept(goal.need_ids), proposal=None, proposed_assessment=None
            )
        for intervention_id, intervention in self.interventions.items():
            self.interventions[intervention_id] = replace(
                intervention,
                need_ids=kept(intervention.need_ids),
                goal_ids=kept(intervention.goal_ids),
                proposed_status=None,
                proposed_status_reason=None,
            )
        return tuple(sorted(removed))

    def activation_problems(self) -> list[str]:
        """Rules the plan itself answers before it may be activated (consent is asked apart)."""
        problems = []
        if self.status != "draft":
            return [f"activate-only-draft: only a draft is activated; this one is {self.status}"]
        missing = [p for p in PRINCIPALS if p not in self.principals_taking_part]
        if missing:
            problems.append(
                f"activation-needs-both-principals: no {' or '.join(missing)} takes part"
            )
        if self.overall_responsibility is None:
            problems.append("activation-needs-overall-responsibility: none assigned")
        if not self.needs:
            problems.append("activation-needs-a-need: no need recorded")
        if not self.interventions:
            problems.append("activation-needs-an-intervention: none assigned")
        if self.next_follow_up is None:
            problems.append("activation-needs-follow-up-date: none set")
        return problems

    def ensure_can_activate(self) -> None:
        self._ensure_open()
        problems = self.activation_problems()
        if problems:
            raise RuleViolation(problems[0].split(":")[0], "; ".join(problems))

    def activate(self, *, consents: list[str], at: datetime, by: EventActor) -> None:
        self.ensure_can_activate()
        if not consents:
            raise RuleViolation("activation-requires-consent", "activation needs a consent")
        self._activated(consents=consents, activated_at=at, activated_by=by)

    @event("Activated")
    def _activated(
        self, consents: list[str], activated_at: datetime, activated_by: EventActor
    ) -> None:
        self.status = "active"
        self.consents = consents
        self.activated_at = activated_at
        self.changed_by = activated_by

    def note_consent_withdrawn(self, *, consent_id: str, at: datetime, by: EventActor) -> bool:
        """Records that a consent the plan relied on was withdrawn; False if nothing to note."""
        if consent_id not in self.consents or consent_id in self.withdrawn_consents:
            return False
        self._consent_withdrawn(consent_id=consent_id, at=at, by=by)
        return True

    @event("ConsentWithdrawn")
    def _consent_withdrawn(self, consent_id: str, at: datetime, by: EventActor) -> None:
        self.withdrawn_consents.append(consent_id)
        self.changed_by = by

    def close(
        self,
        *,
        reason: str,
        note: str | None,
        replaced_by: str | None,
        at: datetime,
        by: EventActor,
    ) -> None:
        self._ensure_open()
        optional_text(note, "note")
        optional_text(replaced_by, "replacedBy")
        self._choice(reason, CLOSE_REASONS, "close-reason", "a closing reason")
        if reason == "replaced" and not replaced_by:
            raise RuleViolation("replaced-by-plan", "a replaced plan names the plan replacing it")
        self._closed(reason=reason, note=note, replaced_by=replaced_by, at=at, by=by)

    @event("Closed")
    def _closed(
        self, reason: str, note: str | None, replaced_by: str | None, at: datetime, by: EventActor
    ) -> None:
        self.closure = Closure(reason=reason, note=note, replaced_by=replaced_by, at=at, by=by)
        self.status = "completed" if reason in ("goals-reached", "replaced") else "revoked"
        self.changed_by = by

    # Deviations (avvikelser): a responsibility agreed in the plan was not carried out.

    def report_deviation(
        self,
        *,
        organization: str,
        intervention_id: str | None,
        text: str,
        at: datetime,
        by: EventActor,
    ) -> str:
        required_text(text, "text")
        self._ensure_taking_part(
            organization, "deviation-by-participant", "the organisation reporting a deviation"
        )
        if intervention_id is not None:
            self._ensure_known([intervention_id], self.interventions, "known-intervention")
            if self._responsible_for(intervention_id) == organization:
                raise RuleViolation(
                    "deviation-against-another",
                    "a deviation is reported against another organisation than the reporter's: "
                    f"{organization} is responsible for {intervention_id}",
                )
        deviation_id = f"deviation-{len(self.deviations) + 1}"
        self._deviation_reported(
            deviation_id=deviation_id,
            organization=organization,
            intervention_id=intervention_id,
            text=text,
            at=at,
            by=by,
        )
        return deviation_id

    def report_missed_deadline(
        self,
        *,
        reporter: str,
        against: str | None,
        source: dict[str, str],
        text: str,
        at: datetime,
        by: EventActor,
    ) -> str | None:
        """A deadline of the law missed by the organisation `against`, found by the service's
        legal clock on the record `reporter` keeps (a discharge stay: its hospital), raised as
        a deviation of the plan once per `source` (the record, the duty and its due time):
        asked again it raises nothing (None). Not a participant's report, so neither the
        reporter's taking part nor "against another" is asked; a closed plan takes none."""
        required_text(text, "text")
        if any(d.source == source for d in self.deviations.values()) or self.closure:
            return None
        deviation_id = f"deviation-{len(self.deviations) + 1}"
        self._deviation_reported(
            deviation_id=deviation_id,
            organization=reporter,
            intervention_id=None,
            text=text,
            at=at,
            by=by,
            against=against,
            source=source,
        )
        return deviation_id

    class DeviationReported(Aggregate.Event):
        """v2 names the organisation a deviation is against when no intervention says it
        (one the legal clock raised), and what raised it (`source`)."""

        class_version = 2
        deviation_id: str
        organization: str
        intervention_id: str | None
        text: str
        at: datetime
        by: EventActor
        against: str | None
        source: dict[str, str] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Reported by a participant: against the intervention's organisation, if any.
            state["against"] = None
            state["source"] = None

    @event(DeviationReported)
    def _deviation_reported(
        self,
        deviation_id: str,
        organization: str,
        intervention_id: str | None,
        text: str,
        at: datetime,
        by: EventActor,
        against: str | None = None,
        source: dict[str, str] | None = None,
    ) -> None:
        self.deviations[deviation_id] = Deviation(
            id=deviation_id,
            organization=organization,
            intervention_id=intervention_id,
            text=text,
            reported_at=at,
            custodian=custodian_of(by),
            against=against,
            source=source,
        )
        self.changed_by = by

    def answer_deviation(
        self, *, deviation_id: str, organization: str, answer: str, at: datetime, by: EventActor
    ) -> None:
        self._ensure_known([deviation_id], self.deviations, "known-deviation")
        required_text(answer, "answer")
        self._ensure_taking_part(
            organization, "deviation-by-participant", "the organisation answering a deviation"
        )
        if self.deviations[deviation_id].answer is not None:
            raise RuleViolation("deviation-answered-once", f"{deviation_id} is answered already")
        self._deviation_answered(
            deviation_id=deviation_id, organization=organization, answer=answer, at=at, by=by
        )

    @event("DeviationAnswered")
    def _deviation_answered(
        self, deviation_id: str, organization: str, answer: str, at: datetime, by: EventActor
    ) -> None:
        self.deviations[deviation_id] = replace(
            self.deviations[deviation_id],
            answer=DeviationAnswer(
                text=answer, organization=organization, at=at, custodian=custodian_of(by)
            ),
        )
        self.changed_by = by

    def deviation_against(self, deviation_id: str) -> str | None:
        """The organisation a deviation is against: the one it names (a missed deadline's), else
        the one responsible for its intervention (else the one performing it); None for a
        deviation reported without either."""
        deviation = self.deviations[deviation_id]
        return deviation.against or self._responsible_for(deviation.intervention_id)

    def _responsible_for(self, intervention_id: str | None) -> str | None:
        intervention = self.interventions.get(intervention_id or "")
        if intervention is None:
            return None
        return intervention.responsible_organization or intervention.performer_organization

    @property
    def open_deviations(self) -> list[Deviation]:
        return [d for d in self.deviations.values() if d.answer is None]

    def _ensure_known(self, ids: list[str], parts: Mapping[str, Any], rule: str) -> None:
        unknown = [part_id for part_id in ids if part_id not in parts]
        if unknown:
            raise RuleViolation(rule, f"the plan has no {', '.join(unknown)}")


def _revised(goal: Goal, revision: GoalRevision) -> Goal:
    """The goal with a revision in force; its history keeps what it said before."""
    before = GoalRevision(
        text=goal.text, target_date=goal.target_date, reason=revision.reason, at=revision.at
    )
    return replace(
        goal,
        text=revision.text,
        target_date=revision.target_date,
        revisions=(*goal.revisions, before),
    )


def _assessed(goal: Goal, assessment: GoalAssessment) -> Goal:
    """The goal with an assessment in force: achieved completes it."""
    return replace(
        goal,
        outcome=assessment.outcome,
        assessment_note=assessment.note,
        assessed_by=assessment.assessed_by,
        status="completed" if assessment.outcome == "achieved" else "active",
        proposed_assessment=None,
    )
