"""The plan's edits as forms, each declared once: the operation it calls, its Swedish legend,
its fields (the API parameter each one is, its Swedish label and hint, the input, and the FHIR
`value[x]` it becomes), which roles may use it at all (the role matrix, docs/role-matrix.md)
and when the plan offers it. One template macro renders every form from its spec, and one
route reads every posted form back into `Parameters` with `parameters_of`.

The value types follow each parameter's FHIR type (services/sip/operations.py over
services/common/parameters.py): String → valueString, Code → valueCode, Date → valueDate,
DateTime → valueDateTime (an instant with the Europe/Stockholm offset), HsaId →
valueIdentifier (system HSA_ID_SYSTEM), Boolean → valueBoolean, Decimal → valueDecimal; the
shares of `$allocate-cost` are `share` parameters made of parts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.identifiers import HSA_ID_SYSTEM
from services.common.fhir_time import SWEDEN
from services.web import texts
from services.web.fhir_client import Issue, Refused
from services.web.plan_view import PlanView
from services.web.session import SignedInUser
from services.web.times import local

PRINCIPALS = ("region", "municipality")
STAFF = frozenset({"coordinator", "professional", "integration"})
PLANNERS = frozenset({"coordinator", "integration"})  # the matrix's principal-level rows
FORM_ERROR = "_form"  # errors about the form as a whole, shown at its top

Choices = Callable[[PlanView, SignedInUser], list[tuple[str, str]]]


@dataclass(frozen=True)
class Field:
    """One input of a form: `name` is the API parameter it becomes."""

    name: str
    label: str
    input: str  # text | textarea | date | datetime-local | select | multi | checkbox | decimal
    #             | hsa-id | hidden | shares
    value: str  # the FHIR value[x] it is sent as
    required: bool = False
    hint: str | None = None
    choices: Mapping[str, str] | Choices | None = None
    fixed: str | None = None  # the value of a hidden field
    # A field made of several inputs (a stay's recipients) or checked before it is sent (a
    # personnummer) reads its own parameters from the posted form; ValueError: what is wrong.
    read: Callable[[Mapping[str, list[str]]], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class FormSpec:
    operation: str
    legend: str
    section: str  # the section of the plan page it sits in
    roles: frozenset[str]  # the roles the role matrix lets call it at all
    fields: tuple[Field, ...]
    submit: str
    done: str  # the notice after it succeeded
    # A refused rule that is about one field: its message stands beside that field.
    rule_fields: Mapping[str, str] = field(default_factory=dict)
    offered: Callable[[PlanView, SignedInUser], bool] = lambda plan, user: True
    # Changes the person approves before they are in force, when others make them.
    proposes: bool = False
    danger: bool = False
    # An element a refusal names that is not a parameter (the domain's own name, a part of a
    # parameter made of parts): the field it stands beside.
    element_fields: Mapping[str, str] = field(default_factory=dict)


# The choices a plan offers.


def needs(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(n.id, n.text) for n in plan.needs]


def goals(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(g.id, g.text) for g in plan.goals]


def interventions(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(i.id, i.text) for i in plan.interventions]


def persons(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(m.id, member_label(m)) for m in plan.persons if m.id]


def organizations(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [
        (m.organization, organization_label(plan, m.organization))
        for m in plan.organizations
        if m.organization and not m.pending
    ]


def principals(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [
        (m.organization, organization_label(plan, m.organization))
        for m in plan.organizations
        if m.organization and m.kind in PRINCIPALS and not m.pending
    ]


def booked_meetings(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(m.id, meeting_label(m)) for m in plan.meetings if m.status == "booked"]


def held_meetings(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [(m.id, meeting_label(m)) for m in plan.meetings if m.status == "fulfilled"]


def open_allocations(plan: PlanView, _: SignedInUser) -> list[tuple[str, str]]:
    return [
        (c.id, f"{i.text}, från {c.period_start or '?'}")
        for i in plan.interventions
        for c in i.costs
        if not c.in_force
    ]


def deviations_to_answer(plan: PlanView, user: SignedInUser) -> list[tuple[str, str]]:
    """Open deviations against the user's organisation, and those against no intervention."""
    against_us = {d.id for d in plan.open_deviations_against(user.organization)}
    return [
        (d.id, d.text)
        for d in plan.deviations
        if d.answer is None and (d.id in against_us or d.intervention_id is None)
    ]


def member_label(member: Any) -> str:
    kind = texts.PARTICIPANT_KIND.get(member.kind, member.kind)
    return f"{member.name} ({kind})" if member.name else kind


def organization_label(plan: PlanView, hsa_id: str | None) -> str:
    name = plan.organization_name(hsa_id)
    kind = next((m.kind for m in plan.organizations if m.organization == hsa_id), None)
    label = texts.PRINCIPAL.get(kind or "", "")
    if name != hsa_id:
        return name
    return f"{label} {hsa_id}".strip() if hsa_id else "okänd"


def meeting_label(meeting: Any) -> str:
    return f"{local(meeting.start)} {place_of(meeting.place)}".strip()


def place_of(comment: str | None) -> str:
    return (comment or "").split(". Anteckningar: ", 1)[0]


def notes_of(comment: str | None) -> str | None:
    parts = (comment or "").split(". Anteckningar: ", 1)
    return parts[1] if len(parts) == 2 else None


# When the plan offers a form.


def is_open(plan: PlanView) -> bool:
    return plan.status in ("draft", "active")


def invited_not_accepted(plan: PlanView, user: SignedInUser) -> bool:
    """The user's organisation was invited to the plan and has not yet said it takes part."""
    return any(
        m.organization == user.organization and m.invitation.get("status") == "invited"
        for m in plan.organizations
    )


def principal_user(plan: PlanView, user: SignedInUser) -> bool:
    return any(
        m.organization == user.organization and m.kind in PRINCIPALS and not m.pending
        for m in plan.organizations
    )


def _with(*conditions: Callable[[PlanView, SignedInUser], Any]) -> Callable[..., bool]:
    return lambda plan, user: all(condition(plan, user) for condition in conditions)


def _text(name: str, label: str, required: bool = False, hint: str | None = None) -> Field:
    return Field(name, label, "text", "valueString", required, hint)


def _textarea(name: str, label: str, required: bool = False, hint: str | None = None) -> Field:
    return Field(name, label, "textarea", "valueString", required, hint)


def _date(name: str, label: str, required: bool = False, hint: str | None = None) -> Field:
    return Field(name, label, "date", "valueDate", required, hint)


def _hsa(name: str, label: str, required: bool = False, hint: str | None = None) -> Field:
    return Field(name, label, "hsa-id", "valueIdentifier", required, hint or HSA_HINT)


HSA_HINT = "HSA-id, till exempel SE2321000016-7P31."

FORMS: dict[str, FormSpec] = {
    spec.operation: spec
    for spec in [
        FormSpec(
            "record-need",
            "Registrera ett behov",
            "needs",
            STAFF | {"patient"},
            (
                _textarea(
                    "text",
                    "Behovet, med personens egna ord",
                    required=True,
                    hint="Skriv som personen själv uttrycker det.",
                ),
                _textarea("wishes", "Personens önskemål"),
            ),
            "Registrera behovet",
            "Behovet är registrerat.",
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "assign-intervention",
            "Lägg till en insats",
            "interventions",
            PLANNERS,
            (
                _textarea("text", "Insatsen", required=True, hint="Vad som ska göras."),
                Field(
                    "kind",
                    "Typ av insats",
                    "select",
                    "valueCode",
                    True,
                    choices=texts.INTERVENTION_KIND,
                ),
                Field(
                    "responsiblePrincipal",
                    "Ansvarig huvudman",
                    "select",
                    "valueCode",
                    True,
                    hint="Annan aktör: en åtgärd av någon annan än region och kommun, "
                    "till exempel personen själv, skolan eller Försäkringskassan.",
                    choices=texts.PRINCIPAL,
                ),
                Field(
                    "responsibleOrganization",
                    "Ansvarig organisation",
                    "select",
                    "valueIdentifier",
                    hint="Den organisation hos huvudmannen som svarar för insatsen.",
                    choices=principals,
                ),
                _hsa("responsibleUnit", "Ansvarig enhet", hint=HSA_HINT),
                Field(
                    "performerOrganization",
                    "Utförs av organisation",
                    "select",
                    "valueIdentifier",
                    hint="Välj en organisation eller en deltagare som utför insatsen.",
                    choices=organizations,
                ),
                _hsa("performerUnit", "Utförande enhet", hint=HSA_HINT),
                Field(
                    "performerParticipant",
                    "Utförs av deltagare",
                    "select",
                    "valueString",
                    hint="Till exempel personen själv eller en närstående.",
                    choices=persons,
                ),
                Field("need", "Behov insatsen svarar mot", "multi", "valueString", choices=needs),
                Field("goal", "Mål som insatsen leder mot", "multi", "valueString", choices=goals),
                _date("start", "Från"),
                _date("end", "Till"),
            ),
            "Lägg till insatsen",
            "Insatsen är tillagd.",
            rule_fields={
                "responsible-principal-matches-organization": "responsibleOrganization",
                "intervention-responsible-principal": "responsiblePrincipal",
                "intervention-has-performer": "performerOrganization",
                "intervention-organization-takes-part": "performerOrganization",
                "known-need": "need",
                "known-goal": "goal",
            },
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "set-intervention-status",
            "Ändra en insats status",
            "interventions",
            STAFF,
            (
                Field(
                    "intervention",
                    "Insats",
                    "select",
                    "valueString",
                    True,
                    choices=interventions,
                ),
                Field(
                    "status",
                    "Ny status",
                    "select",
                    "valueCode",
                    True,
                    choices=texts.INTERVENTION_STATUS,
                ),
                _textarea("reason", "Orsak", hint="Krävs när insatsen avbryts."),
            ),
            "Ändra status",
            "Insatsens status är ändrad.",
            rule_fields={
                "stopped-intervention-reason": "reason",
                "known-intervention": "intervention",
                "intervention-status": "status",
            },
            offered=lambda plan, user: is_open(plan) and bool(plan.interventions),
            proposes=True,
        ),
        FormSpec(
            "assign-overall-responsibility",
            "Ge eller flytta huvudansvaret",
            "overall",
            frozenset({"coordinator"}),
            (
                Field(
                    "organization",
                    "Huvudman som ska ha huvudansvaret",
                    "select",
                    "valueIdentifier",
                    True,
                    choices=principals,
                ),
                _textarea("reason", "Varför huvudansvaret flyttas", hint="Krävs vid flytt."),
            ),
            "Spara huvudansvaret",
            "Huvudansvaret är registrerat.",
            rule_fields={
                "overall-responsibility-transfer-reason": "reason",
                "overall-responsibility-principal": "organization",
                "overall-responsibility-changes": "organization",
            },
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "set-goal",
            "Sätt ett mål",
            "goals",
            STAFF | {"patient"},
            (
                _textarea("text", "Målet, med personens egna ord", required=True),
                _date("targetDate", "Måldatum"),
                Field("need", "Behov som målet gäller", "multi", "valueString", choices=needs),
            ),
            "Sätt målet",
            "Målet är registrerat.",
            rule_fields={"known-need": "need"},
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "revise-goal",
            "Revidera ett mål",
            "goals",
            STAFF | {"patient"},
            (
                Field("goal", "Mål", "select", "valueString", True, choices=goals),
                _textarea("text", "Ny formulering, med personens egna ord", required=True),
                _date("targetDate", "Nytt måldatum"),
                _textarea("reason", "Varför målet ändras", required=True),
            ),
            "Revidera målet",
            "Målet är reviderat.",
            rule_fields={"known-goal": "goal"},
            offered=lambda plan, user: is_open(plan) and bool(plan.goals),
            proposes=True,
        ),
        FormSpec(
            "assess-goal",
            "Bedöm ett mål",
            "goals",
            STAFF,
            (
                Field("goal", "Mål", "select", "valueString", True, choices=goals),
                Field(
                    "outcome", "Bedömning", "select", "valueCode", True, choices=texts.GOAL_OUTCOME
                ),
                _textarea("note", "Kommentar"),
            ),
            "Spara bedömningen",
            "Bedömningen är registrerad.",
            rule_fields={"known-goal": "goal"},
            offered=lambda plan, user: is_open(plan) and bool(plan.goals),
            proposes=True,
        ),
        FormSpec(
            "invite-organization",
            "Bjud in en organisation",
            "participants",
            PLANNERS,
            (
                _hsa("organization", "Organisationens HSA-id", required=True),
                Field(
                    "kind",
                    "Slag av organisation",
                    "select",
                    "valueCode",
                    True,
                    choices=texts.PRINCIPAL,
                ),
                _text("name", "Organisationens namn"),
            ),
            "Bjud in",
            "Organisationen är inbjuden.",
            rule_fields={
                "organization-invited-once": "organization",
                "organization-kind": "kind",
            },
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "accept-invitation",
            "Acceptera inbjudan",
            "participants",
            STAFF,
            (
                _hsa("unit", "Er enhet som deltar", hint=f"Valfritt. {HSA_HINT}"),
                _text("contact", "Kontaktperson hos er", hint="Valfritt: namn och telefon."),
            ),
            "Acceptera inbjudan",
            "Ni har accepterat inbjudan och deltar i planen.",
            rule_fields={"invitation-accepted-once": FORM_ERROR},
            offered=lambda plan, user: is_open(plan) and invited_not_accepted(plan, user),
        ),
        FormSpec(
            "add-participant",
            "Lägg till en deltagare",
            "participants",
            PLANNERS,
            (
                Field(
                    "kind",
                    "Deltar som",
                    "select",
                    "valueCode",
                    True,
                    choices=texts.PARTICIPANT_KIND,
                ),
                _text("name", "Namn"),
                _text("role", "Roll eller yrke", hint="Till exempel kurator eller god man."),
                Field(
                    "organization",
                    "Organisation",
                    "select",
                    "valueIdentifier",
                    hint="För en yrkesperson: den organisation i planen som hen företräder.",
                    choices=organizations,
                ),
                _hsa("unit", "Enhet", hint=HSA_HINT),
                Field(
                    "personAgrees",
                    "Personen vill att den närstående deltar",
                    "checkbox",
                    "valueBoolean",
                    hint="En närstående deltar bara om personen samtycker till det.",
                ),
            ),
            "Lägg till deltagaren",
            "Deltagaren är tillagd.",
            rule_fields={
                "relative-needs-person-agreement": "personAgrees",
                "participant-organization-takes-part": "organization",
                "participant-kind": "kind",
            },
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "schedule-meeting",
            "Boka ett SIP-möte",
            "meetings",
            STAFF,
            (
                Field("start", "Börjar", "datetime-local", "valueDateTime", True),
                Field("end", "Slutar", "datetime-local", "valueDateTime", True),
                _text("location", "Plats", hint="Ange en plats eller en videolänk."),
                _text("video", "Videolänk"),
                Field("invitee", "Kallade deltagare", "multi", "valueString", choices=persons),
            ),
            "Boka mötet",
            "Mötet är bokat.",
            rule_fields={"meeting-place": "location"},
            offered=lambda plan, user: is_open(plan),
        ),
        FormSpec(
            "record-meeting",
            "Registrera ett hållet möte",
            "meetings",
            STAFF,
            (
                Field("meeting", "Möte", "select", "valueString", True, choices=booked_meetings),
                Field("attendee", "Deltog", "multi", "valueString", choices=persons),
                _textarea("notes", "Anteckningar"),
                Field(
                    "approvedChanges",
                    "Personen godkände de föreslagna ändringarna på mötet",
                    "checkbox",
                    "valueBoolean",
                    hint="Bara om personen, vårdnadshavare eller ställföreträdare deltog.",
                ),
            ),
            "Registrera mötet",
            "Mötet är registrerat.",
            rule_fields={
                "meeting-approval-needs-the-person": "attendee",
                "known-meeting": "meeting",
            },
            offered=lambda plan, user: is_open(plan) and bool(booked_meetings(plan, user)),
        ),
        FormSpec(
            "set-follow-up",
            "Sätt datum för uppföljning",
            "follow-up",
            PLANNERS,
            (_date("date", "Uppföljningsdatum", required=True),),
            "Spara datumet",
            "Uppföljningsdatumet är satt.",
            offered=lambda plan, user: is_open(plan),
            proposes=True,
        ),
        FormSpec(
            "record-follow-up",
            "Registrera en uppföljning",
            "follow-up",
            STAFF,
            (
                _textarea("reviewed", "Vad som följdes upp", required=True),
                _textarea("changes", "Ändringar i planen"),
                _date("nextDate", "Nästa uppföljning"),
            ),
            "Registrera uppföljningen",
            "Uppföljningen är registrerad.",
            rule_fields={"follow-up-of-active-plan": FORM_ERROR},
            offered=lambda plan, user: plan.status == "active",
            proposes=True,
        ),
        FormSpec(
            "allocate-cost",
            "Föreslå en kostnadsfördelning",
            "costs",
            PLANNERS,
            (
                Field(
                    "intervention",
                    "Insats",
                    "select",
                    "valueString",
                    True,
                    choices=interventions,
                ),
                Field(
                    "share",
                    "Andelar",
                    "shares",
                    "part",
                    hint="Procent eller belopp i kronor för varje huvudman.",
                    choices=principals,
                ),
                _date("periodStart", "Gäller från", required=True),
                _date("periodEnd", "Gäller till"),
                Field(
                    "splitUnclear",
                    "Fördelningen är oklar (standard: 1/3 region, 2/3 kommun)",
                    "checkbox",
                    "valueBoolean",
                    hint="Lämna andelarna tomma. Gäller när den andra huvudmannen också "
                    "anger att fördelningen är oklar.",
                ),
            ),
            "Föreslå fördelningen",
            "Kostnadsfördelningen är föreslagen.",
            rule_fields={
                "cost-share-amount": "share",
                "cost-shares-whole": "share",
                "cost-shares-between-principals": "share",
                "default-split-only-when-unclear": "splitUnclear",
                "known-intervention": "intervention",
            },
            offered=_with(lambda plan, user: is_open(plan), principal_user, interventions),
        ),
        FormSpec(
            "agree-cost-allocation",
            "Godkänn en kostnadsfördelning",
            "costs",
            PLANNERS,
            (
                Field(
                    "allocation",
                    "Kostnadsfördelning",
                    "select",
                    "valueString",
                    True,
                    choices=open_allocations,
                ),
                Field(
                    "splitUnclear",
                    "Vi godkänner standardfördelningen eftersom fördelningen är oklar",
                    "checkbox",
                    "valueBoolean",
                ),
            ),
            "Godkänn",
            "Ni har godkänt kostnadsfördelningen.",
            rule_fields={
                "default-split-only-when-unclear": "splitUnclear",
                "cost-agreed-once": "allocation",
            },
            offered=_with(lambda plan, user: is_open(plan), principal_user, open_allocations),
        ),
        FormSpec(
            "report-deviation",
            "Rapportera en avvikelse",
            "deviations",
            STAFF,
            (
                Field(
                    "intervention",
                    "Insats som inte genomfördes som avtalat",
                    "select",
                    "valueString",
                    choices=interventions,
                ),
                _textarea("text", "Vad som hände", required=True),
            ),
            "Rapportera",
            "Avvikelsen är rapporterad.",
            rule_fields={
                "deviation-against-another": "intervention",
                "known-intervention": "intervention",
            },
            offered=lambda plan, user: is_open(plan),
        ),
        FormSpec(
            "answer-deviation",
            "Besvara en avvikelse mot er",
            "deviations",
            STAFF,
            (
                Field(
                    "deviation",
                    "Avvikelse",
                    "select",
                    "valueString",
                    True,
                    choices=deviations_to_answer,
                ),
                _textarea("answer", "Svar", required=True),
            ),
            "Skicka svaret",
            "Avvikelsen är besvarad.",
            rule_fields={
                "deviation-answered-once": "deviation",
                "known-deviation": "deviation",
            },
            offered=deviations_to_answer,
        ),
        FormSpec(
            "approve-changes",
            "Registrera personens godkännande från ett möte",
            "pending",
            frozenset({"coordinator"}),
            (
                Field("approvedBy", "Godkänt av", "hidden", "valueCode", fixed="meeting"),
                Field(
                    "meeting",
                    "Mötet där personen godkände ändringarna",
                    "select",
                    "valueString",
                    True,
                    hint="Personen, vårdnadshavare eller ställföreträdare ska ha deltagit. "
                    "Personen kan också godkänna själv med sin egen inloggning.",
                    choices=held_meetings,
                ),
            ),
            "Registrera godkännandet",
            "Godkännandet är registrerat: ändringarna gäller nu.",
            rule_fields={"meeting-approval-needs-the-person": "meeting"},
            offered=_with(lambda plan, user: is_open(plan) and plan.pending_changes, held_meetings),
        ),
        FormSpec(
            "activate",
            "Aktivera planen",
            "status",
            PLANNERS,
            (),
            "Aktivera planen",
            "Planen är aktiverad.",
            offered=lambda plan, user: plan.status == "draft",
        ),
        FormSpec(
            "close",
            "Avsluta planen",
            "status",
            PLANNERS,
            (
                Field("reason", "Skäl", "select", "valueCode", True, choices=texts.CLOSE_REASON),
                _textarea("note", "Kommentar"),
                _text(
                    "replacedBy",
                    "Ersätts av plan",
                    hint="Bara när planen ersätts av en ny: den nya planens id.",
                ),
            ),
            "Avsluta planen",
            "Planen är avslutad.",
            rule_fields={"replaced-by-plan": "replacedBy", "close-reason": "reason"},
            offered=lambda plan, user: is_open(plan),
            danger=True,
        ),
    ]
}


# A form as the page shows it.


@dataclass
class FieldView:
    spec: Field
    id: str
    choices: list[tuple[str, str]]
    values: list[str]  # what the user posted, or nothing
    errors: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)  # shares: one per principal

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def described_by(self) -> str:
        hint = [f"{self.id}-hint"] if self.spec.hint else []
        errors = [f"{self.id}-error-{n}" for n in range(1, len(self.errors) + 1)]
        return " ".join(hint + errors)


@dataclass
class FormView:
    spec: FormSpec
    plan_id: str
    version: str
    fields: list[FieldView]
    errors: list[str]  # about the whole form
    open: bool
    base: str = "/plans"  # the form posts to <base>/<id>/<operation>
    submission: str = ""  # a form that makes a record: its key (services/web/submissions.py)

    @property
    def id(self) -> str:
        return f"form-{self.spec.operation}"

    @property
    def action(self) -> str:
        """<base>/<id>/<operation>; <base>/<operation> for one that makes the record."""
        record = f"/{self.plan_id}" if self.plan_id else ""
        return f"{self.base}{record}/{self.spec.operation}"


Posted = Mapping[str, list[str]]


def resolve(choices: Mapping[str, str] | Choices | None, plan: PlanView, user: SignedInUser):
    if choices is None:
        return []
    if callable(choices):
        return list(choices(plan, user))
    return list(choices.items())


def forms_for(
    plan: PlanView,
    user: SignedInUser,
    posted_operation: str | None = None,
    posted: Posted | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> dict[str, list[FormView]]:
    """The forms this user's role may use at all and the plan offers now, by section; the
    posted one (if any, and if the role may use it) with the user's input and the errors
    beside its fields."""
    by_section: dict[str, list[FormView]] = {}
    for spec in FORMS.values():
        mine = spec.operation == posted_operation and user.role in spec.roles
        if not mine and (user.role not in spec.roles or not spec.offered(plan, user)):
            continue
        form_errors = dict(errors or {}) if mine else {}
        given = (posted or {}) if mine else {}
        fields = []
        for f in spec.fields:
            choices = resolve(f.choices, plan, user)
            view = FieldView(
                spec=f,
                id=f"{spec.operation}-{f.name}",
                choices=choices,
                values=list(given.get(f.name, [])),
                errors=form_errors.pop(f.name, []),
            )
            if f.input == "shares":
                view.rows = [
                    {
                        "organization": hsa_id,
                        "label": label,
                        "percent": first_posted(given, f"share-{i}-percent"),
                        "amountSek": first_posted(given, f"share-{i}-amountSek"),
                    }
                    for i, (hsa_id, label) in enumerate(choices)
                ]
            fields.append(view)
        leftover = [m for name, messages in form_errors.items() for m in messages]
        by_section.setdefault(spec.section, []).append(
            FormView(spec, plan.id, plan.version, fields, leftover, open=mine)
        )
    return by_section


def first_posted(posted: Posted, name: str) -> str:
    values = posted.get(name) or [""]
    return values[0]


# Reading a posted form back into Parameters.


class Invalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def parameters_of(spec: FormSpec, posted: Posted) -> list[dict[str, Any]]:
    """The Parameters of a posted form (empty optional fields left out), or Invalid with a
    Swedish message per field that cannot become its FHIR value."""
    parameters: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}
    for f in spec.fields:
        if f.input == "shares":
            shares = _shares(posted, errors)
            parameters += shares
            continue
        if f.read is not None:
            try:
                read = f.read(posted)
            except ValueError as problem:
                errors[f.name] = [str(problem)]
                continue
            if not read and f.required:
                errors[f.name] = [missing_message(f)]
            parameters += read
            continue
        values = [v.strip() for v in posted.get(f.name, []) if v.strip()]
        if f.input == "hidden":
            values = [f.fixed] if f.fixed else []
        if f.input != "multi":
            values = values[:1]
        if not values:
            if f.required:
                errors[f.name] = [missing_message(f)]
            continue
        for value in values:
            try:
                parameters.append({"name": f.name, **fhir_value(f, value)})
            except ValueError as problem:
                errors.setdefault(f.name, []).append(str(problem))
    if errors:
        raise Invalid(errors)
    return parameters


def missing_message(f: Field) -> str:
    if f.input in ("select", "multi"):
        return f"Välj {f.label.lower()}."
    return f"Fyll i {f.label.lower()}."


def fhir_value(f: Field, value: str) -> dict[str, Any]:
    if f.value == "valueBoolean":
        return {"valueBoolean": value in ("true", "on", "1")}
    if f.value == "valueIdentifier":
        return {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": value}}
    if f.value == "valueDecimal":
        return {"valueDecimal": decimal(value)}
    if f.value == "valueDateTime":
        return {"valueDateTime": instant_of(value)}
    return {f.value: value}


def decimal(value: str) -> float:
    try:
        return float(value.replace(",", ".").replace(" ", ""))
    except ValueError:
        raise ValueError("Ange ett tal, till exempel 50 eller 33,3.") from None


def instant_of(value: str) -> str:
    """A datetime-local input (2026-12-10T10:00) as an instant in Swedish time."""
    try:
        typed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("Ange datum och klockslag, till exempel 2026-12-10 10:00.") from None
    if typed.tzinfo is None:
        typed = typed.replace(tzinfo=SWEDEN)
    return typed.isoformat(timespec="seconds")


def _shares(posted: Posted, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    shares = []
    index = 0
    while f"share-{index}-organization" in posted:
        organization = first_posted(posted, f"share-{index}-organization").strip()
        parts: list[dict[str, Any]] = []
        for name in ("percent", "amountSek"):
            given = first_posted(posted, f"share-{index}-{name}").strip()
            if given:
                try:
                    parts.append({"name": name, "valueDecimal": decimal(given)})
                except ValueError as problem:
                    errors.setdefault("share", []).append(str(problem))
        if parts and organization:
            identifier = {"system": HSA_ID_SYSTEM, "value": organization}
            shares.append(
                {
                    "name": "share",
                    "part": [{"name": "organization", "valueIdentifier": identifier}, *parts],
                }
            )
        index += 1
    return shares


# A refusal put beside the field it concerns.

FIELD_PROBLEM = {
    "hsa-id": "Ange ett giltigt HSA-id, till exempel SE2321000016-7P31.",
    "date": "Ange ett giltigt datum (ÅÅÅÅ-MM-DD).",
    "datetime-local": "Ange ett giltigt datum och klockslag.",
    "decimal": "Ange ett tal.",
    "recipients": "Ange giltiga HSA-id för organisation och enhet, till exempel SE2321000016-7P31.",
}
PART_FIELDS = {"percent": "share", "amountSek": "share"}


def refusal_errors(
    spec: FormSpec, refused: Refused, plan: PlanView, user: SignedInUser
) -> dict[str, list[str]]:
    """Each issue of a refusal in Swedish, under the field it concerns (FORM_ERROR if none)."""
    names = {f.name: f for f in spec.fields}
    errors: dict[str, list[str]] = {}
    for issue in refused.issues or [Issue("")]:
        name = _field_of(spec, issue)
        if name not in names:
            name = FORM_ERROR
        errors.setdefault(name, []).append(
            sentence(spec, refused.status, issue, names.get(name), plan, user)
        )
    return errors


def _field_of(spec: FormSpec, issue: Issue) -> str | None:
    """The field an issue is about: by its rule, the parameter it names, or (for the form's
    `element_fields`) the element an invalid value's diagnostics begin with."""
    named = spec.rule_fields.get(issue.rule or "") or texts.parameter_of(issue)
    if named is None:
        element = re.match(r"(\w+)[\[.:]", issue.message)
        named = spec.element_fields.get(element.group(1)) if element else None
    named = spec.element_fields.get(named or "", named)
    return PART_FIELDS.get(named or "", named)


def sentence(
    spec: FormSpec,
    status: int,
    issue: Issue,
    about: Field | None,
    plan: PlanView,
    user: SignedInUser,
) -> str:
    rule = issue.rule or ""
    if rule == "activation-requires-consent":
        return activation_refusal(issue, plan)
    if rule.startswith("role-matrix-") or (status == 403 and not rule):
        role = texts.ROLE.get(user.role, user.role).lower()
        return f"Din roll ({role}) får inte {spec.legend.lower()}. Be en samordnare om hjälp."
    if rule.startswith("activat"):
        # The plan's own activation rules come together, the first one named as the rule.
        named = re.findall(r"\b(activat[a-z]*(?:-[a-z]+)+):", issue.message) or [rule]
        return " ".join(texts.RULE.get(r, r) for r in dict.fromkeys([rule, *named]))
    if rule in texts.RULE:
        return texts.RULE[rule]
    if issue.message in texts.INVALID_VALUE:
        return texts.INVALID_VALUE[issue.message]
    if status in (400, 422) and about is not None:
        problem = FIELD_PROBLEM.get(about.input)
        if problem:
            return problem
        if issue.code == "required" or "required" in issue.message:
            return missing_message(about)
        return f"{about.label}: värdet kunde inte tas emot ({issue.message})."
    return texts.refusal_in_swedish(Refused(status, [issue]))[0]


DIRECTION = re.compile(r"disclosure from (\S+) \((\w+)\) to (\S+) \((\w+)\) is not permitted")


def activation_refusal(issue: Issue, plan: PlanView) -> str:
    """Which direction between the principals no consent covers, and what to do."""
    directions = DIRECTION.findall(issue.message)
    if not directions:
        return texts.RULE["activation-requires-consent"]
    said = [
        f"uppgifter från {_principal_name(kind)} ({plan.organization_name(source)}) till "
        f"{_principal_name(to_kind)} ({plan.organization_name(recipient)})"
        for source, kind, recipient, to_kind in directions
    ]
    return (
        "Planen kan inte aktiveras: det finns inget giltigt samtycke från personen som tillåter "
        + " eller ".join(said)
        + ". Huvudmännen får inte dela uppgifter om personen utan samtycke. Registrera "
        "personens samtycke för båda huvudmännen (eller kontrollera att samtycket inte har "
        "återkallats, gått ut eller spärrats) och aktivera sedan planen igen."
    )


def _principal_name(kind: str) -> str:
    return {"region": "regionen", "municipality": "kommunen"}.get(kind, kind)
