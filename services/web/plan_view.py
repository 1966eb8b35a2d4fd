"""A plan as the pages show it: the CarePlan the SIP service gave this user, with its
CareTeam, Goals and Appointments, read into plain dataclasses. Only what the API returned is
here; what it withheld from this user is listed as withheld (custodian, kind, count), never
silently missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.canonical import (
    EXT_COST_ALLOCATION,
    EXT_DEVIATION,
    EXT_DEVIATION_AGAINST,
    EXT_DEVIATION_ANSWER,
    EXT_DEVIATION_INTERVENTION,
    EXT_DEVIATION_MISSED_DEADLINE,
    EXT_INITIATIVE,
    EXT_INVITATION,
    EXT_OVERALL_RESPONSIBILITY,
    EXT_PENDING_APPROVAL,
    EXT_RESPONSIBLE_PRINCIPAL,
    EXT_WITHHELD_ENTRIES,
)

FOLLOW_UP = "Uppföljning"
WISHES = "Önskemål: "


def extensions(element: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in element.get("extension", []) if e.get("url") == url]


def extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    found = extensions(element, url)
    return found[0] if found else None


def part(ext: dict[str, Any] | None, name: str) -> Any:
    """The value of a complex extension's part `name` (the first `value[x]`)."""
    for sub in (ext or {}).get("extension", []):
        if sub.get("url") == name:
            return next((v for k, v in sub.items() if k.startswith("value")), None)
    return None


def parts(ext: dict[str, Any] | None, name: str) -> list[Any]:
    return [
        next((v for k, v in sub.items() if k.startswith("value")), sub)
        for sub in (ext or {}).get("extension", [])
        if sub.get("url") == name
    ]


def hsa_of(reference: Any) -> str | None:
    if isinstance(reference, dict):
        return (reference.get("identifier") or {}).get("value")
    return None


def local_id(reference: str) -> str:
    """`Goal/{plan}-goal-2` → `goal-2`; `#need-1` → `need-1`."""
    tail = reference.rsplit("/", 1)[-1].lstrip("#")
    for kind in ("goal-", "meeting-"):
        if kind in tail:
            return kind + tail.rsplit(kind, 1)[1]
    return tail


@dataclass(frozen=True)
class Withheld:
    custodian: str  # HSA-id, or "person"
    kind: str
    count: int


@dataclass(frozen=True)
class Need:
    id: str
    text: str
    wishes: str | None
    recorded: str | None
    pending: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CostAllocation:
    id: str
    in_force: bool
    period_start: str | None
    period_end: str | None
    shares: list[tuple[str | None, Any, Any]]  # (HSA-id, percent, amount SEK)
    agreed_by: list[str]
    split_unclear_by: list[str]


@dataclass(frozen=True)
class Intervention:
    id: str
    text: str
    kind: str | None
    status: str
    status_reason: str | None
    responsible_principal: str | None
    responsible_organization: str | None
    performer: str | None  # HSA-id, or a participant's name
    need_ids: list[str]
    goal_ids: list[str]
    start: str | None
    end: str | None
    costs: list[CostAllocation]
    pending: list[str]
    proposed_status: str | None

    @property
    def by_others(self) -> bool:
        """A measure by someone other than the principals (legal element 3)."""
        return self.responsible_principal == "other"


@dataclass(frozen=True)
class Goal:
    id: str
    text: str
    target_date: str | None
    lifecycle: str
    achievement: str | None
    notes: list[str]
    needs: list[str]
    pending: list[str]
    proposal: dict[str, Any]


@dataclass(frozen=True)
class Member:
    kind: str  # a principal code or a participant kind
    name: str | None
    organization: str | None
    is_organization: bool
    pending: bool
    invitation: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # a person's participant id (participant-N), as operations name it


@dataclass(frozen=True)
class Meeting:
    id: str
    status: str
    start: str | None
    end: str | None
    place: str | None
    participants: list[tuple[str, str]]  # (who, status)


@dataclass(frozen=True)
class FollowUp:
    done: bool
    date: str | None
    text: str | None


@dataclass(frozen=True)
class MissedDeadline:
    """A deadline of the law the stay's clock found missed (the deviation's `source`)."""

    stay_id: str | None
    duty: str | None
    due: str | None


@dataclass(frozen=True)
class Deviation:
    id: str
    reported_by: str | None
    intervention_id: str | None
    text: str
    time: str | None
    answered_by: str | None
    answer: str | None
    against: str | None = None  # named by the deviation (the legal clock's), not by an intervention
    missed: MissedDeadline | None = None  # what raised it: a deadline of the stay's clock


@dataclass
class PlanView:
    id: str
    version: str
    last_updated: str | None
    title: str
    status: str
    personnummer: str | None
    created: str | None
    started: str | None
    ended: str | None
    author: str | None
    initiative: str | None
    overall_organization: str | None
    overall_principal: str | None
    overall_since: str | None
    needs: list[Need]
    interventions: list[Intervention]
    goals: list[Goal]
    members: list[Member]
    meetings: list[Meeting]
    follow_ups: list[FollowUp]
    deviations: list[Deviation]
    notes: list[tuple[str | None, str]]  # (time, text): approvals, rejections and closure
    pending_changes: list[str]
    proposed_organizations: list[str]
    proposed_overall: str | None
    withheld: list[Withheld]
    consents_relied_on: list[str]
    raw: dict[str, Any]

    @property
    def next_follow_up(self) -> str | None:
        return next((f.date for f in self.follow_ups if not f.done), None)

    def follow_up_overdue(self, today: date) -> bool:
        due = self.next_follow_up
        return bool(due and self.status == "active" and due[:10] < today.isoformat())

    @property
    def organizations(self) -> list[Member]:
        return [m for m in self.members if m.is_organization]

    @property
    def persons(self) -> list[Member]:
        return [m for m in self.members if not m.is_organization]

    @property
    def region_interventions(self) -> list[Intervention]:
        return [i for i in self.interventions if i.responsible_principal == "region"]

    @property
    def municipality_interventions(self) -> list[Intervention]:
        return [i for i in self.interventions if i.responsible_principal == "municipality"]

    @property
    def other_interventions(self) -> list[Intervention]:
        return [i for i in self.interventions if i.by_others]

    def withheld_kinds(self, *kinds: str) -> list[Withheld]:
        return [w for w in self.withheld if w.kind in kinds]

    def open_deviations_against(self, organization: str | None) -> list[Deviation]:
        """Unanswered deviations against `organization`: the one a deviation names (a missed
        deadline's), else the one responsible for its intervention."""
        responsible = {i.id: i.responsible_organization for i in self.interventions}
        return [
            d
            for d in self.deviations
            if d.answer is None
            and organization is not None
            and (d.against or responsible.get(d.intervention_id or "")) == organization
        ]

    def need_text(self, need_id: str) -> str:
        return next((n.text for n in self.needs if n.id == need_id), need_id)

    def goal_text(self, goal_id: str) -> str:
        return next((g.text for g in self.goals if g.id == goal_id), goal_id)

    def organization_name(self, hsa_id: str | None) -> str:
        for member in self.organizations:
            if member.organization == hsa_id and member.name:
                return member.name
        return hsa_id or "okänd"


def _pending(element: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    marker = extension(element, EXT_PENDING_APPROVAL)
    changes = [str(c) for c in parts(marker, "change")]
    proposal = {
        name: part(marker, name)
        for name in ("text", "targetDate", "reason", "outcome", "note", "status")
        if part(marker, name) is not None
    }
    return changes, proposal


def withheld_of(resource: dict[str, Any]) -> list[Withheld]:
    """What the API marked as withheld from this user in a resource: custodian, kind, count."""
    found = []
    for marker in extensions(resource, EXT_WITHHELD_ENTRIES):
        custodian = part(marker, "custodian")
        found.append(
            Withheld(
                custodian=hsa_of({"identifier": custodian})
                if isinstance(custodian, dict)
                else str(custodian),
                kind=str(part(marker, "kind")),
                count=int(part(marker, "count") or 0),
            )
        )
    return found


def _cost(ext: dict[str, Any]) -> CostAllocation:
    shares = []
    for share in (s for s in ext.get("extension", []) if s.get("url") == "share"):
        amount = part(share, "amount")
        shares.append(
            (
                hsa_of(part(share, "organization")),
                part(share, "percent"),
                amount.get("value") if isinstance(amount, dict) else None,
            )
        )
    return CostAllocation(
        id=str(part(ext, "id")),
        in_force=bool(part(ext, "inForce")),
        period_start=part(ext, "periodStart"),
        period_end=part(ext, "periodEnd"),
        shares=shares,
        agreed_by=[h for h in (hsa_of(r) for r in parts(ext, "agreedBy")) if h],
        split_unclear_by=[h for h in (hsa_of(r) for r in parts(ext, "splitUnclearBy")) if h],
    )


def _intervention(activity: dict[str, Any]) -> Intervention:
    detail = activity["detail"]
    responsible = extension(detail, EXT_RESPONSIBLE_PRINCIPAL)
    principal = part(responsible, "principal")
    performer = (detail.get("performer") or [None])[0]
    changes, proposal = _pending(activity)
    period = detail.get("scheduledPeriod") or {}
    return Intervention(
        id=activity.get("id", ""),
        text=detail.get("description") or detail.get("code", {}).get("text", ""),
        kind=next((c.get("code") for c in detail.get("code", {}).get("coding", [])), None),
        status=detail.get("status", ""),
        status_reason=(detail.get("statusReason") or {}).get("text"),
        responsible_principal=principal.get("code") if isinstance(principal, dict) else None,
        responsible_organization=hsa_of(part(responsible, "organization")),
        performer=(hsa_of(performer) or (performer or {}).get("display")) if performer else None,
        need_ids=[local_id(r["reference"]) for r in detail.get("reasonReference", [])],
        goal_ids=[local_id(r["reference"]) for r in detail.get("goal", [])],
        start=period.get("start"),
        end=period.get("end"),
        costs=[_cost(e) for e in extensions(detail, EXT_COST_ALLOCATION)],
        pending=changes,
        proposed_status=proposal.get("status"),
    )


def _goal(resource: dict[str, Any]) -> Goal:
    changes, proposal = _pending(resource)
    achievement = resource.get("achievementStatus", {}).get("coding", [{}])[0].get("code")
    target = (resource.get("target") or [{}])[0].get("dueDate")
    return Goal(
        id=local_id(resource.get("id", "")),
        text=resource.get("description", {}).get("text", ""),
        target_date=target,
        lifecycle=resource.get("lifecycleStatus", ""),
        achievement=achievement,
        notes=[n.get("text", "") for n in resource.get("note", [])],
        needs=[local_id(r.get("reference", "")) for r in resource.get("addresses", [])],
        pending=changes,
        proposal=proposal,
    )


def _members(team: dict[str, Any] | None) -> list[Member]:
    members = []
    for participant in (team or {}).get("participant", []):
        role = (participant.get("role") or [{}])[0]
        code = next((c.get("code") for c in role.get("coding", [])), None) or role.get("text")
        member = participant.get("member", {})
        changes, _ = _pending(participant)
        invitation = extension(participant, EXT_INVITATION)
        members.append(
            Member(
                kind=str(code),
                name=member.get("display"),
                organization=hsa_of(member) if member.get("type") == "Organization" else None,
                is_organization=member.get("type") == "Organization",
                pending=bool(changes),
                invitation={
                    name: part(invitation, name)
                    for name in ("status", "invitedAt", "acceptedAt", "unit", "contact")
                }
                if invitation
                else {},
                id=participant.get("id"),
            )
        )
    return members


def _meeting(resource: dict[str, Any]) -> Meeting:
    return Meeting(
        id=local_id(resource.get("id", "")),
        status=resource.get("status", ""),
        start=resource.get("start"),
        end=resource.get("end"),
        place=resource.get("comment"),
        participants=[
            (
                (p.get("actor") or {}).get("display") or hsa_of(p.get("actor")) or "",
                p.get("status", ""),
            )
            for p in resource.get("participant", [])
        ],
    )


def _deviation(note: dict[str, Any]) -> Deviation:
    answer = extension(note, EXT_DEVIATION_ANSWER)
    about = extension(note, EXT_DEVIATION_INTERVENTION)
    against = extension(note, EXT_DEVIATION_AGAINST)
    source = extension(note, EXT_DEVIATION_MISSED_DEADLINE)
    text = note.get("text", "")
    # The note's text repeats reporter and answer for readers without the extensions.
    body = text.split(": ", 1)[1] if ": " in text else text
    body = body.rsplit(" — ", 1)[0]
    return Deviation(
        id=str((extension(note, EXT_DEVIATION) or {}).get("valueString")),
        reported_by=hsa_of(note.get("authorReference")),
        intervention_id=(about or {}).get("valueString"),
        text=body,
        time=note.get("time"),
        answered_by=hsa_of(part(answer, "organization")),
        answer=part(answer, "text"),
        against=hsa_of((against or {}).get("valueReference")),
        missed=MissedDeadline(part(source, "stay"), part(source, "duty"), part(source, "due"))
        if source
        else None,
    )


def _needs(plan: dict[str, Any]) -> list[Need]:
    return [
        Need(
            id=c.get("id", ""),
            text=c.get("code", {}).get("text", ""),
            wishes=next(
                (
                    n["text"].removeprefix(WISHES)
                    for n in c.get("note", [])
                    if n.get("text", "").startswith(WISHES)
                ),
                None,
            ),
            recorded=c.get("recordedDate"),
            pending=_pending(c)[0],
        )
        for c in plan.get("contained", [])
        if c.get("resourceType") == "Condition"
    ]


def _is_follow_up(detail: dict[str, Any]) -> bool:
    code = detail.get("code", {})
    return code.get("text") == FOLLOW_UP and not code.get("coding")


def _follow_up(detail: dict[str, Any]) -> FollowUp:
    done = detail.get("status") == "completed"
    when = (
        detail.get("scheduledString")
        if done
        else (detail.get("scheduledPeriod") or {}).get("start")
    )
    return FollowUp(done=done, date=when, text=detail.get("description"))


def _consents_relied_on(plan: dict[str, Any]) -> list[str]:
    return [
        s.get("identifier", {}).get("value", "").removeprefix("urn:uuid:")
        for s in plan.get("supportingInfo", [])
        if s.get("type") == "Consent"
    ]


def plan_view(
    plan: dict[str, Any],
    team: dict[str, Any] | None = None,
    goals: list[dict[str, Any]] | None = None,
    meetings: list[dict[str, Any]] | None = None,
) -> PlanView:
    overall = extension(plan, EXT_OVERALL_RESPONSIBILITY)
    principal = part(overall, "principal")
    details = [a["detail"] for a in plan.get("activity", []) if "detail" in a]
    notes = plan.get("note", [])
    pending_marker = extension(plan, EXT_PENDING_APPROVAL)
    return PlanView(
        id=plan["id"],
        version=plan.get("meta", {}).get("versionId", ""),
        last_updated=plan.get("meta", {}).get("lastUpdated"),
        title=plan.get("title") or "Samordnad individuell plan",
        status=plan.get("status", ""),
        personnummer=plan.get("subject", {}).get("identifier", {}).get("value"),
        created=plan.get("created"),
        started=plan.get("period", {}).get("start"),
        ended=plan.get("period", {}).get("end"),
        author=hsa_of(plan.get("author")),
        initiative=(extension(plan, EXT_INITIATIVE) or {}).get("valueCode"),
        overall_organization=hsa_of(part(overall, "organization")),
        overall_principal=principal.get("code") if isinstance(principal, dict) else None,
        overall_since=part(overall, "since"),
        needs=_needs(plan),
        interventions=[
            _intervention(a)
            for a in plan.get("activity", [])
            if "detail" in a and not _is_follow_up(a["detail"])
        ],
        goals=[_goal(g) for g in goals or []],
        members=_members(team),
        meetings=[_meeting(m) for m in meetings or []],
        follow_ups=[_follow_up(d) for d in details if _is_follow_up(d)],
        deviations=[_deviation(n) for n in notes if extension(n, EXT_DEVIATION)],
        notes=[
            (n.get("time"), n.get("text", "")) for n in notes if not extension(n, EXT_DEVIATION)
        ],
        pending_changes=[str(c) for c in parts(pending_marker, "change")],
        proposed_organizations=[
            h for h in (hsa_of(r) for r in parts(pending_marker, "organization")) if h
        ],
        proposed_overall=hsa_of(part(pending_marker, "overallResponsibility")),
        withheld=[
            w for resource in [plan, team or {}, *(goals or [])] for w in withheld_of(resource)
        ],
        consents_relied_on=_consents_relied_on(plan),
        raw=plan,
    )


def goal_ids(plan: dict[str, Any]) -> list[str]:
    return [g["reference"].split("/", 1)[1] for g in plan.get("goal", []) if "reference" in g]


def meeting_ids(plan: dict[str, Any]) -> list[str]:
    return [
        a["reference"]["reference"].split("/", 1)[1]
        for a in plan.get("activity", [])
        if "reference" in a and a["reference"].get("reference", "").startswith("Appointment/")
    ]
