"""The person's own pages (role `patient`): my plans, my plan (what each organisation has
promised, my needs and goals in my own words, the changes waiting for my approval, ending the
plan), my consents (withdrawing one, or limiting what is shared with a block, *spärr*) and my
log extract. Everything is asked of the services with the person's own token; the personnummer
is taken from the session's token and posted (or put in the path of a server-to-server call),
never put in a URL the browser sees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from contracts.canonical import (
    CONSENT_CATEGORY_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    EXT_CONSENT_FORM,
    EXT_CONSENT_WITHDRAWAL,
    LOINC_PATIENT_CONSENT,
    LOINC_SYSTEM,
    RECIPIENT_ROLE,
    SOURCE_ROLE,
)
from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    SERVICE_HSA_ID,
)
from services.common.demo_identities import (
    MUNICIPALITY,
    MUNICIPALITY_NAME,
    OUTSIDER,
    OUTSIDER_NAME,
    REGION,
    REGION_NAME,
)
from services.common.fhir_time import swedish_today
from services.web import person_texts
from services.web.dependencies import Fhir, User
from services.web.fhir_client import ChangedMeanwhile, FhirClient, Issue, Refused
from services.web.pages import render
from services.web.plan_reads import load_plan, search_plans
from services.web.plan_view import Intervention, PlanView, extension, part, plan_view
from services.web.session import SignedInUser
from services.web.texts import parameter_of, refusal_in_swedish
from services.web.times import local, local_date

router = APIRouter(prefix="/me")
# The operation a person may say no with, where the SIP service offers it.
PERSON_WITHDREW = "person-withdrew"

DONE = {
    "record-need": "Ditt behov är sparat i planen. Det gäller direkt.",
    "set-goal": "Ditt mål är sparat i planen. Det gäller direkt.",
    "revise-goal": "Ditt mål är ändrat. Ändringen gäller direkt.",
    "approve-changes": "Du har godkänt ändringarna. De gäller nu.",
    "reject-changes": "Du har sagt nej till de föreslagna ändringarna.",
    "close": "Din plan är avslutad. Organisationerna får veta det.",
    "withdraw": "Samtycket är återkallat. Det gäller från och med nu.",
    "block": "Spärren är registrerad. Den gäller från och med nu.",
}


def the_person(user: User) -> SignedInUser:
    """The person's pages are the person's: staff get a readable refusal (403)."""
    if not user.is_person or not user.patient:
        raise Refused(403, [Issue("the person's own pages", rule="person-pages-for-the-person")])
    return user


Person = Annotated[SignedInUser, Depends(the_person)]


def person_identifier(personnummer: str) -> dict[str, str]:
    """The identifier of the signed-in person: a samordningsnummer has its day plus 60."""
    day = personnummer[6:8]
    system = SAMORDNINGSNUMMER_SYSTEM if day.isdigit() and int(day) > 60 else PERSONNUMMER_SYSTEM
    return {"system": system, "value": personnummer}


async def organization_names(request: Request, fhir: FhirClient, user: SignedInUser) -> dict:
    """The names the person knows the organisations by: those the plans' care teams give,
    and on the development issuer the demo's."""
    names: dict[str, str] = {SERVICE_HSA_ID: "SIP-tjänsten själv (automatiskt)"}
    if request.app.state.settings.dev_issuer:
        names |= {REGION: REGION_NAME, MUNICIPALITY: MUNICIPALITY_NAME, OUTSIDER: OUTSIDER_NAME}
    bundle = await fhir.search(
        "sip",
        "CarePlan",
        {"subject:identifier": user.patient or "", "_include": "CarePlan:care-team"},
    )
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "CareTeam":
            continue
        for participant in resource.get("participant", []):
            member = participant.get("member", {})
            hsa_id = (member.get("identifier") or {}).get("value")
            if hsa_id and member.get("display"):
                names[hsa_id] = member["display"]
    return names


def namer(names: dict[str, str], plan: PlanView | None = None) -> Any:
    def name(hsa_id: str | None) -> str:
        if not hsa_id:
            return "okänd organisation"
        if hsa_id in names:
            return names[hsa_id]
        return plan.organization_name(hsa_id) if plan else hsa_id

    return name


# -- my plans -------------------------------------------------------------------------------


@router.get("")
async def my_plans(request: Request, user: Person, fhir: Fhir, done: str | None = None) -> Response:
    plans = await search_plans(fhir, {"subject:identifier": user.patient or ""})
    order = {"active": 0, "draft": 1, "on-hold": 2}
    plans.sort(key=lambda p: (order.get(p.status, 3), p.created or ""), reverse=False)
    names = await organization_names(request, fhir, user)
    return render(
        request,
        "person_home.html",
        plans=plans,
        name=namer(names),
        explained=person_texts.EXPLAINED,
        done=DONE.get(done or ""),
    )


# -- my plan --------------------------------------------------------------------------------


@dataclass
class FormState:
    """The form the person sent (kept when it comes back with a message), and the messages:
    beside a field (by the API parameter's name) or at the top of that form (`_form`)."""

    operation: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def value(self, operation: str, name: str, default: Any = "") -> Any:
        return self.values.get(name, default) if self.operation == operation else default

    def error(self, operation: str, name: str) -> list[str]:
        return self.errors.get(name, []) if self.operation == operation else []


def promised_by_organization(
    plan: PlanView, name: Any
) -> list[tuple[str, list[Intervention], bool]]:
    """The interventions grouped by the organisation answering for them: (who, what, whether
    it is someone other than the region or municipality)."""
    groups: dict[str, list[Intervention]] = {}
    others: list[Intervention] = []
    for intervention in plan.interventions:
        if intervention.by_others or not intervention.responsible_organization:
            others.append(intervention)
        else:
            groups.setdefault(intervention.responsible_organization, []).append(intervention)
    grouped = [(name(hsa_id), items, False) for hsa_id, items in groups.items()]
    if others:
        grouped.append(("Andra än regionen och kommunen (till exempel du själv)", others, True))
    return grouped


async def plan_page(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    plan_id: str,
    *,
    status_code: int = 200,
    state: FormState | None = None,
    changed: list[str] | None = None,
    done: str | None = None,
) -> Response:
    plan = await load_plan(fhir, plan_id)
    names = await organization_names(request, fhir, user)
    name = namer(names, plan)
    return render(
        request,
        "person_plan.html",
        status_code=status_code,
        plan=plan,
        name=name,
        groups=promised_by_organization(plan, name),
        changes=[person_texts.change_in_swedish(c, plan) for c in plan.pending_changes],
        state=state or FormState(),
        changed=changed,
        done=DONE.get(done or ""),
        explained=person_texts.EXPLAINED,
    )


@router.get("/plans/{plan_id}")
async def my_plan(
    request: Request, plan_id: str, user: Person, fhir: Fhir, done: str | None = None
) -> Response:
    return await plan_page(request, fhir, user, plan_id, done=done)


def errors_of(refused: Refused) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for issue in refused.issues or [Issue("")]:
        sentence = refusal_in_swedish(Refused(refused.status, [issue]))[0]
        errors.setdefault(parameter_of(issue) or "_form", []).append(sentence)
    return errors


async def version_view(fhir: FhirClient, plan_id: str, version: str | None) -> PlanView | None:
    if not version:
        return None
    try:
        return plan_view((await fhir.read("sip", f"CarePlan/{plan_id}/_history/{version}")).body)
    except Refused:
        return None


async def what_changed(fhir: FhirClient, plan_id: str, version: str | None) -> list[str]:
    """What others changed since the version the person saw, in words."""
    old = await version_view(fhir, plan_id, version)
    new = plan_view((await fhir.read("sip", f"CarePlan/{plan_id}")).body)
    if old is None:
        return ["Något i planen ändrades."]
    return person_texts.plan_differences(old, new)


def text(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def required(values: dict[str, Any], *names: str) -> dict[str, list[str]]:
    said = {
        "text": "Skriv något här.",
        "reason": "Skriv varför du ändrar.",
        "goal": "Välj vilket mål du vill ändra.",
    }
    empty = [n for n in names if not str(values.get(n, "")).strip()]
    return {n: [said.get(n, "Fyll i det här.")] for n in empty}


async def plan_operation(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    plan_id: str,
    operation: str,
    parameters: list[dict[str, Any]],
    values: dict[str, Any],
    missing: dict[str, list[str]] | None = None,
) -> Response:
    """Runs one of the plan's operations as the person, at the version the person saw; a
    refusal or someone else's change first comes back to the plan page with the form kept."""
    state = FormState(operation, values)
    if missing:
        state.errors = missing
        return await plan_page(request, fhir, user, plan_id, status_code=422, state=state)
    version = values.get("version") or None
    try:
        await fhir.operation("sip", f"CarePlan/{plan_id}/${operation}", parameters, version)
    except ChangedMeanwhile:
        changed = await what_changed(fhir, plan_id, version)
        values.pop("version", None)  # the form takes the current version
        return await plan_page(
            request, fhir, user, plan_id, status_code=409, state=state, changed=changed
        )
    except Refused as refused:
        if refused.status == 404:
            raise
        state.errors = errors_of(refused)
        return await plan_page(
            request, fhir, user, plan_id, status_code=refused.status, state=state
        )
    return RedirectResponse(f"/me/plans/{plan_id}?done={operation}", status_code=303)


def form_values(form: FormData, *names: str) -> dict[str, Any]:
    values: dict[str, Any] = {n: str(form.get(n) or "").strip() for n in (*names, "version")}
    return values


@router.post("/plans/{plan_id}/record-need")
async def record_need(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    values = form_values(await request.form(), "text", "wishes")
    parameters = [text("text", values["text"])]
    if values["wishes"]:
        parameters.append(text("wishes", values["wishes"]))
    return await plan_operation(
        request, fhir, user, plan_id, "record-need", parameters, values, required(values, "text")
    )


@router.post("/plans/{plan_id}/set-goal")
async def set_goal(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    form = await request.form()
    values = form_values(form, "text", "targetDate")
    values["need"] = [str(n) for n in form.getlist("need") if str(n).strip()]
    parameters = [text("text", values["text"])]
    if values["targetDate"]:
        parameters.append({"name": "targetDate", "valueDate": values["targetDate"]})
    parameters += [text("need", need) for need in values["need"]]
    return await plan_operation(
        request, fhir, user, plan_id, "set-goal", parameters, values, required(values, "text")
    )


@router.post("/plans/{plan_id}/revise-goal")
async def revise_goal(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    values = form_values(await request.form(), "goal", "text", "targetDate", "reason")
    parameters = [
        text("goal", values["goal"]),
        text("text", values["text"]),
        text("reason", values["reason"]),
    ]
    if values["targetDate"]:
        parameters.append({"name": "targetDate", "valueDate": values["targetDate"]})
    missing = required(values, "goal", "text", "reason")
    return await plan_operation(
        request, fhir, user, plan_id, "revise-goal", parameters, values, missing
    )


@router.post("/plans/{plan_id}/approve-changes")
async def approve_changes(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    values = form_values(await request.form())
    parameters = [{"name": "approvedBy", "valueCode": "person"}]
    return await plan_operation(request, fhir, user, plan_id, "approve-changes", parameters, values)


@router.post("/plans/{plan_id}/reject-changes")
async def reject_changes(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    """Saying no to the proposed changes, where the SIP service offers `$reject-changes`."""
    values = form_values(await request.form(), "reason")
    parameters = [text("reason", values["reason"])] if values["reason"] else []
    return await plan_operation(request, fhir, user, plan_id, "reject-changes", parameters, values)


@router.get("/plans/{plan_id}/close")
async def close_page(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    return await close_confirmation(request, fhir, user, plan_id)


async def close_confirmation(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    plan_id: str,
    *,
    status_code: int = 200,
    state: FormState | None = None,
    changed: list[str] | None = None,
) -> Response:
    plan = await load_plan(fhir, plan_id)
    names = await organization_names(request, fhir, user)
    return render(
        request,
        "person_close.html",
        status_code=status_code,
        plan=plan,
        name=namer(names, plan),
        state=state or FormState(),
        changed=changed,
    )


@router.post("/plans/{plan_id}/close")
async def close_plan(request: Request, plan_id: str, user: Person, fhir: Fhir) -> Response:
    values = form_values(await request.form(), "note")
    parameters: list[dict[str, Any]] = [{"name": "reason", "valueCode": PERSON_WITHDREW}]
    if values["note"]:
        parameters.append(text("note", values["note"]))
    state = FormState("close", values)
    try:
        await fhir.operation(
            "sip", f"CarePlan/{plan_id}/$close", parameters, values["version"] or None
        )
    except ChangedMeanwhile:
        changed = await what_changed(fhir, plan_id, values.pop("version") or None)
        return await close_confirmation(
            request, fhir, user, plan_id, status_code=409, state=state, changed=changed
        )
    except Refused as refused:
        if refused.status == 404:
            raise
        state.errors = errors_of(refused)
        return await close_confirmation(
            request, fhir, user, plan_id, status_code=refused.status, state=state
        )
    return RedirectResponse("/me?done=close", status_code=303)


# -- my consents ----------------------------------------------------------------------------


@dataclass
class ConsentView:
    id: str
    version: str
    is_block: bool
    status: str
    organizations: list[str]
    recipients: list[str]
    sources: list[str]
    categories: list[str]
    excluded_organizations: list[str]
    excluded_categories: list[str]
    given_at: str | None
    start: str | None
    end: str | None
    form: str | None
    givers: list[str]
    recorded_by: str | None
    withdrawn_at: str | None
    withdrawal_reason: str | None

    def in_force(self, now: str) -> bool:
        if self.status != "active":
            return False
        if self.start and self.start > now:
            return False
        return not (self.end and self.end < now)

    def state(self, now: str) -> str:
        if self.status != "active":
            return person_texts.CONSENT_STATUS.get(self.status, self.status)
        if self.start and self.start > now:
            return "Gäller från " + local_date(self.start)
        if self.end and self.end < now:
            return "Har gått ut"
        return "Gäller"


def _hsa(reference: dict[str, Any]) -> str | None:
    return (reference.get("identifier") or {}).get("value")


def consent_view(resource: dict[str, Any]) -> ConsentView:
    provision = resource.get("provision") or {}
    recipients, sources = [], []
    for actor in provision.get("actor") or []:
        codes = {c.get("code") for c in (actor.get("role") or {}).get("coding", [])}
        hsa_id = _hsa(actor.get("reference") or {})
        if hsa_id and RECIPIENT_ROLE in codes:
            recipients.append(hsa_id)
        elif hsa_id and SOURCE_ROLE in codes:
            sources.append(hsa_id)
    excluded_organizations, excluded_categories = [], []
    for nested in provision.get("provision") or []:
        excluded_organizations += [
            h for h in (_hsa(a.get("reference") or {}) for a in nested.get("actor") or []) if h
        ]
        excluded_categories += [
            c.get("code")
            for concept in nested.get("code") or []
            for c in concept.get("coding", [])
            if c.get("system") == CONSENT_CATEGORY_SYSTEM
        ]
    withdrawal = extension(resource, EXT_CONSENT_WITHDRAWAL)
    recorded = next(
        (e for e in resource.get("extension", []) if e.get("url", "").endswith("/recorded-by")),
        None,
    )
    recorded_org = part(recorded, "organization")
    givers = []
    for performer in resource.get("performer") or []:
        role = next(
            (
                e.get("valueCode") or part(e, "role")
                for e in performer.get("extension", [])
                if e.get("url", "").endswith("/consent-giver-role")
            ),
            None,
        )
        givers.append(person_texts.GIVER_ROLE.get(role or "", role or "okänd"))
    period = provision.get("period") or {}
    return ConsentView(
        id=resource.get("id", ""),
        version=resource.get("meta", {}).get("versionId", ""),
        is_block=provision.get("type") == "deny",
        status=resource.get("status", ""),
        organizations=[h for h in (_hsa(o) for o in resource.get("organization") or []) if h],
        recipients=recipients,
        sources=sources,
        categories=[
            c.get("code")
            for concept in resource.get("category") or []
            for c in concept.get("coding", [])
            if c.get("system") == CONSENT_CATEGORY_SYSTEM
        ],
        excluded_organizations=excluded_organizations,
        excluded_categories=excluded_categories,
        given_at=resource.get("dateTime"),
        start=period.get("start"),
        end=period.get("end"),
        form=(extension(resource, EXT_CONSENT_FORM) or {}).get("valueCode"),
        givers=givers,
        recorded_by=(recorded_org or {}).get("value") if isinstance(recorded_org, dict) else None,
        withdrawn_at=part(withdrawal, "time"),
        withdrawal_reason=part(withdrawal, "reason"),
    )


async def my_consent_views(fhir: FhirClient, user: SignedInUser) -> list[ConsentView]:
    bundle = await fhir.search("consent", "Consent", {"patient:identifier": user.patient or ""})
    views = [
        consent_view(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "Consent"
    ]
    views.sort(key=lambda c: (c.status != "active", c.given_at or ""), reverse=False)
    return views


@router.get("/consents")
async def my_consents(
    request: Request, user: Person, fhir: Fhir, done: str | None = None
) -> Response:
    consents = await my_consent_views(fhir, user)
    names = await organization_names(request, fhir, user)
    return render(
        request,
        "person_consents.html",
        consents=[c for c in consents if not c.is_block],
        blocks=[c for c in consents if c.is_block],
        now=utc_now(),
        name=namer(names),
        categories=person_texts.CONSENT_CATEGORY,
        forms=person_texts.CONSENT_FORM,
        explained=person_texts.EXPLAINED,
        done=DONE.get(done or ""),
    )


def utc_now() -> str:
    """Now, in the form the services write instants (for comparing with them)."""
    return datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def one_consent(fhir: FhirClient, consent_id: str) -> ConsentView:
    return consent_view((await fhir.read("consent", f"Consent/{consent_id}")).body)


def withdrawal_meaning(consent: ConsentView, name: Any) -> list[str]:
    """What withdrawing this consent (or lifting this block) will mean, in plain words."""
    if consent.is_block:
        blocked = " och ".join(name(h) for h in consent.organizations)
        return [
            f"Det {blocked} har skrivit om dig i din plan kan då visas för de andra "
            "organisationerna i planen igen, om du har samtyckt till att de delar med "
            "varandra.",
        ]
    sentences = []
    organizations = consent.organizations or consent.recipients
    for organization in organizations:
        others = [name(o) for o in organizations if o != organization]
        if others:
            sentences.append(
                f"{name(organization)} kommer inte längre att se det som "
                f"{' och '.join(others)} har skrivit i din plan."
            )
    sentences += [
        "Det du själv har skrivit i planen ser alla som är med i planen även i fortsättningen.",
        "Planen finns kvar, men organisationerna kan inte längre se varandras delar av den. "
        "En plan som inte har börjat gälla kan inte starta förrän du samtycker igen.",
        "Har du gett flera samtycken gäller de andra som förut.",
        "Det går inte att ångra: vill du dela igen ger du ett nytt samtycke, till exempel "
        "genom din samordnare.",
    ]
    return sentences


@router.get("/consents/{consent_id}/withdraw")
async def withdraw_page(request: Request, consent_id: str, user: Person, fhir: Fhir) -> Response:
    return await withdraw_confirmation(request, fhir, user, consent_id)


async def consent_page(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    consent_id: str,
    template: str,
    meaning: Callable[[ConsentView, FormState, Any], list[str]],
    *,
    status_code: int = 200,
    state: FormState | None = None,
    **context: Any,
) -> Response:
    """A page about one of my consents before I change it: the consent, its organisations by
    name, what the change will mean (`meaning(consent, state, name)`) and the form."""
    consent = await one_consent(fhir, consent_id)
    name = namer(await organization_names(request, fhir, user))
    state = state or FormState()
    return render(
        request,
        template,
        status_code=status_code,
        consent=consent,
        name=name,
        state=state,
        meaning=meaning(consent, state, name),
        categories=person_texts.CONSENT_CATEGORY,
        **context,
    )


async def withdraw_confirmation(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    consent_id: str,
    *,
    status_code: int = 200,
    state: FormState | None = None,
    changed: bool = False,
) -> Response:
    return await consent_page(
        request,
        fhir,
        user,
        consent_id,
        "person_withdraw.html",
        lambda consent, _, name: withdrawal_meaning(consent, name),
        status_code=status_code,
        state=state,
        changed=changed,
    )


@router.post("/consents/{consent_id}/withdraw")
async def withdraw(request: Request, consent_id: str, user: Person, fhir: Fhir) -> Response:
    values = form_values(await request.form(), "reason")
    state = FormState("withdraw", values)
    reason = values["reason"] or "Jag vill inte längre (återkallat av mig på webben)"
    try:
        await fhir.operation(
            "consent",
            f"Consent/{consent_id}/$withdraw",
            [text("reason", reason)],
            values["version"] or None,
        )
    except ChangedMeanwhile:
        values.pop("version")
        return await withdraw_confirmation(
            request, fhir, user, consent_id, status_code=409, state=state, changed=True
        )
    except Refused as refused:
        if refused.status == 404:
            raise
        state.errors = errors_of(refused)
        return await withdraw_confirmation(
            request, fhir, user, consent_id, status_code=refused.status, state=state
        )
    return RedirectResponse("/me/consents?done=withdraw", status_code=303)


def block_meaning(consent: ConsentView, organization: str, until: str, name: Any) -> list[str]:
    others = [name(o) for o in consent.organizations if o != organization] or [
        "andra organisationer"
    ]
    sentences = [
        f"Det {name(organization)} har skrivit om dig i din plan visas inte längre för "
        f"{' och '.join(others)}, även om du har samtyckt till att de delar.",
        f"{name(organization)} ser fortfarande det den själv har skrivit, och alla ser det du "
        "själv har skrivit.",
        "I en nödsituation kan personal tillfälligt gå förbi spärren. Det sparas alltid i "
        "loggen, och du ser det under ”Vem har läst om mig”.",
    ]
    if until:
        sentences.append(f"Spärren gäller till och med {until}. Du kan häva den tidigare.")
    else:
        sentences.append("Spärren gäller tills du häver den.")
    return sentences


@router.get("/consents/{consent_id}/limit")
async def limit_page(request: Request, consent_id: str, user: Person, fhir: Fhir) -> Response:
    return await limit_form(request, fhir, user, consent_id)


async def limit_form(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    consent_id: str,
    *,
    status_code: int = 200,
    state: FormState | None = None,
    review: bool = False,
) -> Response:
    def meaning(consent: ConsentView, state: FormState, name: Any) -> list[str]:
        values = state.values
        return (
            block_meaning(consent, values.get("organization", ""), values.get("until", ""), name)
            if review
            else []
        )

    return await consent_page(
        request,
        fhir,
        user,
        consent_id,
        "person_limit.html",
        meaning,
        status_code=status_code,
        state=state,
        review=review,
        explained=person_texts.EXPLAINED,
    )


def block_resource(user: SignedInUser, organization: str, until: str) -> dict[str, Any]:
    """A block (*spärr*) the person registers: the organisation's information is not shown
    to others, until `until` (or until lifted)."""
    person = person_identifier(user.patient or "")
    provision: dict[str, Any] = {"type": "deny"}
    if until:
        provision["period"] = {"end": until}
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC_SYSTEM, "code": LOINC_PATIENT_CONSENT}]}],
        "patient": {"identifier": person},
        "performer": [{"identifier": person}],
        "organization": [{"identifier": {"system": HSA_ID_SYSTEM, "value": organization}}],
        "provision": provision,
    }


@router.post("/consents/{consent_id}/limit")
async def limit(request: Request, consent_id: str, user: Person, fhir: Fhir) -> Response:
    """First the choice is shown back with what it will mean; with `confirmed` it is done."""
    form = await request.form()
    values = form_values(form, "organization", "until")
    state = FormState("block", values)
    consent = await one_consent(fhir, consent_id)
    if values["organization"] not in consent.organizations:
        state.errors = {"organization": ["Välj vilken organisations uppgifter du vill spärra."]}
        return await limit_form(request, fhir, user, consent_id, status_code=422, state=state)
    if values["until"] and values["until"] <= swedish_today().isoformat():
        state.errors = {"until": ["Datumet måste vara efter i dag."]}
        return await limit_form(request, fhir, user, consent_id, status_code=422, state=state)
    if form.get("confirmed") != "yes":
        return await limit_form(request, fhir, user, consent_id, state=state, review=True)
    try:
        await fhir.create("consent", block_resource(user, values["organization"], values["until"]))
    except Refused as refused:
        state.errors = errors_of(refused)
        return await limit_form(
            request, fhir, user, consent_id, status_code=refused.status, state=state
        )
    return RedirectResponse("/me/consents?done=block", status_code=303)


# -- my log extract -------------------------------------------------------------------------


@router.get("/access-log")
async def access_log(request: Request, user: Person, fhir: Fhir) -> Response:
    """Who read or changed what about me, when, from which organisation: both services'
    records (the SIP service merges in the consent service's). The personnummer is in the
    path of this server-to-server call only; the browser's URL stays /me/access-log."""
    extract = (await fhir.read("sip", f"Patient/{user.patient}/$access-log")).body
    names = await organization_names(request, fhir, user)
    entries = [
        {
            "time": local(entry.get("time")),
            "who": person_texts.who_in_log(entry, names),
            "unit": names.get(entry.get("unit") or "") or entry.get("unit"),
            "role": person_texts.role_in_log(entry),
            "what": person_texts.log_line_in_swedish(entry.get("what") or ""),
            "where": person_texts.SERVICE.get(entry.get("service") or "", entry.get("service")),
        }
        for entry in reversed(extract_entries(extract))
    ]
    return render(
        request,
        "person_access_log.html",
        entries=entries,
        generated=local(first_value(extract, "generated")),
    )


def first_value(parameters: dict[str, Any], name: str) -> Any:
    return next(
        (
            value
            for p in parameters.get("parameter", [])
            if p.get("name") == name
            for key, value in p.items()
            if key.startswith("value")
        ),
        None,
    )


def extract_entries(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The log extract's entries (the SIP service's `Parameters`), each as its parts by
    name, an organisation or unit as its HSA-id."""
    entries = []
    for entry in (p for p in parameters.get("parameter", []) if p.get("name") == "entry"):
        values = {}
        for piece in entry.get("part", []):
            value = next((v for k, v in piece.items() if k.startswith("value")), None)
            values[piece.get("name")] = value.get("value") if isinstance(value, dict) else value
        entries.append(values)
    return entries
