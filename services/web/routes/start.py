"""Finding a person and starting a plan for them, as a short guided sequence of plain forms:

1. the call: who the plan is for, who took the initiative and why (`POST CarePlan`, a draft
   authored by the user's organisation with its kind);
2. the person's consent (or a guardian's or representative's), naming the region and the
   municipality, with a period (`POST Consent` on the consent service);
3. the invitation of the other principal's unit (`$invite-organization`);

and then the plan's own page. The personnummer is only ever posted in a form body: never in
a URL (after step 1 the plan's id is), a page title or a log line."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from contracts.canonical import EXT_INITIATIVE, EXT_ORGANIZATION_KIND
from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_SYSTEM,
    InvalidIdentifier,
    parse_hsa_id,
)
from services.common.fhir_time import swedish_today
from services.web.consent_forms import (
    CONSENT_FIELDS,
    consent_resource,
    consent_values,
    field_of_consent_issue,
    sentence_of_consent_issue,
)
from services.web.consent_view import ConsentSummary, consents_in
from services.web.dependencies import Fhir, User
from services.web.fhir_client import (
    ChangedMeanwhile,
    FhirClient,
    Issue,
    Refused,
    ServiceUnavailable,
)
from services.web.form_errors import FormErrors, place_refusal
from services.web.pages import render
from services.web.person_numbers import check_person_number, shown
from services.web.plan_reads import load_plan
from services.web.plan_view import PlanView, plan_view
from services.web.session import SignedInUser
from services.web.submissions import (
    SUBMISSION_FIELD,
    identified_once,
    new_submission,
    submission_of,
)
from services.web.texts import INITIATIVE, PRINCIPAL
from services.web.timeline_view import changes_since

router = APIRouter()

# Who may start a plan (docs/role-matrix.md, `POST CarePlan`); others are told so.
STARTERS = ("coordinator", "integration")
PLAN_FIELDS = ("personnummer", "name", "title", "description", "initiative", "kind")
INVITE_FIELDS = ("organization", "kind", "name")
HSA_EXAMPLE = "Ett HSA-id skrivs som SE2321000016-7P31."
RESENT_FOR_ANOTHER = (
    "Formuläret har redan skickats och skapade en plan för en annan person. "
    "Kontrollera uppgifterna och skicka igen."
)


def organization_kind(hsa_id: str | None) -> str:
    """The kind an HSA-id's organisation number tells (SE + organisationsnummer): 232100-…
    are the regions, 212000-… the municipalities; anything else is another organisation.
    A default the user may change."""
    number = (hsa_id or "")[2:12]
    if number.startswith("232100"):
        return "region"
    if number.startswith("212000"):
        return "municipality"
    return "other"


def _not_staff(user: SignedInUser) -> Response | None:
    return RedirectResponse("/me", status_code=303) if user.is_person else None


# --- Find a person --------------------------------------------------------------------------


@router.get("/find")
def find_page(request: Request, user: User) -> Response:
    return _not_staff(user) or render(request, "find.html", typed="", errors=FormErrors())


@router.post("/find")
async def find(request: Request, user: User, fhir: Fhir) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    form = await request.form()
    checked = check_person_number(str(form.get("personnummer", "")))
    if checked.problem:
        errors = FormErrors()
        errors.add("personnummer", checked.problem)
        return render(request, "find.html", status_code=422, typed=checked.typed, errors=errors)
    plans, consents, consent_problem = await _person_overview(fhir, checked.token)
    return render(
        request,
        "find.html",
        typed=shown(checked.identifier),
        errors=FormErrors(),
        searched=True,
        personnummer=shown(checked.identifier),
        plans=plans,
        consents=consents,
        consent_problem=consent_problem,
        names=_organization_names(plans),
        may_start=user.role in STARTERS,
    )


async def _person_overview(
    fhir: FhirClient, token: str
) -> tuple[list[PlanView], list[ConsentSummary], str | None]:
    """The person's plans and consents this user may see, asked of both services at once.
    Without the consent service the plans are still shown, with a word on the consents."""

    async def plans() -> list[PlanView]:
        bundle = await fhir.search(
            "sip", "CarePlan", {"subject:identifier": token, "_include": "CarePlan:care-team"}
        )
        resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
        teams = {r.get("id"): r for r in resources if r.get("resourceType") == "CareTeam"}
        return [
            plan_view(r, teams.get(f"{r.get('id')}-team"))
            for r in resources
            if r.get("resourceType") == "CarePlan"
        ]

    async def consents() -> tuple[list[ConsentSummary], str | None]:
        try:
            bundle = await fhir.search("consent", "Consent", {"patient:identifier": token})
        except ServiceUnavailable:
            return [], "Samtyckestjänsten svarar inte just nu: personens samtycken kan inte visas."
        except Refused:
            return [], "Du har inte behörighet att se personens samtycken."
        return consents_in(bundle), None

    found, (given, problem) = await asyncio.gather(plans(), consents())
    found.sort(key=lambda p: (p.status != "active", p.status != "draft", p.created or ""))
    given.sort(key=lambda c: (not c.in_force, c.given_at or ""), reverse=False)
    return found, given, problem


def _organization_names(plans: list[PlanView]) -> dict[str, str]:
    return {
        m.organization: m.name
        for plan in plans
        for m in plan.organizations
        if m.organization and m.name
    }


# --- Step 1: the call, and the plan --------------------------------------------------------


def _plan_defaults(user: SignedInUser) -> dict[str, str]:
    kind = organization_kind(user.organization)
    return {
        "personnummer": "",
        "name": "",
        "title": "",
        "description": "",
        "kind": kind,
        "initiative": "municipal-unit" if kind == "municipality" else "region-unit",
        SUBMISSION_FIELD: new_submission(),
    }


def _render_plan_form(
    request: Request,
    user: SignedInUser,
    values: dict[str, str],
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "start_plan.html",
        status_code=status_code,
        values=values,
        errors=errors or FormErrors(),
        may_start=user.role in STARTERS and bool(user.organization),
        kinds=PRINCIPAL,
        initiatives=INITIATIVE,
        step=1,
    )


@router.get("/plans/new")
def new_plan_page(request: Request, user: User) -> Response:
    return _not_staff(user) or _render_plan_form(request, user, _plan_defaults(user))


@router.post("/plans/new")
async def new_plan(request: Request, user: User, fhir: Fhir) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    form = await request.form()
    values = _plan_defaults(user)
    values.update({k: " ".join(str(form.get(k, "")).split()) for k in PLAN_FIELDS if k in form})
    values["description"] = str(form.get("description", "")).strip()
    values[SUBMISSION_FIELD] = submission_of(form)
    checked = check_person_number(values["personnummer"])
    if checked.identifier:
        values["personnummer"] = shown(checked.identifier)
    if form.get("from_find"):  # "Starta plan för personen" on the find page: only prefill
        return _render_plan_form(request, user, values)
    errors = FormErrors()
    if checked.problem:
        errors.add("personnummer", checked.problem)
    if values["kind"] not in PRINCIPAL:
        errors.add("kind", "Välj vilken sorts organisation du startar planen för.")
    if values["initiative"] not in INITIATIVE:
        errors.add("initiative", "Välj vem som tog initiativet till planen.")
    if not values["description"]:
        errors.add("description", "Skriv varför en SIP behövs.")
    if errors:
        return _render_plan_form(request, user, values, errors, 422)
    assert checked.identifier is not None
    title = values["title"] or (
        f"SIP för {values['name']}" if values["name"] else "Samordnad individuell plan"
    )
    body = {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "plan",
        "title": title,
        "description": values["description"],
        "subject": {"identifier": checked.identifier.as_fhir()},
        "author": {
            "identifier": {"system": HSA_ID_SYSTEM, "value": user.organization or ""},
            "extension": [{"url": EXT_ORGANIZATION_KIND, "valueCode": values["kind"]}],
        },
        "extension": [{"url": EXT_INITIATIVE, "valueCode": values["initiative"]}],
    }
    try:
        answer = await fhir.create("sip", *identified_once(body, values[SUBMISSION_FIELD]))
    except Refused as refused:
        errors = place_refusal(refused, PLAN_FIELDS, _field_of_plan_issue)
        return _render_plan_form(request, user, values, errors, refused.status)
    if answer.body.get("subject", {}).get("identifier") != checked.identifier.as_fhir():
        # This form's submission already made a plan, for someone else: the form was sent
        # again after its fields were changed. Never answer it with the other person's plan.
        errors = FormErrors()
        errors.add("personnummer", RESENT_FOR_ANOTHER)
        values[SUBMISSION_FIELD] = new_submission()
        return _render_plan_form(request, user, values, errors, 409)
    return RedirectResponse(f"/plans/{answer.body['id']}/start/consent", status_code=303)


def _field_of_plan_issue(issue: Issue) -> str | None:
    return {
        "valid-person-identifier": "personnummer",
        "organization-kind": "kind",
        "sip-initiative": "initiative",
    }.get(issue.rule or "")


# --- Step 2: the person's consent ----------------------------------------------------------


def _principals(plan: PlanView, user: SignedInUser) -> dict[str, str]:
    """The region and municipality to name in the consent: those taking part in the plan
    (proposed ones too), the user's own organisation by its kind."""
    found: dict[str, str] = {}
    for member in plan.organizations:
        if member.kind in ("region", "municipality") and member.organization:
            found.setdefault(member.kind, member.organization)
    for hsa_id in plan.proposed_organizations:
        found.setdefault(organization_kind(hsa_id), hsa_id)
    own = organization_kind(user.organization)
    if user.organization and own in ("region", "municipality"):
        found.setdefault(own, user.organization)
    return found


def _consent_defaults(plan: PlanView, user: SignedInUser) -> dict[str, str]:
    principals = _principals(plan, user)
    own_kind = organization_kind(user.organization)
    return {
        SUBMISSION_FIELD: new_submission(),
        "giver_role": "person",
        "giver_identifier": "",
        "giver_name": "",
        "guardian2_identifier": "",
        "guardian2_name": "",
        "sole_custody": "",
        "assessor": user.name,
        "judged_on": swedish_today().isoformat(),
        "basis": "",
        "form": "written",
        "region": principals.get("region", ""),
        "municipality": principals.get("municipality", ""),
        "other_organization": user.organization or "" if own_kind == "other" else "",
        "period_start": swedish_today().isoformat(),
        "period_end": "",
    }


async def _person_consents(fhir: FhirClient, plan: PlanView) -> list[ConsentSummary]:
    subject = plan.raw.get("subject", {}).get("identifier", {})
    if not subject.get("value"):
        return []
    token = f"{subject.get('system', PERSONNUMMER_SYSTEM)}|{subject['value']}"
    try:
        bundle = await fhir.search("consent", "Consent", {"patient:identifier": token})
    except (Refused, ServiceUnavailable):
        return []
    return [c for c in consents_in(bundle) if c.in_force and c.kind == "permit"]


async def _render_consent_form(
    request: Request,
    fhir: FhirClient,
    plan: PlanView,
    values: dict[str, str],
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "start_consent.html",
        status_code=status_code,
        plan=plan,
        personnummer=_shown_subject(plan),
        values=values,
        errors=errors or FormErrors(),
        existing=await _person_consents(fhir, plan),
        next_step=_invite_url(plan, values),
        step=2,
    )


def _shown_subject(plan: PlanView) -> str:
    value = plan.personnummer or ""
    return f"{value[:8]}-{value[8:]}" if len(value) == 12 else value


@router.get("/plans/{plan_id}/start/consent")
async def consent_page(request: Request, plan_id: str, user: User, fhir: Fhir) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    plan = await load_plan(fhir, plan_id)
    return await _render_consent_form(request, fhir, plan, _consent_defaults(plan, user))


@router.post("/plans/{plan_id}/start/consent")
async def register_consent(request: Request, plan_id: str, user: User, fhir: Fhir) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    plan = await load_plan(fhir, plan_id)
    form = await request.form()
    values = consent_values(_consent_defaults(plan, user), form)
    values[SUBMISSION_FIELD] = submission_of(form)
    subject = plan.raw.get("subject", {}).get("identifier", {})
    resource, errors = consent_resource(values, subject, swedish_today())
    if errors:
        return await _render_consent_form(request, fhir, plan, values, errors, 422)
    try:
        await fhir.create("consent", *identified_once(resource, values[SUBMISSION_FIELD]))
    except Refused as refused:
        errors = place_refusal(
            refused, CONSENT_FIELDS, field_of_consent_issue, sentence_of_consent_issue
        )
        if refused.status == 403:
            errors = FormErrors()
            errors.add(
                "organizations",
                "Du kan bara registrera ett samtycke som omfattar din egen organisation "
                f"({user.organization}). Kontrollera region och kommun.",
            )
        return await _render_consent_form(request, fhir, plan, values, errors, refused.status)
    return RedirectResponse(_invite_url(plan, values), status_code=303)


def _invite_url(plan: PlanView, values: dict[str, str]) -> str:
    """Step 3, with the other principal the consent named (an HSA-id is no personal data)."""
    taking_part = {m.organization for m in plan.organizations} | set(plan.proposed_organizations)
    query = {}
    for kind in ("municipality", "region"):
        hsa_id = values.get(kind, "")
        if hsa_id and hsa_id not in taking_part:
            query = {"organization": hsa_id, "kind": kind}
            break
    return f"/plans/{plan.id}/start/invite" + (f"?{urlencode(query)}" if query else "")


# --- Step 3: invite the other principal's unit ---------------------------------------------


async def _render_invite_form(
    request: Request,
    plan: PlanView,
    values: dict[str, str],
    errors: FormErrors | None = None,
    status_code: int = 200,
    changed: list[Any] | None = None,
) -> Response:
    return render(
        request,
        "start_invite.html",
        status_code=status_code,
        plan=plan,
        values=values,
        errors=errors or FormErrors(),
        kinds=PRINCIPAL,
        changed=changed,
        step=3,
    )


@router.get("/plans/{plan_id}/start/invite")
async def invite_page(
    request: Request,
    plan_id: str,
    user: User,
    fhir: Fhir,
    organization: str = "",
    kind: str = "",
) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    plan = await load_plan(fhir, plan_id)
    values = {
        "organization": organization,
        "kind": kind if kind in PRINCIPAL else organization_kind(organization or None),
        "name": "",
        "version": plan.version,
    }
    if not organization:
        own = organization_kind(user.organization)
        values["kind"] = {"region": "municipality", "municipality": "region"}.get(own, "region")
    return await _render_invite_form(request, plan, values)


@router.post("/plans/{plan_id}/start/invite")
async def invite(request: Request, plan_id: str, user: User, fhir: Fhir) -> Response:
    if user.is_person:
        return RedirectResponse("/me", status_code=303)
    form = await request.form()
    values = {k: " ".join(str(form.get(k, "")).split()) for k in (*INVITE_FIELDS, "version")}
    errors = FormErrors()
    try:
        parse_hsa_id(values["organization"])
    except InvalidIdentifier:
        errors.add(
            "organization",
            ("Ange organisationens HSA-id. " if not values["organization"] else "") + HSA_EXAMPLE,
        )
    if values["kind"] not in PRINCIPAL:
        errors.add("kind", "Välj vilken sorts organisation det är: region, kommun eller annan.")
    if errors:
        plan = await load_plan(fhir, plan_id)
        return await _render_invite_form(request, plan, values, errors, 422)
    parameters: list[dict[str, Any]] = [
        {
            "name": "organization",
            "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": values["organization"]},
        },
        {"name": "kind", "valueCode": values["kind"]},
    ]
    if values["name"]:
        parameters.append({"name": "name", "valueString": values["name"]})
    try:
        await fhir.operation(
            "sip",
            f"CarePlan/{plan_id}/$invite-organization",
            parameters,
            if_match=values["version"] or None,
        )
    except ChangedMeanwhile:
        plan = await load_plan(fhir, plan_id)
        changed = await changes_since(fhir, plan_id, values["version"])
        values["version"] = plan.version
        return await _render_invite_form(request, plan, values, None, 409, changed)
    except Refused as refused:
        plan = await load_plan(fhir, plan_id)
        errors = place_refusal(refused, INVITE_FIELDS, _field_of_invite_issue)
        return await _render_invite_form(request, plan, values, errors, refused.status)
    return RedirectResponse(f"/plans/{plan_id}", status_code=303)


def _field_of_invite_issue(issue: Issue) -> str | None:
    return {"organization-invited-once": "organization", "organization-kind": "kind"}.get(
        issue.rule or ""
    )
