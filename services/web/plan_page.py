"""What the plan page says about a plan beyond its entries, in Swedish: what is withheld from
the user, the changes waiting for the person's approval, the notes of approvals and closure,
and, when someone else changed the plan first, what changed since the user's version."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from services.web import texts
from services.web.fhir_client import FhirClient, Refused
from services.web.plan_forms import FORMS, organization_label
from services.web.plan_view import PlanView, plan_view
from services.web.times import local

# Provenance.activity.text of what is not a form on the plan page.
ACTIVITY = {
    "Started": "Planen startades",
    "activate": "Planen aktiverades",
    "accept-invitation": "En inbjudan accepterades",
}


def withheld_sentences(plan: PlanView, *kinds: str) -> list[str]:
    """ "2 behov från Eskilstuna kommun undanhålls: samtycke saknas", per custodian and kind."""
    return [
        f"{w.count} {texts.WITHHELD_KIND.get(w.kind, w.kind)} från "
        f"{'personen' if w.custodian == 'person' else organization_label(plan, w.custodian)} "
        "undanhålls: samtycke saknas."
        for w in plan.withheld_kinds(*kinds)
    ]


def intervention_text(plan: PlanView, intervention_id: str) -> str:
    return next((i.text for i in plan.interventions if i.id == intervention_id), intervention_id)


def _quoted(text: str) -> str:
    return f"”{text}”"


def change_in_swedish(plan: PlanView, change: str) -> str:
    """One pending change (the API's `change` string) said plainly."""
    patterns: list[tuple[str, Any]] = [
        (
            r"organisation (\S+) invited",
            lambda m: f"Organisationen {plan.organization_name(m[1])} bjuds in till planen",
        ),
        (
            r"(\S+) (participant-\d+) added",
            lambda m: f"{texts.PARTICIPANT_KIND.get(m[1], m[1])} läggs till som deltagare",
        ),
        (r"(need-\d+) recorded", lambda m: f"Nytt behov: {_quoted(plan.need_text(m[1]))}"),
        (r"(goal-\d+) set", lambda m: f"Nytt mål: {_quoted(plan.goal_text(m[1]))}"),
        (r"(goal-\d+) revised", lambda m: f"Målet {_quoted(plan.goal_text(m[1]))} ändras"),
        (
            r"(goal-\d+) assessed (\S+)",
            lambda m: (
                f"Målet {_quoted(plan.goal_text(m[1]))} bedöms: "
                f"{texts.GOAL_OUTCOME.get(m[2], m[2]).lower()}"
            ),
        ),
        (
            r"(intervention-\d+) assigned",
            lambda m: f"Ny insats: {_quoted(intervention_text(plan, m[1]))}",
        ),
        (
            r"(intervention-\d+) (\S+)",
            lambda m: (
                f"Insatsen {_quoted(intervention_text(plan, m[1]))} får status "
                f"{texts.INTERVENTION_STATUS.get(m[2], m[2]).lower()}"
            ),
        ),
        (
            r"overall responsibility to (\S+)",
            lambda m: f"Huvudansvaret flyttas till {plan.organization_name(m[1])}",
        ),
        (r"follow-up on (\S+)", lambda m: f"Uppföljning den {m[1]}"),
        (r"follow-up changes: (.*)", lambda m: f"Ändringar vid uppföljning: {m[1]}"),
    ]
    for pattern, say in patterns:
        match = re.fullmatch(pattern, change, re.DOTALL)
        if match:
            return say(match)
    return change


def note_in_swedish(text: str) -> str:
    """The plan's notes of approvals and closure, with their codes named."""
    match = re.match(r"Avslutad: (\S+)(.*)", text, re.DOTALL)
    if match:
        return f"Avslutad: {texts.CLOSE_REASON.get(match[1], match[1])}{match[2]}"
    match = re.match(r"Ändringar godkända av (\S+): (.*)", text, re.DOTALL)
    if match:
        who = {"person": "personen", "meeting": "ett möte"}.get(match[1], match[1])
        return f"Ändringar godkända av {who}: {match[2]}"
    return text


def activity_in_swedish(activity: str) -> str:
    spec = FORMS.get(activity)
    if spec is not None:
        return spec.legend
    return ACTIVITY.get(activity, activity)


async def changes_since(fhir: FhirClient, plan_id: str, version: str, now: PlanView) -> list[str]:
    """What happened to the plan after the version the user saw: each later version's
    change and who made it (its Provenance), and what the plan holds now that it did not."""

    async def provenance() -> list[str]:
        try:
            bundle = (await fhir.read("sip", "Provenance", {"target": f"CarePlan/{plan_id}"})).body
        except Refused:
            return []
        lines = []
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            target = (resource.get("target") or [{}])[0].get("reference", "")
            later = _version_of(target) > _number(version)
            if not later:
                continue
            agent = (resource.get("agent") or [{}])[0]
            organization = (agent.get("onBehalfOf") or {}).get("identifier", {}).get("value")
            what = activity_in_swedish(resource.get("activity", {}).get("text", ""))
            who = f" ({organization_label(now, organization)})" if organization else ""
            lines.append(f"{local(resource.get('recorded'))}: {what}{who}")
        return lines

    async def then() -> PlanView | None:
        try:
            answer = await fhir.read("sip", f"CarePlan/{plan_id}/_history/{version}")
        except Refused:
            return None
        return plan_view(answer.body)

    lines, before = await asyncio.gather(provenance(), then())
    return lines + (differences(before, now) if before else [])


def differences(before: PlanView, now: PlanView) -> list[str]:
    """What the plan holds now that it did not at the user's version."""
    found = []
    if before.status != now.status:
        found.append(
            f"Planens status är nu {texts.PLAN_STATUS.get(now.status, now.status).lower()}."
        )
    known_needs = {n.id for n in before.needs}
    found += [f"Nytt behov: {_quoted(n.text)}" for n in now.needs if n.id not in known_needs]
    known = {i.id: i for i in before.interventions}
    for intervention in now.interventions:
        earlier = known.get(intervention.id)
        if earlier is None:
            found.append(f"Ny insats: {_quoted(intervention.text)}")
        elif (earlier.status, earlier.proposed_status) != (
            intervention.status,
            intervention.proposed_status,
        ):
            found.append(f"Insatsen {_quoted(intervention.text)} har fått ny status.")
    if before.next_follow_up != now.next_follow_up:
        found.append(f"Uppföljningsdatum: {now.next_follow_up or 'inget'}.")
    if (before.overall_organization, before.proposed_overall) != (
        now.overall_organization,
        now.proposed_overall,
    ):
        found.append("Huvudansvaret har ändrats eller föreslagits flyttas.")
    if len(before.deviations) != len(now.deviations) or [d.answer for d in before.deviations] != [
        d.answer for d in now.deviations[: len(before.deviations)]
    ]:
        found.append("Avvikelser har rapporterats eller besvarats.")
    withheld_before = {(w.custodian, w.kind): w.count for w in before.withheld}
    for w in now.withheld:
        if w.count > withheld_before.get((w.custodian, w.kind), 0):
            found.append(
                f"Nya {texts.WITHHELD_KIND.get(w.kind, w.kind)} från "
                f"{organization_label(now, w.custodian)} som du inte får se: samtycke saknas."
            )
    if len(before.pending_changes) != len(now.pending_changes):
        found.append("Ändringarna som väntar på personens godkännande har ändrats.")
    return found


def _number(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        return 0


def _version_of(reference: str) -> int:
    match = re.search(r"/_history/(\d+)$", reference)
    return int(match[1]) if match else 0
