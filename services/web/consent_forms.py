"""The consent form of the start sequence: what staff type when they register the person's
consent (or a guardian's, a representative's, or a child's judged mature enough), checked for
what the page can tell by itself, and the R4 Consent posted to the consent service
(docs/fhir-extensions.md: `consent-giver-role`, `consent-form`, the maturity judgement).
What the consent service refuses comes back beside the field it concerns."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from contracts.canonical import (
    CANONICAL_BASE,
    CONSENT_CATEGORY_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    EXT_CONSENT_FORM,
    EXT_CONSENT_GIVER_ROLE,
    LOINC_PATIENT_CONSENT,
    LOINC_SYSTEM,
)
from contracts.identifiers import HSA_ID_SYSTEM, InvalidIdentifier, parse_hsa_id
from services.web.fhir_client import Issue
from services.web.form_errors import FormErrors
from services.web.person_numbers import check_person_number, shown
from services.web.texts import CONSENT_GIVER_ROLE

# Who judged a child mature enough to consent alone, when and on what basis (on the performer).
EXT_MATURITY_JUDGEMENT = f"{CANONICAL_BASE}/StructureDefinition/consent-maturity-judgement"
# What a SIP consent covers: drawing up the plan, and the plan's own content.
CATEGORIES = ("sip", "sip-plan")
STAFF_FORMS = ("written", "oral")  # `digital` is the person's own, with their own token
REPRESENTATIVES = ("god-man", "forvaltare", "representative")
CONSENT_FIELDS = (
    "giver_role",
    "giver_identifier",
    "giver_name",
    "guardian2_identifier",
    "guardian2_name",
    "sole_custody",
    "assessor",
    "judged_on",
    "basis",
    "maturity",
    "form",
    "organizations",
    "region",
    "municipality",
    "other_organization",
    "period_start",
    "period_end",
)
HSA_EXAMPLE = "Ett HSA-id skrivs som SE2321000016-7P31."


def consent_values(defaults: dict[str, str], form: Any) -> dict[str, str]:
    """The form as posted, over the defaults: what the page shows again if it is refused."""
    values = dict(defaults)
    for name in CONSENT_FIELDS:
        if name in form:
            values[name] = str(form.get(name, "")).strip()
    values["basis"] = str(form.get("basis", "")).strip()
    values["sole_custody"] = "on" if form.get("sole_custody") else ""
    return values


def _date(values: dict[str, str], name: str, errors: FormErrors, label: str) -> str | None:
    text = values.get(name, "")
    if not text:
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        errors.add(name, f"{label} kunde inte läsas. Skriv datumet som ÅÅÅÅ-MM-DD.")
        return None
    return text


def _giver_role_extension(role: str, sole_custody: bool = False) -> dict[str, Any]:
    if sole_custody:
        return {
            "url": EXT_CONSENT_GIVER_ROLE,
            "extension": [
                {"url": "role", "valueCode": role},
                {"url": "soleCustody", "valueBoolean": True},
            ],
        }
    return {"url": EXT_CONSENT_GIVER_ROLE, "valueCode": role}


def _giver(
    values: dict[str, str],
    prefix: str,
    role: str,
    errors: FormErrors,
    required: bool = True,
    sole_custody: bool = False,
) -> dict[str, Any] | None:
    """A giver other than the person: their personnummer and name as typed."""
    typed = values.get(f"{prefix}_identifier", "")
    name = " ".join(values.get(f"{prefix}_name", "").split())
    if not required and not typed and not name:
        return None
    checked = check_person_number(typed, required=False)
    if checked.problem:
        errors.add(f"{prefix}_identifier", checked.problem)
    if not typed and not name:
        errors.add(f"{prefix}_name", "Ange namnet (och helst personnumret) på den som samtycker.")
    if checked.identifier:
        values[f"{prefix}_identifier"] = shown(checked.identifier)
    performer: dict[str, Any] = {"extension": [_giver_role_extension(role, sole_custody)]}
    if checked.identifier:
        performer["identifier"] = checked.identifier.as_fhir()
    if name:
        performer["display"] = name
    return performer


def _organization(values: dict[str, str], name: str, errors: FormErrors, required: bool) -> str:
    value = values.get(name, "").strip()
    if not value:
        if required:
            label = {"region": "regionens", "municipality": "kommunens"}.get(name, "")
            errors.add(name, f"Ange {label} HSA-id. {HSA_EXAMPLE}")
        return ""
    try:
        return parse_hsa_id(value)
    except InvalidIdentifier:
        errors.add(name, f"Det här är inget HSA-id. {HSA_EXAMPLE}")
        return ""


def consent_resource(
    values: dict[str, str], subject: dict[str, Any], on: date
) -> tuple[dict[str, Any], FormErrors]:
    """The R4 Consent for the consent service, and what the page itself finds wrong first
    (what it cannot tell, e.g. a child's maturity judgement or a period ending before it
    starts, the consent service answers for)."""
    errors = FormErrors()
    role = values.get("giver_role", "")
    performers: list[dict[str, Any]] = []
    if role not in CONSENT_GIVER_ROLE:
        errors.add("giver_role", "Välj vem som lämnar samtycket.")
    elif role == "person":
        performers.append(
            {"identifier": dict(subject), "extension": [_giver_role_extension("person")]}
        )
    elif role == "child":
        child: dict[str, Any] = {
            "identifier": dict(subject),
            "extension": [_giver_role_extension("child")],
        }
        judgement = _maturity(values, errors, on)
        if judgement:
            child["extension"].append(judgement)
        performers.append(child)
    elif role == "guardian":
        sole = bool(values.get("sole_custody"))
        first = _giver(values, "giver", "guardian", errors, sole_custody=sole)
        second = _giver(values, "guardian2", "guardian", errors, required=False)
        performers += [p for p in (first, second) if p]
    else:
        performer = _giver(values, "giver", role, errors)
        if performer:
            performers.append(performer)
    form = values.get("form", "")
    if form not in STAFF_FORMS:
        errors.add("form", "Välj hur samtycket lämnades: skriftligt eller muntligt.")
    organizations = [
        _organization(values, "region", errors, required=True),
        _organization(values, "municipality", errors, required=True),
        _organization(values, "other_organization", errors, required=False),
    ]
    start = _date(values, "period_start", errors, "Startdatumet")
    if not values.get("period_start"):
        errors.add("period_start", "Ange från vilket datum samtycket gäller.")
    end = _date(values, "period_end", errors, "Slutdatumet")
    period = {"start": start} if start else {}
    if end:
        period["end"] = end
    resource = {
        "resourceType": "Consent",
        "status": "active",
        "extension": [{"url": EXT_CONSENT_FORM, "valueCode": form}],
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC_SYSTEM, "code": LOINC_PATIENT_CONSENT}]},
            *({"coding": [{"system": CONSENT_CATEGORY_SYSTEM, "code": c}]} for c in CATEGORIES),
        ],
        "patient": {"identifier": dict(subject)},
        "performer": performers,
        "organization": [
            {"identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id}}
            for hsa_id in dict.fromkeys(o for o in organizations if o)
        ],
        "provision": {"type": "permit", "period": period},
    }
    return resource, errors


def _maturity(values: dict[str, str], errors: FormErrors, on: date) -> dict[str, Any] | None:
    """The judgement that the child is mature enough, as typed: left out when nothing is
    typed, so the consent service says what a child's own consent needs."""
    assessor = " ".join(values.get("assessor", "").split())
    basis = values.get("basis", "").strip()
    judged_on = _date(values, "judged_on", errors, "Datumet för bedömningen")
    if not (assessor or basis or judged_on):
        return None
    parts: list[dict[str, Any]] = []
    if assessor:
        parts.append({"url": "assessor", "valueReference": {"display": assessor}})
    if judged_on:
        parts.append({"url": "date", "valueDateTime": judged_on})
    if basis:
        parts.append({"url": "basis", "valueString": basis})
    return {"url": EXT_MATURITY_JUDGEMENT, "extension": parts}


_PERFORMER = re.compile(r"performer\[(\d+)\]")
_ORGANIZATION = re.compile(r"organization\[(\d+)\]")


def field_of_consent_issue(issue: Issue) -> str | None:
    """Which field of the form a refusal of the consent service is about."""
    rule, message = issue.rule or "", issue.message
    if rule == "consent-period-order":
        return "period_end"
    if rule == "valid-datetime":
        return "period_end" if "end" in message else "period_start"
    if rule == "consent-maturity-judgement":
        for part, name in ((".assessor", "assessor"), (".date", "judged_on"), (".basis", "basis")):
            if f"){part}" in message:
                return name
        return "maturity"
    if rule in ("consent-giver-role", "consent-performer", "valid-person-identifier"):
        if message.startswith("patient"):
            return None
        found = _PERFORMER.search(message)
        if found and found.group(1) == "1":
            return "guardian2_identifier"
        return "giver_identifier" if rule == "valid-person-identifier" else "giver_role"
    if rule == "consent-organization-hsa-id":
        found = _ORGANIZATION.search(message)
        names = ("region", "municipality", "other_organization")
        if found and int(found.group(1)) < len(names):
            return names[int(found.group(1))]
        return "organizations"
    if rule == "consent-form":
        return "form"
    return None


def sentence_of_consent_issue(issue: Issue) -> str | None:
    """A plainer sentence than the rule's where the refusal says more exactly what is wrong."""
    if issue.rule == "consent-maturity-judgement" and "in the future" in issue.message:
        return "Bedömningen kan inte vara gjord ett datum framåt i tiden."
    if issue.rule == "valid-person-identifier" and issue.message.startswith("performer"):
        return (
            "Personnumret för den som samtycker är inte giltigt: kontrollera födelsedatumet "
            "och kontrollsiffran."
        )
    return None
