"""R4 Consent in and out of the consent aggregate, after IHE Privacy Consent on FHIR.

- `provision.type`: `permit` is a consent; `deny` at the top level is a block (*spärr*) of the
  information of the organisations in `organization`.
- `organization`: the organisations the consent covers both ways; `provision.actor` with role
  IRCP (recipient) or CST (custodian, whose information it is) narrows a direction.
- `provision.provision` with `type` deny: what the person explicitly excludes (`actor`
  organisations and/or `code` categories).
- `category`: LOINC 59284-0 plus the covered categories from our code system.
- `performer`: who gave it, each with the `consent-giver-role` extension (person, child,
  guardian, god-man, forvaltare, representative; `mature`/`soleCustody` flags).
- `consent-form` extension: written, oral or digital.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.consent import Consent as FhirConsent

from contracts.actor import Actor
from contracts.canonical import (
    CANONICAL_BASE,
    CONSENT_CATEGORIES,
    CONSENT_CATEGORY_SYSTEM,
    CONSENT_FORMS,
    CONSENT_GIVER_ROLES,
    CONSENT_SCOPE_SYSTEM,
    CONSENT_SCOPES,
    EXT_BLOCK_OVERRIDE,
    EXT_CONSENT_FORM,
    EXT_CONSENT_GIVER_ROLE,
    EXT_CONSENT_WITHDRAWAL,
    EXT_ENTERED_IN_ERROR,
    LOINC_PATIENT_CONSENT,
    LOINC_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    RECIPIENT_ROLE,
    SOURCE_ROLE,
)
from contracts.identifiers import (
    HSA_ID_SYSTEM,
    PERSON_ID_SYSTEMS,
    InvalidIdentifier,
    PersonIdentifier,
    parse_hsa_id,
    parse_person_identifier,
)
from services.common.fhir_api import parse_resource, unprocessable
from services.common.fhir_extensions import recorded_by_extension
from services.common.fhir_time import InvalidDateTime, fhir_instant, parse_fhir_datetime
from services.consent.domain import Consent

# Who judged a child mature enough to consent alone, when and on what basis (on the performer).
EXT_MATURITY_JUDGEMENT = f"{CANONICAL_BASE}/StructureDefinition/consent-maturity-judgement"


def consent_given_from_fhir(body: dict[str, Any], actor: Actor, now: datetime) -> dict[str, Any]:
    """The arguments of a Consent.Given event, from a posted R4 Consent."""
    parse_resource(FhirConsent, body)
    if body.get("status") != "active":
        raise unprocessable(
            "a consent is recorded as given: status must be 'active'", "consent-status-active"
        )
    scope = _codes(body.get("scope"), CONSENT_SCOPE_SYSTEM) & CONSENT_SCOPES
    if len(scope) != 1:
        raise unprocessable(
            f"scope needs one code from {CONSENT_SCOPE_SYSTEM}", "consent-scope-required"
        )
    provision = body.get("provision") or {}
    kind = "block" if provision.get("type") == "deny" else "permit"
    categories = sorted(
        set().union(*(_codes(c, CONSENT_CATEGORY_SYSTEM) for c in body["category"]))
    )
    _known_categories(categories, allow_none=kind == "block")
    patient = _patient(body)
    performer, givers = _givers(body.get("performer") or [], patient.value, actor, now)
    form = _extension(body, EXT_CONSENT_FORM, "valueCode") or (
        "digital" if actor.role == "patient" else "written"
    )
    if form not in CONSENT_FORMS:
        raise unprocessable(
            f"the consent's form is one of {', '.join(CONSENT_FORMS)}", "consent-form"
        )
    if actor.role == "patient" and form != "digital":
        raise unprocessable(
            "the consent's form: given by the person with their own token, it is 'digital'",
            "consent-form",
        )
    organizations = [
        _hsa_id(reference, f"organization[{index}]")
        for index, reference in enumerate(body.get("organization") or [])
    ]
    if not organizations:
        raise unprocessable(
            "organization (the organisations the consent covers) is required",
            "consent-organization-hsa-id",
        )
    recipients, sources = _recipients_and_sources(provision)
    exclusions = [
        _exclusion(nested, index) for index, nested in enumerate(provision.get("provision") or [])
    ]
    period_start, period_end, given_at = _times(body, now)
    return {
        "patient": {"system": patient.system, "value": patient.value},
        "kind": kind,
        "scope": scope.pop(),
        "categories": categories,
        "performer": performer,
        "givers": givers,
        "form": form,
        "organizations": list(dict.fromkeys(organizations)),
        "recipients": recipients,
        "sources": sources,
        "exclusions": exclusions,
        "period_start": period_start,
        "period_end": period_end,
        "given_at": given_at,
        "recorded_by": actor.as_event_data(),
    }


def _patient(body: dict[str, Any]) -> PersonIdentifier:
    identifier = (body.get("patient") or {}).get("identifier") or {}
    try:
        return parse_person_identifier(identifier.get("system"), identifier.get("value"))
    except InvalidIdentifier as error:
        raise unprocessable(f"patient.identifier: {error}", "valid-person-identifier") from None


def _recipients_and_sources(provision: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The organisations receiving the information, and those whose information it is."""
    recipients, sources = [], []
    for index, actor_entry in enumerate(provision.get("actor") or []):
        role = _codes(actor_entry.get("role"), PARTICIPATION_TYPE_SYSTEM)
        hsa_id = _hsa_id(actor_entry.get("reference") or {}, f"provision.actor[{index}]")
        if RECIPIENT_ROLE in role:
            recipients.append(hsa_id)
        elif SOURCE_ROLE in role:
            sources.append(hsa_id)
        else:
            raise unprocessable(
                f"provision.actor[{index}].role is {RECIPIENT_ROLE} (recipient) "
                f"or {SOURCE_ROLE} (whose information)",
                "consent-actor-role",
            )
    return recipients, sources


def _times(
    body: dict[str, Any], now: datetime
) -> tuple[datetime | None, datetime | None, datetime]:
    """The provision's period (start, end) and when the consent was given."""
    period = (body.get("provision") or {}).get("period") or {}
    try:
        period_start = parse_fhir_datetime(period["start"]) if period.get("start") else None
        period_end = (
            parse_fhir_datetime(period["end"], end_of_period=True) if period.get("end") else None
        )
        given_at = parse_fhir_datetime(body["dateTime"]) if body.get("dateTime") else now
    except InvalidDateTime as error:
        raise unprocessable(str(error), "valid-datetime") from None
    if period_start and period_end and period_end < period_start:
        raise unprocessable("provision.period ends before it starts", "consent-period-order")
    return period_start, period_end, given_at


def _known_categories(categories: list[str], allow_none: bool = False) -> None:
    unknown = [code for code in categories if code not in CONSENT_CATEGORIES]
    if unknown or (not categories and not allow_none):
        raise unprocessable(
            f"category needs codes from {CONSENT_CATEGORY_SYSTEM} ("
            + ", ".join(CONSENT_CATEGORIES)
            + ")"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            "consent-category-required",
        )


def _givers(
    performer: list[dict[str, Any]], patient: str, actor: Actor, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not performer:
        raise unprocessable("performer (who gave the consent) is required", "consent-performer")
    givers = []
    for index, reference in enumerate(performer):
        identifier = reference.get("identifier") or {}
        if identifier.get("system") in PERSON_ID_SYSTEMS:
            try:
                parse_person_identifier(identifier.get("system"), identifier.get("value"))
            except InvalidIdentifier as error:
                raise unprocessable(
                    f"performer[{index}].identifier: {error}", "valid-person-identifier"
                ) from None
        elif not identifier and not reference.get("display"):
            raise unprocessable(
                f"performer[{index}] needs an identifier or a display name", "consent-performer"
            )
        role_extension = next(
            (e for e in reference.get("extension") or [] if e.get("url") == EXT_CONSENT_GIVER_ROLE),
            None,
        )
        # Either a plain valueCode, or parts: role (code), mature and soleCustody (booleans).
        parts = {
            part.get("url"): part.get("valueCode", part.get("valueBoolean"))
            for part in (role_extension or {}).get("extension") or []
        }
        role = (role_extension or {}).get("valueCode") or parts.get("role")
        flags = {name: parts.get(name) for name in ("mature", "soleCustody")}
        if role is None:
            role = "person" if identifier.get("value") == patient else None
        if role not in CONSENT_GIVER_ROLES:
            raise unprocessable(
                f"performer[{index}] needs the extension {EXT_CONSENT_GIVER_ROLE}: "
                + " | ".join(CONSENT_GIVER_ROLES),
                "consent-giver-role",
            )
        if actor.role == "patient" and role == "person" and identifier.get("value") != patient:
            raise unprocessable("the person giving consent is the patient", "consent-giver-role")
        judgement = _maturity_judgement(reference, index, actor, now)
        givers.append(
            {
                "role": role,
                "identifier": identifier or None,
                "display": reference.get("display"),
                "mature": judgement is not None,
                "sole_custody": bool(flags.get("soleCustody")),
                **({"maturity": judgement} if judgement else {}),
            }
        )
    _child_alone_judged(givers)
    return performer, givers


def _child_alone_judged(givers: list[dict[str, Any]]) -> None:
    """A child consenting without the guardians needs a recorded maturity judgement."""
    if any(giver["role"] == "guardian" for giver in givers):
        return
    for index, giver in enumerate(givers):
        if giver["role"] == "child" and "maturity" not in giver:
            raise unprocessable(
                f"performer[{index}].extension({EXT_MATURITY_JUDGEMENT}): a child's own consent "
                "needs a recorded judgement that the child is mature enough (assessor, date, "
                "basis); otherwise the guardians consent",
                "consent-maturity-judgement",
            )


def _maturity_judgement(
    reference: dict[str, Any], index: int, actor: Actor, now: datetime
) -> dict[str, Any] | None:
    """Who judged the child mature enough to consent, when, and on what basis."""
    extension = next(
        (e for e in reference.get("extension") or [] if e.get("url") == EXT_MATURITY_JUDGEMENT),
        None,
    )
    if extension is None:
        return None
    where = f"performer[{index}].extension({EXT_MATURITY_JUDGEMENT})"
    if actor.role == "patient":
        raise unprocessable(
            f"{where}: a maturity judgement is recorded by the staff who made it",
            "consent-maturity-judgement",
        )
    parts = {part.get("url"): part for part in extension.get("extension") or []}
    assessor = (parts.get("assessor") or {}).get("valueReference") or {}
    by = assessor.get("display") or (assessor.get("identifier") or {}).get("value")
    basis = (parts.get("basis") or {}).get("valueString")
    try:
        at = parse_fhir_datetime((parts.get("date") or {}).get("valueDateTime") or "")
    except InvalidDateTime:
        at = None
    for name, value in (("assessor", by), ("date", at), ("basis", basis)):
        if not value or (isinstance(value, str) and not value.strip()):
            raise unprocessable(
                f"{where}.{name} is required: who judged, when (valueDateTime), on what basis",
                "consent-maturity-judgement",
            )
    if at > now:  # type: ignore[operator]
        raise unprocessable(f"{where}.date is in the future", "consent-maturity-judgement")
    return {"by": by, "by_identifier": assessor.get("identifier"), "at": at, "basis": basis}


def _exclusion(nested: dict[str, Any], index: int) -> dict[str, Any]:
    if nested.get("type") != "deny":
        raise unprocessable(
            f"provision.provision[{index}] is an exclusion: type 'deny'", "consent-exclusion"
        )
    organizations = [
        _hsa_id(a.get("reference") or {}, f"provision.provision[{index}].actor")
        for a in nested.get("actor") or []
    ]
    categories = sorted(
        set().union(*(_codes(c, CONSENT_CATEGORY_SYSTEM) for c in nested.get("code") or []))
    )
    _known_categories(categories, allow_none=True)
    if not organizations and not categories:
        raise unprocessable(
            f"provision.provision[{index}] names organisations or categories", "consent-exclusion"
        )
    return {"organizations": organizations, "categories": categories}


def _hsa_id(reference: dict[str, Any], where: str) -> str:
    identifier = reference.get("identifier") or {}
    if identifier.get("system") != HSA_ID_SYSTEM:
        raise unprocessable(
            f"{where} needs an identifier with system {HSA_ID_SYSTEM}",
            "consent-organization-hsa-id",
        )
    try:
        return parse_hsa_id(identifier.get("value"))
    except InvalidIdentifier as error:
        raise unprocessable(f"{where}.identifier: {error}", "consent-organization-hsa-id") from None


def _organization(hsa_id: str) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id}}


def _category(code: str) -> dict[str, Any]:
    return {
        "coding": [
            {"system": CONSENT_CATEGORY_SYSTEM, "code": code, "display": CONSENT_CATEGORIES[code]}
        ]
    }


def consent_to_fhir(consent: Consent) -> dict[str, Any]:
    resource = _consent_resource(consent)
    if getattr(consent, "identifiers", None):  # the recording system's names for it
        resource["identifier"] = [dict(identifier) for identifier in consent.identifiers]
    return resource


def _consent_resource(consent: Consent) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": str(consent.id),
        "meta": {
            "versionId": str(consent.version),
            "lastUpdated": fhir_instant(consent.modified_on),
        },
        "extension": _consent_extensions(consent),
        "status": consent.status,
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": consent.scope}]},
        "category": [
            {"coding": [{"system": LOINC_SYSTEM, "code": LOINC_PATIENT_CONSENT}]},
            *(_category(code) for code in consent.categories),
        ],
        "patient": {"identifier": dict(consent.patient)},
        "dateTime": fhir_instant(consent.given_at),
        "performer": [
            _performer(reference, giver)
            for reference, giver in zip(consent.performer, consent.givers, strict=False)
        ],
        "organization": [_organization(hsa_id) for hsa_id in consent.organizations],
        "provision": _provision(consent),
    }


def _provision(consent: Consent) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny" if consent.kind == "block" else "permit"}
    actors = [(RECIPIENT_ROLE, h) for h in consent.recipients]
    actors += [(SOURCE_ROLE, h) for h in consent.sources]
    if actors:
        provision["actor"] = [_provision_actor(role, hsa_id) for role, hsa_id in actors]
    if consent.exclusions:
        provision["provision"] = [_exclusion_provision(e) for e in consent.exclusions]
    period = {}
    if consent.period_start:
        period["start"] = fhir_instant(consent.period_start)
    if consent.period_end:
        period["end"] = fhir_instant(consent.period_end)
    if period:
        provision["period"] = period
    return provision


def _provision_actor(role: str, hsa_id: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": role}]},
        "reference": _organization(hsa_id),
    }


def _exclusion_provision(exclusion: dict[str, Any]) -> dict[str, Any]:
    """A nested deny provision: organisations that do not receive, categories left out."""
    provision: dict[str, Any] = {"type": "deny"}
    if exclusion["organizations"]:
        provision["actor"] = [
            _provision_actor(RECIPIENT_ROLE, hsa_id) for hsa_id in exclusion["organizations"]
        ]
    if exclusion["categories"]:
        provision["code"] = [_category(code) for code in exclusion["categories"]]
    return provision


def _consent_extensions(consent: Consent) -> list[dict[str, Any]]:
    extensions = [
        recorded_by_extension(consent.recorded_by),
        {"url": EXT_CONSENT_FORM, "valueCode": consent.form},
    ]
    for ended, url in (
        (consent.withdrawal, EXT_CONSENT_WITHDRAWAL),
        (consent.entered_in_error, EXT_ENTERED_IN_ERROR),
    ):
        if ended:
            extensions.append(
                {
                    "url": url,
                    "extension": [
                        {"url": "reason", "valueString": ended["reason"]},
                        {"url": "time", "valueDateTime": fhir_instant(ended["at"])},
                        recorded_by_extension(ended["by"], url="by"),
                    ],
                }
            )
    for override in consent.overrides:
        extensions.append(
            {
                "url": EXT_BLOCK_OVERRIDE,
                "extension": [
                    {
                        "url": "organization",
                        "valueReference": _organization(override["organization"]),
                    },
                    {"url": "reason", "valueString": override["reason"]},
                    {"url": "until", "valueDateTime": fhir_instant(override["until"])},
                    recorded_by_extension(override["by"], url="by"),
                ],
            }
        )
    return extensions


def _performer(reference: dict[str, Any], giver: dict[str, Any]) -> dict[str, Any]:
    flags = [
        {"url": name, "valueBoolean": True}
        for name, key in (("mature", "mature"), ("soleCustody", "sole_custody"))
        if giver.get(key)
    ]
    role: dict[str, Any] = {"url": EXT_CONSENT_GIVER_ROLE, "valueCode": giver["role"]}
    if flags:  # an extension has a value or parts, not both
        role = {
            "url": EXT_CONSENT_GIVER_ROLE,
            "extension": [{"url": "role", "valueCode": giver["role"]}, *flags],
        }
    others = [
        e
        for e in reference.get("extension") or []
        if e.get("url") not in (EXT_CONSENT_GIVER_ROLE, EXT_MATURITY_JUDGEMENT)
    ]
    judged = [_maturity_extension(giver["maturity"])] if giver.get("maturity") else []
    return {**reference, "extension": [*others, role, *judged]}


def _maturity_extension(judgement: dict[str, Any]) -> dict[str, Any]:
    assessor: dict[str, Any] = {"display": judgement["by"]}
    if judgement.get("by_identifier"):
        assessor["identifier"] = judgement["by_identifier"]
    return {
        "url": EXT_MATURITY_JUDGEMENT,
        "extension": [
            {"url": "assessor", "valueReference": assessor},
            {"url": "date", "valueDateTime": fhir_instant(judgement["at"])},
            {"url": "basis", "valueString": judgement["basis"]},
        ],
    }


def _extension(element: dict[str, Any], url: str, value: str) -> Any:
    for extension in element.get("extension") or []:
        if extension.get("url") == url:
            return extension.get(value)
    return None


def _codes(concept: Any, system: str) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        coding.get("code")
        for coding in concept.get("coding") or []
        if coding.get("system") == system and coding.get("code")
    }
