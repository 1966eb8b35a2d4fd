"""What the person's own pages say, in plain Swedish: the words the services use (a proposed
change, a consent's categories, a line of the log extract) put so that someone without the
jargon understands them. Code stays English."""

from __future__ import annotations

import re
from typing import Any

from services.web.plan_view import PlanView
from services.web.texts import ACTIVITY_STATUS, INTERVENTION_STATUS, ROLE

# What the words of a SIP mean, said once and shown where they are used.
EXPLAINED = {
    "sip": (
        "En samordnad individuell plan (SIP) är din plan för hur regionen (vården) och kommunen "
        "(till exempel socialtjänsten) ska hjälpa dig tillsammans. Planen är din: den görs bara "
        "om du vill, och du kan avsluta den när du vill."
    ),
    "huvudansvar": (
        "Huvudansvar betyder att den organisationen håller ihop planen: den ser till att alla "
        "gör det de lovat och att planen följs upp. Kontakta dem om du har frågor om planen."
    ),
    "insats": (
        "En insats är något som en organisation har lovat att göra för dig, till exempel "
        "hemtjänst, samtal eller hjälp med boendet."
    ),
    "samtycke": (
        "Ett samtycke är ditt ja till att organisationerna får berätta för varandra det som "
        "står om dig i planen. Utan ditt samtycke får regionen och kommunen inte dela det med "
        "varandra. Du kan ta tillbaka ditt samtycke när du vill."
    ),
    "sparr": (
        "En spärr betyder att det en organisation har skrivit om dig inte visas för andra "
        "organisationer, även om du har samtyckt. Organisationen ser fortfarande det den själv "
        "har skrivit. I en nödsituation kan personal tillfälligt gå förbi spärren; det "
        "sparas alltid i loggen, som du kan läsa."
    ),
    "forslag": (
        "När någon annan än du ändrar i en plan som gäller blir ändringen bara ett förslag. "
        "Förslaget gäller inte förrän du har godkänt det."
    ),
}

CONSENT_CATEGORY = {
    "sip": "att en samordnad individuell plan (SIP) görs för dig",
    "sip-plan": "det som står i planen: dina behov, mål, insatser och vem som ansvarar för vad",
    "health-care": "uppgifter från vårdens journaler (regionen)",
    "social-services": "uppgifter från socialtjänstens akter (kommunen)",
    "relatives": "att dina närstående är med i planen",
    "cooperation": "att regionen och kommunen samarbetar, även utan en SIP",
}
CONSENT_STATUS = {
    "active": "Gäller",
    "inactive": "Återkallat",
    "entered-in-error": "Registrerat av misstag (gäller inte)",
}
CONSENT_FORM = {
    "written": "skriftligt",
    "oral": "muntligt",
    "digital": "digitalt, av dig själv",
}
GIVER_ROLE = {
    "person": "du själv",
    "child": "barnet självt",
    "guardian": "vårdnadshavare",
    "god-man": "god man",
    "forvaltare": "förvaltare",
    "representative": "ställföreträdare",
}

SERVICE = {
    "SIP plan service": "Planerna",
    "SIP consent service": "Samtyckena",
}
_ACTION = {
    "created": "skapade",
    "read": "läste",
    "changed": "ändrade",
    "deleted": "tog bort",
    "acted on": "gjorde en ändring i",
    "accessed": "öppnade",
}
_RESOURCE = {
    "your coordinated individual plan (SIP)": "din samordnade individuella plan (SIP)",
    "your consent": "ditt samtycke",
    "your information": "dina uppgifter",
}
_BLOCK_OVERRIDE = "got past your block (spärr) for a limited time"


def log_line_in_swedish(what: str) -> str:
    """One line of the log extract (the services' words) in Swedish."""
    if what.startswith(_BLOCK_OVERRIDE):
        reason = what.split("): ", 1)[1] if "): " in what else ""
        said = "Gick förbi din spärr under en begränsad tid"
        return f"{said}. Skäl som angavs: {reason}" if reason else said
    if what.endswith("whether your consent allows a disclosure"):
        return "Kontrollerade om ditt samtycke tillåter att uppgifter delas"
    for english, swedish in _ACTION.items():
        if what.startswith(english + " "):
            rest = what[len(english) + 1 :]
            return f"{swedish.capitalize()} {_RESOURCE.get(rest, rest)}"
    return what


def who_in_log(entry: dict[str, Any], names: dict[str, str]) -> str:
    organization = entry.get("organization")
    if not organization:
        return "Tjänsten själv (automatiskt)" if entry.get("role") == "integration" else "Du"
    return names.get(organization) or f"Organisationen {organization}"


def role_in_log(entry: dict[str, Any]) -> str:
    role = entry.get("role") or ""
    if role == "patient":
        return "Du (eller någon med din inloggning)"
    return ROLE.get(role, role)


_CHANGE = re.compile(r"^(?P<entry>[a-z]+-\d+) (?P<what>.+)$")


def change_in_swedish(change: str, plan: PlanView) -> str:
    """A change waiting for the person's approval, as the person would say it."""
    organization = change.removeprefix("organisation ").removesuffix(" invited")
    if change.startswith("organisation ") and change.endswith(" invited"):
        return f"Att {plan.organization_name(organization)} ska vara med i planen"
    if change.startswith("overall responsibility to "):
        holder = change.removeprefix("overall responsibility to ")
        return f"Att {plan.organization_name(holder)} ska ha huvudansvaret för planen"
    if change.startswith("follow-up on "):
        return f"Att planen ska följas upp {change.removeprefix('follow-up on ')}"
    if change.startswith("follow-up changes: "):
        return f"Ändringar efter uppföljningen: {change.removeprefix('follow-up changes: ')}"
    kinds = ("relative", "guardian", "representative", "professional", "person")
    for kind in kinds:
        if change.startswith(f"{kind} participant-") and change.endswith(" added"):
            return f"En ny deltagare i planen ({_PARTICIPANT.get(kind, kind)})"
    found = _CHANGE.match(change)
    if not found:
        return change
    entry, what = found["entry"], found["what"]
    if entry.startswith("intervention-"):
        intervention = next((i for i in plan.interventions if i.id == entry), None)
        name = f"”{intervention.text}”" if intervention else "en insats"
        who = (
            f" ({plan.organization_name(intervention.responsible_organization)} ansvarar)"
            if intervention and intervention.responsible_organization
            else ""
        )
        if what == "assigned":
            return f"En ny insats: {name}{who}"
        status = INTERVENTION_STATUS.get(what) or ACTIVITY_STATUS.get(what, what)
        return f"Insatsen {name} får status ”{status.lower()}”"
    if entry.startswith("need-"):
        return f"Ett nytt behov: ”{plan.need_text(entry)}”"
    if entry.startswith("goal-"):
        text = f"”{plan.goal_text(entry)}”"
        if what == "set":
            return f"Ett nytt mål: {text}"
        if what == "revised":
            return f"Ändrad lydelse av målet {text}"
        if what.startswith("assessed"):
            return f"En bedömning av om målet {text} är nått"
    return change


_PARTICIPANT = {
    "relative": "närstående",
    "guardian": "vårdnadshavare",
    "representative": "ställföreträdare",
    "professional": "yrkesperson",
    "person": "du själv",
}


def plan_differences(old: PlanView, new: PlanView) -> list[str]:
    """What changed in the plan between the version the person saw and the current one."""
    said = []
    if old.status != new.status:
        said.append("Planens status har ändrats.")
    old_needs = {n.id for n in old.needs}
    said += [f"Ett behov har lagts till: ”{n.text}”." for n in new.needs if n.id not in old_needs]
    old_goals = set(goal_refs(old))
    if any(g not in old_goals for g in goal_refs(new)):
        said.append("Ett mål har lagts till.")
    old_interventions = {i.id: i for i in old.interventions}
    for intervention in new.interventions:
        before = old_interventions.get(intervention.id)
        if before is None:
            said.append(f"En insats har lagts till: ”{intervention.text}”.")
        elif before.status != intervention.status or before.pending != intervention.pending:
            said.append(f"Insatsen ”{intervention.text}” har ändrats.")
    for change in new.pending_changes:
        if change not in old.pending_changes:
            said.append(f"Nytt förslag: {change_in_swedish(change, new)}.")
    if old.pending_changes and not new.pending_changes:
        said.append("De föreslagna ändringarna har godkänts eller tagits bort.")
    if old.overall_organization != new.overall_organization:
        said.append("Huvudansvaret har flyttats.")
    if old.next_follow_up != new.next_follow_up:
        said.append("Datumet för uppföljning har ändrats.")
    if not said:
        said.append("Något i planen ändrades (till exempel ett mål eller en anteckning).")
    return said


def goal_refs(plan: PlanView) -> list[str]:
    return [g.get("reference", "") for g in plan.raw.get("goal", [])]
