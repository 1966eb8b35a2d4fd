"""The forms of a stay's page: one per step of the stay the SIP service has an Encounter
operation for, offered to the unit whose step it is now (the API decides whether it may: a
refusal is shown beside the field it concerns). They are the plan page's forms (`FormSpec`,
`parameters_of`, `refusal_errors`, the same partial), posting to /stays/<id>/<operation>."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from services.web.plan_forms import (
    FORM_ERROR,
    STAFF,
    Field,
    FieldView,
    FormSpec,
    FormView,
    Posted,
)
from services.web.session import SignedInUser
from services.web.stay_view import StayView

JUDGEMENT = Field(
    "judgement",
    "Sekretessprövning, om personen inte har samtyckt",
    "textarea",
    "valueString",
    hint="Din bedömning att sekretess inte hindrar att uppgiften lämnas till de andra "
    "enheterna. Lämna tomt om personen har samtyckt.",
)


def _unreceived(stay: StayView, user: SignedInUser) -> bool:
    recipient = stay.recipient(user.unit)
    return recipient is not None and not recipient.received


def _primary_care(stay: StayView, user: SignedInUser) -> bool:
    recipient = stay.recipient(user.unit)
    return recipient is not None and recipient.kind == "primary-care" and not stay.care_contact


def _ward(stay: StayView, user: SignedInUser) -> bool:
    return bool(user.unit) and user.unit == stay.ward and not stay.discharged_already


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
) -> FormSpec:
    return FormSpec(
        operation, legend, "stay", STAFF, fields, submit, done,
        rule_fields={"disclosure-requires-consent-or-judgement": "judgement"},
        offered=offered,  # type: ignore[arg-type]  # a stay's, not a plan's
        danger=danger,
    )  # fmt: skip


STAY_FORMS: dict[str, FormSpec] = {
    spec.operation: spec
    for spec in (
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
            "discharge", "Skriv ut personen", (), "Skriv ut", "Personen är utskriven.",
            _ward, danger=True,
        ),
    )
}  # fmt: skip


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
        leftover = [m for messages in form_errors.values() for m in messages]
        forms.append(
            FormView(spec, stay.id, stay.version, fields, leftover, open=mine, base="/stays")
        )
    return forms


__all__ = ["FORM_ERROR", "STAY_FORMS", "stay_forms_for"]
