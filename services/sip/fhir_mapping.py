"""The plan aggregate as R4 resources a record system understands.

CarePlan: status, intent, category SIP, subject, period, author, care team, goals, the needs
(contained Conditions in the person's words, `addresses`), each intervention as an activity
with its performer down to unit and its responsible principal, SIP meetings and follow-ups as
activities, notes. CareTeam: the organisations and participants. Goal: the person's goals.
Appointment: SIP meetings. Extensions only where R4 has no element: overall responsibility,
responsible principal, cost allocation, pending approval, invitation, withheld entries
(docs/fhir-extensions.md). A plan is rendered as the reader may see it: the renderers are
given `redact(plan, disclosure)` (services/sip/redaction.py) and mark what it withheld.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.careplan import CarePlan

from contracts.actor import Actor
from contracts.canonical import (
    CAREPLAN_CATEGORY_SIP,
    CAREPLAN_CATEGORY_SYSTEM,
    EXT_CONSENT_WITHDRAWN,
    EXT_COST_ALLOCATION,
    EXT_DEVIATION,
    EXT_DEVIATION_AGAINST,
    EXT_DEVIATION_ANSWER,
    EXT_DEVIATION_INTERVENTION,
    EXT_DEVIATION_MISSED_DEADLINE,
    EXT_INITIATIVE,
    EXT_INVITATION,
    EXT_ORGANIZATION_KIND,
    EXT_OVERALL_RESPONSIBILITY,
    EXT_PENDING_APPROVAL,
    EXT_RESPONSIBLE_PRINCIPAL,
    EXT_WITHHELD_ENTRIES,
    INTERVENTION_KIND_SYSTEM,
    PARTICIPANT_ROLE_SYSTEM,
    PRINCIPAL_SYSTEM,
    SECURITY_LABEL_REDACTED,
    SECURITY_LABEL_SYSTEM,
)
from contracts.identifiers import (
    HSA_ID_SYSTEM,
    InvalidIdentifier,
    parse_hsa_id,
    parse_person_identifier,
)
from services.common.disclosure import PERSON
from services.common.fhir_api import parse_resource, unprocessable
from services.common.fhir_extensions import recorded_by_extension
from services.common.fhir_time import fhir_instant
from services.sip.domain import INITIATIVES, ORGANIZATION_KINDS, Plan
from services.sip.parts import (
    CostAllocation,
    Goal,
    Intervention,
    Need,
    OverallResponsibility,
    Participant,
    TakingPart,
)
from services.sip.redaction import Withheld, withheld_counts, withheld_of

SIP_CATEGORY = {
    "coding": [
        {
            "system": CAREPLAN_CATEGORY_SYSTEM,
            "code": CAREPLAN_CATEGORY_SIP,
            "display": "Samordnad individuell plan",
        }
    ]
}
# Who rejected the pending changes, as the CarePlan's note says it.
REJECTED_BY = {
    "person": "av personen",
    "guardian": "av vårdnadshavaren",
    "representative": "av ställföreträdaren",
    "meeting": "vid SIP-mötet",
}
DETAIL_STATUS = {
    "planned": "not-started",
    "in-progress": "in-progress",
    "done": "completed",
    "stopped": "stopped",
}


def plan_started_from_fhir(body: dict[str, Any], actor: Actor, now: datetime) -> dict[str, Any]:
    """The arguments of a Plan.Started event, from a posted R4 CarePlan."""
    parse_resource(CarePlan, body)
    if body.get("status", "draft") != "draft":
        raise unprocessable(
            "a plan starts as a draft: status must be 'draft'", "plan-starts-as-draft"
        )
    if body.get("intent") != "plan":
        raise unprocessable("a SIP is a plan: intent must be 'plan'", "careplan-intent-plan")
    subject_identifier = (body.get("subject") or {}).get("identifier") or {}
    try:
        subject = parse_person_identifier(
            subject_identifier.get("system"), subject_identifier.get("value")
        )
    except InvalidIdentifier as error:
        raise unprocessable(f"subject.identifier: {error}", "valid-person-identifier") from None
    author = body.get("author") or {}
    author_identifier = author.get("identifier") or {
        "system": HSA_ID_SYSTEM,
        "value": actor.organization,
    }
    if author_identifier.get("system") != HSA_ID_SYSTEM:
        raise unprocessable(
            f"author (the starting organisation) needs an identifier with system {HSA_ID_SYSTEM}",
            "plan-starting-organization",
        )
    try:
        starting_organization = parse_hsa_id(author_identifier.get("value"))
    except InvalidIdentifier as error:
        raise unprocessable(f"author.identifier: {error}", "plan-starting-organization") from None
    kind = _extension_code(author, EXT_ORGANIZATION_KIND)
    if kind not in ORGANIZATION_KINDS:
        raise unprocessable(
            f"author needs the extension {EXT_ORGANIZATION_KIND} with valueCode "
            + " | ".join(ORGANIZATION_KINDS),
            "organization-kind",
        )
    initiative = _extension_code(body, EXT_INITIATIVE) or (
        "municipal-unit" if kind == "municipality" else "region-unit"
    )
    if initiative not in INITIATIVES:
        raise unprocessable(f"initiative is one of {', '.join(INITIATIVES)}", "sip-initiative")
    return {
        "subject": {"system": subject.system, "value": subject.value},
        "starting_organization": starting_organization,
        "starting_organization_kind": kind,
        "initiative": initiative,
        "title": body.get("title"),
        "description": body.get("description"),
        "started_at": now,
        "started_by": actor.as_event_data(),
    }


def _extension_code(element: dict[str, Any], url: str) -> str | None:
    for extension in element.get("extension") or []:
        if extension.get("url") == url:
            return extension.get("valueCode")
    return None


def organization_reference(hsa_id: str, unit: str | None = None) -> dict[str, Any]:
    reference: dict[str, Any] = {
        "type": "Organization",
        "identifier": {"system": HSA_ID_SYSTEM, "value": unit or hsa_id},
    }
    if unit:
        reference["display"] = f"{unit} ({hsa_id})"
    return reference


def part_id(plan: Plan, part: str) -> str:
    """Ids of the resources derived from a plan: `<plan id>-team`, `<plan id>-goal-1`, ..."""
    return f"{plan.id}-{part}"


def plan_to_fhir(plan: Plan) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": str(plan.id),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "extension": _plan_extensions(plan),
        "status": plan.status,
        "intent": "plan",
        "category": [SIP_CATEGORY],
        "subject": {"type": "Patient", "identifier": dict(plan.subject)},
        "created": fhir_instant(plan.started_at),
        "author": organization_reference(plan.starting_organization),
        "careTeam": [{"reference": f"CareTeam/{part_id(plan, 'team')}"}],
    }
    if getattr(plan, "identifiers", None):  # the creating system's names for the plan
        resource["identifier"] = [dict(identifier) for identifier in plan.identifiers]
    for title in ("title", "description"):
        if getattr(plan, title):
            resource[title] = getattr(plan, title)
    period = {}
    if plan.activated_at:
        period["start"] = fhir_instant(plan.activated_at)
    if plan.closure:
        period["end"] = fhir_instant(plan.closure.at)
    if period:
        resource["period"] = period
    if plan.needs:
        resource["contained"] = [_need(plan, need) for need in plan.needs.values()]
        resource["addresses"] = [{"reference": f"#{need_id}"} for need_id in plan.needs]
    if plan.goals:
        resource["goal"] = [{"reference": f"Goal/{part_id(plan, g)}"} for g in plan.goals]
    activities = _activities(plan)
    if activities:
        resource["activity"] = activities
    notes = _notes(plan)
    if notes:
        resource["note"] = notes
    if plan.consents:
        resource["supportingInfo"] = _consents_relied_on(plan)
    return marked_withheld(resource, withheld_of(plan))


def marked_withheld(resource: dict[str, Any], withheld: Iterable[Withheld]) -> dict[str, Any]:
    """A resource from which entries were withheld says so: the REDACTED security label and,
    per custodian and kind, how many (docs/disclosure.md). Nothing withheld, no mark."""
    counts = withheld_counts(withheld)
    if not counts:
        return resource
    resource["meta"]["security"] = [
        {"system": SECURITY_LABEL_SYSTEM, "code": SECURITY_LABEL_REDACTED, "display": "redacted"}
    ]
    resource.setdefault("extension", [])
    resource["extension"] += [
        {
            "url": EXT_WITHHELD_ENTRIES,
            "extension": [
                {"url": "custodian", **_custodian(custodian)},
                {"url": "kind", "valueCode": kind},
                {"url": "count", "valueUnsignedInt": count},
            ],
        }
        for custodian, kind, count in counts
    ]
    return resource


def _custodian(custodian: str | None) -> dict[str, Any]:
    if custodian == PERSON:
        return {"valueCode": PERSON}
    if custodian is None:
        return {"valueCode": "unknown"}
    return {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": custodian}}


def _plan_extensions(plan: Plan) -> list[dict[str, Any]]:
    extensions = [
        recorded_by_extension(plan.changed_by),
        {"url": EXT_INITIATIVE, "valueCode": plan.initiative},
    ]
    if plan.overall_responsibility:
        extensions.append(_overall_responsibility_extension(plan.overall_responsibility))
    for consent_id in plan.withdrawn_consents:
        extensions.append(
            {
                "url": EXT_CONSENT_WITHDRAWN,
                "valueIdentifier": {
                    "system": "urn:ietf:rfc:3986",
                    "value": f"urn:uuid:{consent_id}",
                },
            }
        )
    pending = [{"url": "change", "valueString": c.change} for c in plan.pending_changes]
    pending += _proposed_frame(plan)
    if pending:
        extensions.append({"url": EXT_PENDING_APPROVAL, "extension": pending})
    return extensions


def _proposed_frame(plan: Plan) -> list[dict[str, Any]]:
    """Who is proposed to take part or to hold the overall responsibility: the plan's frame,
    shown to every reader of the plan (the change that proposed it may be withheld)."""
    parts = [
        {"url": "organization", "valueReference": organization_reference(hsa_id)}
        for hsa_id in plan.proposed_organizations
    ]
    if plan.proposed_overall_responsibility is not None:
        holder = plan.proposed_overall_responsibility.organization
        parts.append(
            {"url": "overallResponsibility", "valueReference": organization_reference(holder)}
        )
    return parts


def _overall_responsibility_extension(held: OverallResponsibility) -> dict[str, Any]:
    return {
        "url": EXT_OVERALL_RESPONSIBILITY,
        "extension": [
            {
                "url": "organization",
                "valueReference": organization_reference(held.organization),
            },
            {"url": "principal", "valueCoding": _principal(held.principal)},
            {"url": "since", "valueDateTime": fhir_instant(held.since)},
            *([{"url": "reason", "valueString": held.reason}] if held.reason else []),
        ],
    }


def _activities(plan: Plan) -> list[dict[str, Any]]:
    """The interventions, then the SIP meetings, then the follow-ups."""
    activities = [_intervention_activity(plan, i) for i in plan.interventions.values()]
    activities += [
        {
            "id": meeting_id,
            "reference": {
                "reference": f"Appointment/{part_id(plan, meeting_id)}",
                "display": "SIP-möte",
            },
        }
        for meeting_id in plan.meetings
    ]
    return activities + _follow_up_activities(plan)


def _consents_relied_on(plan: Plan) -> list[dict[str, Any]]:
    # The consents live in the consent service: logical references by id.
    return [
        {
            "type": "Consent",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{consent_id}"},
            "display": "Consent withdrawn"
            if consent_id in plan.withdrawn_consents
            else "Consent relied on at activation",
        }
        for consent_id in plan.consents
    ]


def _principal(principal: str) -> dict[str, str]:
    return {"system": PRINCIPAL_SYSTEM, "code": principal}


def _need(plan: Plan, need: Need) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": need.id,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                        "code": "health-concern",
                    }
                ],
                "text": "Behov (med personens egna ord)",
            }
        ],
        "code": {"text": need.text},
        "subject": {"identifier": dict(plan.subject)},
        "recordedDate": fhir_instant(need.recorded_at),
    }
    if need.wishes:
        condition["note"] = [{"text": f"Önskemål: {need.wishes}"}]
    return _mark_proposal(condition, plan, need.id)


def _intervention_activity(plan: Plan, intervention: Intervention) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "extension": [
            {
                "url": EXT_RESPONSIBLE_PRINCIPAL,
                "extension": [
                    {
                        "url": "principal",
                        "valueCoding": _principal(intervention.responsible_principal),
                    },
                    *(
                        [
                            {
                                "url": "organization",
                                "valueReference": organization_reference(
                                    intervention.responsible_organization,
                                    intervention.responsible_unit,
                                ),
                            }
                        ]
                        if intervention.responsible_organization
                        else []
                    ),
                ],
            }
        ],
        "code": {
            "coding": [{"system": INTERVENTION_KIND_SYSTEM, "code": intervention.kind}],
            "text": intervention.text,
        },
        "status": DETAIL_STATUS[intervention.status],
        "description": intervention.text,
    }
    if intervention.status_reason:
        detail["statusReason"] = {"text": intervention.status_reason}
    if intervention.need_ids:
        detail["reasonReference"] = [{"reference": f"#{n}"} for n in intervention.need_ids]
    if intervention.goal_ids:
        detail["goal"] = [{"reference": f"Goal/{part_id(plan, g)}"} for g in intervention.goal_ids]
    if intervention.start or intervention.end:
        detail["scheduledPeriod"] = {
            key: value.isoformat()
            for key, value in (
                ("start", intervention.start),
                ("end", intervention.end),
            )
            if value
        }
    if intervention.performer_organization:
        detail["performer"] = [
            organization_reference(intervention.performer_organization, intervention.performer_unit)
        ]
    elif intervention.performer_participant in plan.participants:  # else withheld from the reader
        participant = plan.participants[intervention.performer_participant]
        detail["performer"] = [_participant_reference(plan, participant)]
    for allocation in plan.cost_allocations.values():
        if allocation.intervention_id == intervention.id:
            detail["extension"].append(_cost_extension(allocation))
    # The activity's element id is the intervention's, which the operations name.
    return _mark_proposal({"id": intervention.id, "detail": detail}, plan, intervention.id)


def _cost_extension(allocation: CostAllocation) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "id", "valueString": allocation.id},
        {"url": "inForce", "valueBoolean": allocation.in_force},
        {"url": "periodStart", "valueDate": allocation.period_start.isoformat()},
    ]
    if allocation.period_end:
        parts.append({"url": "periodEnd", "valueDate": allocation.period_end.isoformat()})
    for share in allocation.shares:
        share_parts: list[dict[str, Any]] = [
            {"url": "organization", "valueReference": organization_reference(share.organization)}
        ]
        if share.percent is not None:
            share_parts.append({"url": "percent", "valueDecimal": share.percent})
        if share.amount_sek is not None:
            share_parts.append(
                {"url": "amount", "valueMoney": {"value": share.amount_sek, "currency": "SEK"}}
            )
        parts.append({"url": "share", "extension": share_parts})
    parts += [
        {"url": "agreedBy", "valueReference": organization_reference(hsa_id)}
        for hsa_id in allocation.agreed_by
    ]
    parts += [  # a default split: the principals that recorded that the split is unclear
        {"url": "splitUnclearBy", "valueReference": organization_reference(hsa_id)}
        for hsa_id in allocation.split_unclear_by
    ]
    return {"url": EXT_COST_ALLOCATION, "extension": parts}


def _follow_up_activities(plan: Plan) -> list[dict[str, Any]]:
    activities = [
        {
            "detail": {
                "code": {"text": "Uppföljning"},
                "status": "completed",
                "description": follow_up.reviewed
                + (f" Ändringar: {follow_up.changes}" if follow_up.changes else ""),
                "scheduledString": fhir_instant(follow_up.at),
            }
        }
        for follow_up in plan.follow_ups
    ]
    if plan.next_follow_up:
        activities.append(
            {
                "detail": {
                    "code": {"text": "Uppföljning"},
                    "status": "not-started",
                    "scheduledPeriod": {"start": plan.next_follow_up.isoformat()},
                }
            }
        )
    return activities


def _notes(plan: Plan) -> list[dict[str, Any]]:
    notes = []
    for deviation in plan.deviations.values():
        answer = deviation.answer
        extensions: list[dict[str, Any]] = [{"url": EXT_DEVIATION, "valueString": deviation.id}]
        if deviation.intervention_id:
            extensions.append(
                {"url": EXT_DEVIATION_INTERVENTION, "valueString": deviation.intervention_id}
            )
        if deviation.against:
            extensions.append(
                {"url": EXT_DEVIATION_AGAINST,
                 "valueReference": organization_reference(deviation.against)}
            )  # fmt: skip
        if deviation.source:
            extensions.append(
                {"url": EXT_DEVIATION_MISSED_DEADLINE,
                 "extension": [{"url": key, "valueString": value}
                               for key, value in sorted(deviation.source.items())]}
            )  # fmt: skip
        if answer:
            extensions.append(
                {
                    "url": EXT_DEVIATION_ANSWER,
                    "extension": [
                        {
                            "url": "organization",
                            "valueReference": organization_reference(answer.organization),
                        },
                        {"url": "text", "valueString": answer.text},
                        {"url": "time", "valueDateTime": fhir_instant(answer.at)},
                    ],
                }
            )
        notes.append(
            {
                "extension": extensions,
                "authorReference": organization_reference(deviation.organization),
                "time": fhir_instant(deviation.reported_at),
                "text": f"Avvikelse rapporterad av {deviation.organization}: "
                f"{deviation.text}"
                + (
                    f" — Svar från {answer.organization}: {answer.text}"
                    if answer
                    else " — obesvarad"
                ),
            }
        )
    for approval in plan.approvals:
        notes.append(
            {
                "time": fhir_instant(approval.at),
                "text": f"Ändringar godkända av {approval.approved_by}: "
                + "; ".join(change.change for change in approval.changes),
            }
        )
    for rejection in plan.rejections:
        by = REJECTED_BY.get(rejection.rejected_by, rejection.rejected_by)
        if rejection.meeting_id:
            by += f" {rejection.meeting_id}"
        notes.append(
            {
                "time": fhir_instant(rejection.at),
                "text": f"Ändringar avböjda {by}: "
                + "; ".join(change.change for change in rejection.changes)
                + (f" — Skäl: {rejection.reason}" if rejection.reason else ""),
            }
        )
    if plan.closure:
        closure = plan.closure
        notes.append(
            {
                "time": fhir_instant(closure.at),
                "text": f"Avslutad: {closure.reason}"
                + (f" — {closure.note}" if closure.note else "")
                + (f" (ersatt av CarePlan/{closure.replaced_by})" if closure.replaced_by else ""),
            }
        )
    return notes


def _participant_reference(plan: Plan, participant: Participant) -> dict[str, Any]:
    if participant.kind == "person":
        return {"type": "Patient", "identifier": dict(plan.subject)}
    reference: dict[str, Any] = {
        "type": "Practitioner" if participant.kind == "professional" else "RelatedPerson",
        "display": participant.name or participant.kind,
    }
    if participant.identifier:
        reference["identifier"] = dict(participant.identifier)
    return reference


def care_team_to_fhir(plan: Plan) -> dict[str, Any]:
    members: list[dict[str, Any]] = []
    for organization in (*plan.organizations.values(), *plan.proposed_organizations.values()):
        member = {
            "extension": [_invitation_extension(organization)],
            "role": [{"coding": [_principal(organization.kind)], "text": organization.kind}],
            "member": organization_reference(organization.hsa_id),
        }
        if organization.name:
            member["member"]["display"] = organization.name
        members.append(_mark_proposal(member, plan, organization.hsa_id))
    for participant in plan.participants.values():
        member = {
            "id": participant.id,  # participant-N: what attendees, invitees and performers name
            "role": [
                {
                    "coding": [{"system": PARTICIPANT_ROLE_SYSTEM, "code": participant.kind}],
                    "text": participant.role or participant.kind,
                }
            ],
            "member": _participant_reference(plan, participant),
        }
        if participant.organization:
            member["onBehalfOf"] = organization_reference(participant.organization)
        members.append(_mark_proposal(member, plan, participant.id))
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": part_id(plan, "team"),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "status": "inactive" if plan.closure else "active",
        "name": f"SIP {plan.title or ''}".strip(),
        "subject": {"type": "Patient", "identifier": dict(plan.subject)},
        "participant": members,
    }
    if plan.overall_responsibility:
        team["managingOrganization"] = [
            organization_reference(plan.overall_responsibility.organization)
        ]
    proposed = _proposed_frame(plan)
    if proposed:
        team["extension"] = [{"url": EXT_PENDING_APPROVAL, "extension": proposed}]
    return marked_withheld(team, (w for w in withheld_of(plan) if w.kind == "participant"))


def _invitation_extension(organization: TakingPart) -> dict[str, Any]:
    """Whether the organisation has accepted its invitation (a worklist's "waiting for us"):
    the plan's frame, as who takes part is, seen by every reader of the plan."""
    acceptance = organization.acceptance
    parts: list[dict[str, Any]] = [
        {"url": "status", "valueCode": "accepted" if acceptance else "invited"},
        {"url": "invitedAt", "valueDateTime": fhir_instant(organization.invited_at)},
    ]
    if acceptance is not None:
        parts.append({"url": "acceptedAt", "valueDateTime": fhir_instant(acceptance.at)})
        if acceptance.unit:
            unit = {"system": HSA_ID_SYSTEM, "value": acceptance.unit}
            parts.append({"url": "unit", "valueIdentifier": unit})
        if acceptance.contact:
            parts.append({"url": "contact", "valueString": acceptance.contact})
    return {"url": EXT_INVITATION, "extension": parts}


GOAL_ACHIEVEMENT = {
    None: "in-progress",
    "achieved": "achieved",
    "partially-achieved": "improving",
    "not-achieved": "not-achieved",
}


def goal_to_fhir(plan: Plan, goal_id: str) -> dict[str, Any]:
    goal = plan.goals[goal_id]
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": part_id(plan, goal_id),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "lifecycleStatus": "completed" if goal.status == "completed" else "active",
        "achievementStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                    "code": GOAL_ACHIEVEMENT[goal.outcome],
                }
            ]
        },
        "description": {"text": goal.text},
        "subject": {"type": "Patient", "identifier": dict(plan.subject)},
        "expressedBy": {"type": "Patient", "identifier": dict(plan.subject)},
        "startDate": goal.set_at.date().isoformat(),
    }
    if goal.target_date:
        resource["target"] = [{"dueDate": _iso(goal.target_date)}]
    notes = [
        {"time": fhir_instant(r.at), "text": f"Reviderat från '{r.text}': {r.reason}"}
        for r in goal.revisions
    ]
    if goal.assessment_note:
        notes.append({"text": goal.assessment_note})
    if notes:
        resource["note"] = notes
    if plan.proposed_new(goal_id) and goal.status != "completed":
        resource["lifecycleStatus"] = "proposed"
    resource = _mark_proposal(resource, plan, goal_id)
    return marked_withheld(resource, (w for w in withheld_of(plan) if w.part == goal_id))


def _mark_proposal(element: dict[str, Any], plan: Plan, entry: str) -> dict[str, Any]:
    """An entry with changes waiting for the person's approval carries them in the
    pending-approval extension; a revised goal's proposed text and date, an intervention's
    proposed status there too, while the element itself shows what is approved."""
    changes = [change.change for change in plan.proposals_for(entry)]
    if entry in plan.proposed_organizations and not changes:
        # Its invitation is withheld from this reader, yet it is marked: it does not take part.
        changes = [f"organisation {entry} invited"]
    if not changes:
        return element
    parts: list[dict[str, Any]] = [{"url": "change", "valueString": c} for c in changes]
    if entry in plan.goals:
        parts += _goal_proposal(plan.goals[entry])
    intervention = plan.interventions.get(entry)
    if intervention is not None and intervention.proposed_status is not None:
        parts.append({"url": "status", "valueCode": DETAIL_STATUS[intervention.proposed_status]})
        if intervention.proposed_status_reason:
            parts.append({"url": "reason", "valueString": intervention.proposed_status_reason})
    marker = {"url": EXT_PENDING_APPROVAL, "extension": parts}
    return {**element, "extension": [*element.get("extension", []), marker]}


def _goal_proposal(goal: Goal) -> list[dict[str, Any]]:
    """A goal's proposed revision (text, date, reason) and proposed assessment (outcome,
    note), as the pending-approval extension carries them."""
    parts: list[dict[str, Any]] = []
    if goal.proposal is not None:
        parts.append({"url": "text", "valueString": goal.proposal.text})
        if goal.proposal.target_date:
            target = goal.proposal.target_date.isoformat()
            parts.append({"url": "targetDate", "valueDate": target})
        parts.append({"url": "reason", "valueString": goal.proposal.reason})
    if goal.proposed_assessment is not None:
        parts.append({"url": "outcome", "valueCode": goal.proposed_assessment.outcome})
        if goal.proposed_assessment.note:
            parts.append({"url": "note", "valueString": goal.proposed_assessment.note})
    return parts


def appointment_to_fhir(plan: Plan, meeting_id: str) -> dict[str, Any]:
    meeting = plan.meetings[meeting_id]
    attended = set(meeting.attendees)
    participants = [
        {
            "actor": {"display": invitee},
            "status": "accepted" if invitee in attended or not attended else "declined",
            "required": "required",
        }
        for invitee in meeting.invitees or []
    ] or [{"actor": organization_reference(plan.starting_organization), "status": "accepted"}]
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": part_id(plan, meeting_id),
        "meta": {"versionId": str(plan.version), "lastUpdated": fhir_instant(plan.modified_on)},
        "status": meeting.status,
        "serviceType": [{"text": "SIP-möte"}],
        "description": f"SIP-möte: {plan.title or 'samordnad individuell plan'}",
        "start": fhir_instant(meeting.start),
        "end": fhir_instant(meeting.end),
        "participant": participants,
        "basedOn": [{"reference": f"CarePlan/{plan.id}", "type": "CarePlan"}],
    }
    place = meeting.location or f"Video: {meeting.video}"
    appointment["comment"] = place + (f". Anteckningar: {meeting.notes}" if meeting.notes else "")
    return marked_withheld(appointment, (w for w in withheld_of(plan) if w.part == meeting_id))


def _iso(value: date | datetime) -> str:
    return value.isoformat()
