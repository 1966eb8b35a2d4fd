"""The forms of a stay's page: one per step of the stay the SIP service has an Encounter
operation for, offered to the unit whose step it is now (the API decides whether it may: a
refusal is shown beside the field it concerns). They are the plan page's forms (`FormSpec`,
`parameters_of`, `refusal_errors`, the same partial), posting to /stays/<id>/<operation>."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from contracts.identifiers import HSA_ID_SYSTEM
from services.web import texts
from services.web.person_numbers import FORMAT, check_person_number
from services.web.plan_forms import (
    FORM_ERROR,
    HSA_HINT,
    STAFF,
    Field,
    FieldView,
    FormSpec,
    FormView,
    Posted,
    first_posted,
)
from services.web.session import SignedInUser
from services.web.stay_view import StayView
from services.web.submissions import new_submission

JUDGEMENT = Field(
    "judgement",
    "Sekretessprövning, om personen inte har samtyckt",
    "textarea",
    "valueString",
    hint="Din bedömning att sekretess inte hindrar att uppgiften lämnas till de andra "
    "enheterna. Lämna tomt om personen har samtyckt.",
)


def _hsa_id(value: str) -> dict[str, Any]:
    return {"valueIdentifier": {"system": HSA_ID_SYSTEM, "value": value}}


def recipients_of(posted: Posted) -> list[dict[str, Any]]:
    """The admission notice's recipients, one per kind of unit whose organisation and unit
    the user gave (`recipient-<kind>-organization`, `recipient-<kind>-unit`)."""
    recipients = []
    for kind, label in texts.RECIPIENT_KIND.items():
        organization = first_posted(posted, f"recipient-{kind}-organization").strip()
        unit = first_posted(posted, f"recipient-{kind}-unit").strip()
        if not organization and not unit:
            continue
        if not (organization and unit):
            raise ValueError(f"Ange både organisation och enhet inom {label.lower()}.")
        parts = [
            {"name": "organization", **_hsa_id(organization)},
            {"name": "unit", **_hsa_id(unit)},
            {"name": "kind", "valueCode": kind},
        ]
        recipients.append({"name": "recipient", "part": parts})
    return recipients


def patient_of(posted: Posted) -> list[dict[str, Any]]:
    """The personnummer checked here, so a mistyped one is said in Swedish beside the field
    (the API checks it again)."""
    typed = first_posted(posted, "patient").strip()
    if not typed:
        return []
    checked = check_person_number(typed)
    if checked.identifier is None:
        raise ValueError(checked.problem)
    identifier = {"system": checked.identifier.system, "value": checked.identifier.value}
    return [{"name": "patient", "valueIdentifier": identifier}]


def _unreceived(stay: StayView, user: SignedInUser) -> bool:
    recipient = stay.recipient(user.unit)
    return recipient is not None and not recipient.received


def _primary_care(stay: StayView, user: SignedInUser) -> bool:
    recipient = stay.recipient(user.unit)
    return recipient is not None and recipient.kind == "primary-care" and not stay.care_contact


def _ward(stay: StayView, user: SignedInUser) -> bool:
    return bool(user.unit) and user.unit == stay.ward and not stay.discharged_already


def _region_records_unavailable(stay: StayView, user: SignedInUser) -> bool:
    """The ward, or the primary care the notice went to, while it is not recorded yet."""
    recipient = stay.recipient(user.unit)
    primary_care = recipient is not None and recipient.kind == "primary-care"
    return (
        (_ward(stay, user) or primary_care)
        and not stay.discharged_already
        and not stay.outpatient_unavailable
    )


def _open(offered: Callable[[StayView, SignedInUser], bool]) -> Callable[..., bool]:
    return lambda stay, user: not stay.discharged_already and bool(offered(stay, user))


def _spec(
    operation: str,
    legend: str,
    fields: tuple[Field, ...],
    submit: str,
    done: str,
    offered: Callable[[StayView, SignedInUser], bool],
    danger: bool = False,
    rule_fields: Mapping[str, str] | None = None,
    element_fields: Mapping[str, str] | None = None,
) -> FormSpec:
    return FormSpec(
        operation, legend, "stay", STAFF, fields, submit, done,
        rule_fields={"disclosure-requires-consent-or-judgement": "judgement",
                     **(rule_fields or {})},
        offered=offered,  # type: ignore[arg-type]  # a stay's, not a plan's
        danger=danger, element_fields=element_fields or {},
    )  # fmt: skip


STAY_FORMS: dict[str, FormSpec] = {
    spec.operation: spec
    for spec in (
        _spec(
            "send-admission-notice", "Skicka inskrivningsmeddelande",
            (
                Field("recipient", "Enheter som meddelandet går till", "recipients", "part",
                      True, hint="HSA-id för organisationen och enheten inom varje "
                      "verksamhet som berörs; lämna tomt för dem som inte berörs. " + HSA_HINT,
                      read=recipients_of),
                Field("estimatedDischarge", "Beräknad utskrivning", "datetime-local",
                      "valueDateTime", True),
                JUDGEMENT,
            ),
            "Skicka inskrivningsmeddelandet", "Inskrivningsmeddelandet är skickat.",
            lambda stay, user: _ward(stay, user) and bool(stay.care_needed)
            and not stay.notice_sent,
            rule_fields={"notice-to-units-concerned": "recipient"},
            element_fields={"recipients": "recipient", "organization": "recipient",
                            "unit": "recipient", "kind": "recipient",
                            "estimated_discharge": "estimatedDischarge"},
        ),
        _spec(
            "confirm-receipt", "Bekräfta mottaget inskrivningsmeddelande", (),
            "Bekräfta mottagandet", "Mottagandet är bekräftat.",
            _open(_unreceived),
        ),
        _spec(
            "name-care-contact", "Utse fast vårdkontakt",
            (
                Field("name", "Fast vårdkontakt (namn och befattning)", "text", "valueString",
                      True),
                Field("alreadyExisted", "Personen hade redan denna fasta vårdkontakt",
                      "checkbox", "valueBoolean"),
                JUDGEMENT,
            ),
            "Utse fast vårdkontakt", "Fast vårdkontakt är utsedd.",
            _open(_primary_care),
        ),
        _spec(
            "judge-care-needed", "Bedöm behov av insatser efter utskrivning",
            (
                Field("principal", "Behov av insatser från", "multi", "valueCode",
                      choices={"region": "Regionens öppna vård", "municipality": "Kommunen"}),
            ),
            "Spara bedömningen", "Bedömningen är sparad.",
            lambda stay, user: _ward(stay, user) and not stay.care_needed,
        ),
        _spec(
            "notify-ready", "Meddela att personen är utskrivningsklar", (JUDGEMENT,),
            "Meddela utskrivningsklar", "Meddelandet om utskrivningsklar är skickat.",
            lambda stay, user: _ward(stay, user) and stay.status == "admitted"
            and bool(stay.notice_sent),
        ),
        _spec(
            "withdraw-ready", "Återkalla utskrivningsklar",
            (Field("reason", "Skäl", "textarea", "valueString", True), JUDGEMENT),
            "Återkalla", "Utskrivningsklar är återkallad.",
            lambda stay, user: _ward(stay, user) and stay.ready,
        ),
        _spec(
            "call-sip", "Kalla till SIP",
            (Field("title", "Planens rubrik", "text", "valueString"), JUDGEMENT),
            "Kalla till SIP", "SIP är kallad: planen är startad som utkast.",
            _open(lambda stay, user: user.unit is not None and stay.ready
                  and not stay.sip_plan_id and user.unit == stay.care_contact_unit),
        ),
        _spec(
            "transfer-information", "Överför information till enheterna", (JUDGEMENT,),
            "Överför informationen", "Informationen är överförd.",
            lambda stay, user: _ward(stay, user) and bool(stay.notice_sent)
            and not stay.transfers,
        ),
        _spec(
            "record-outpatient-care-unavailable",
            "Registrera att regionens öppna vård inte är tillgänglig",
            (Field("reason", "Skäl", "textarea", "valueString", True,
                   hint="Vilken insats från regionens öppna vård som saknas eller inte är "
                   "klarlagd. Kommunen betalar då inte för vistelsens väntedagar."),),
            "Registrera", "Det är registrerat att regionens öppna vård inte är tillgänglig.",
            _region_records_unavailable,
        ),
        _spec(
            "discharge", "Skriv ut personen", (), "Skriv ut", "Personen är utskriven.",
            _ward, danger=True,
        ),
    )
}  # fmt: skip


ADMIT = FormSpec(
    "admit", "Skriva in en patient", "stay", STAFF,
    (
        Field("patient", "Personnummer", "text", "valueIdentifier", True, hint=FORMAT,
              read=patient_of),
        Field("ward", "Avdelning", "hsa-id", "valueIdentifier", True,
              hint="Avdelningens HSA-id; din enhet om du inte ändrar det. " + HSA_HINT),
        Field("admittedAt", "Inskriven", "datetime-local", "valueDateTime",
              hint="Lämna tomt om personen skrivs in nu."),
    ),
    "Skriv in", "Personen är inskriven.",
    rule_fields={"admitted-by-the-hospital": "ward",
                 "identifier-unique-per-organization": "patient"},
)  # fmt: skip


def admit_form(
    user: SignedInUser, posted: Posted | None = None, errors: Mapping[str, list[str]] | None = None
) -> FormView:
    """The admission's form: the user's own unit as the ward until they post another."""
    given = posted if posted is not None else {"ward": [user.unit] if user.unit else []}
    form_errors = dict(errors or {})
    fields = [
        FieldView(
            f, f"admit-{f.name}", [], list(given.get(f.name, [])), form_errors.pop(f.name, [])
        )
        for f in ADMIT.fields
    ]
    leftover = [m for messages in form_errors.values() for m in messages]
    # A fresh key each time the form is shown: shown again after a refusal, nothing was made.
    return FormView(
        ADMIT, "", "", fields, leftover, open=True, base="/stays", submission=new_submission()
    )


def stay_forms_for(
    stay: StayView,
    user: SignedInUser,
    posted_operation: str | None = None,
    posted: Posted | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[FormView]:
    """The forms of the steps that are this user's unit's to take now; the posted one (if
    any) with the user's input and the errors beside its fields."""
    forms = []
    for spec in STAY_FORMS.values():
        mine = spec.operation == posted_operation
        if user.role not in spec.roles or not (mine or spec.offered(stay, user)):  # type: ignore[arg-type]
            continue
        form_errors = dict(errors or {}) if mine else {}
        given = (posted or {}) if mine else {}
        fields = [
            FieldView(
                spec=f,
                id=f"{spec.operation}-{f.name}",
                choices=list((f.choices or {}).items()),  # type: ignore[union-attr]
                values=list(given.get(f.name, [])),
                errors=form_errors.pop(f.name, []),
            )
            for f in spec.fields
        ]
        for view in fields:
            if view.spec.input == "recipients":
                view.rows = recipient_rows(given)
        leftover = [m for messages in form_errors.values() for m in messages]
        forms.append(
            FormView(spec, stay.id, stay.version, fields, leftover, open=mine, base="/stays")
        )
    return forms


def recipient_rows(posted: Posted) -> list[dict[str, str]]:
    return [
        {
            "kind": kind,
            "label": label,
            "organization": first_posted(posted, f"recipient-{kind}-organization").strip(),
            "unit": first_posted(posted, f"recipient-{kind}-unit").strip(),
        }
        for kind, label in texts.RECIPIENT_KIND.items()
    ]


__all__ = ["ADMIT", "FORM_ERROR", "STAY_FORMS", "admit_form", "stay_forms_for"]
