"""Stays for the discharge tests: the hospital, a primary-care unit and a municipality, and a
stay walked to any step with its times in Swedish local time."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.fhir_time import SWEDEN
from services.sip.discharge.stay import Stay

HOSPITAL, WARD = "SE2321000131-E1", "SE2321000131-E1-WARD7"
PRIMARY_CARE_ORG, VARDCENTRAL = "SE2321000131-P1", "SE2321000131-P1-VC"
ALE, ALE_SOCIAL, ALE_HEALTH = "SE2120001439-K1", "SE2120001439-K1-SOC", "SE2120001439-K1-HSL"
KUNGALV, KUNGALV_SOCIAL = "SE2120001637-K1", "SE2120001637-K1-SOC"
OUTSIDER = "SE5560000000-X1"

CONSENT = {"basis": "consent", "consents": ["Consent/c1"]}
JUDGEMENT = {"basis": "secrecy-judgement", "judgement": "LSU 4 kap: secrecy does not prevent"}
PERSON = {"system": "http://electronichealth.se/identifier/personnummer", "value": "194001019802"}


def actor(organization: str, unit: str | None, subject: str = "staff") -> dict:
    return {"subject": subject, "role": "professional", "organization": organization, "unit": unit}


PHYSICIAN = actor(HOSPITAL, WARD, "doctor")
NURSE_VC = actor(PRIMARY_CARE_ORG, VARDCENTRAL, "care-contact")
SOCIAL = actor(ALE, ALE_SOCIAL, "needs-assessor")
HEALTH = actor(ALE, ALE_HEALTH, "municipal-nurse")


def local(day: str, time: str = "10:00") -> datetime:
    """A Swedish local time, as the ward's clock shows it."""
    return datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=SWEDEN)


def recipients(municipality: str = ALE, social: str = ALE_SOCIAL) -> list[dict[str, str]]:
    return [
        {"organization": PRIMARY_CARE_ORG, "unit": VARDCENTRAL, "kind": "primary-care"},
        {"organization": municipality, "unit": social, "kind": "social-services"},
    ]


def admitted(at: datetime) -> Stay:
    return Stay.admit(subject=PERSON, ward=WARD, admitted_at=at, by=PHYSICIAN)


def noticed(
    admitted_at: datetime,
    principals: tuple[str, ...] = ("region", "municipality"),
    notice_after: timedelta = timedelta(hours=2),
    municipality: str = ALE,
    social: str = ALE_SOCIAL,
) -> Stay:
    """Admitted, care judged needed at admission, the notice sent `notice_after` later."""
    stay = admitted(admitted_at)
    stay.judge_care_needed(principals=list(principals), at=admitted_at, by=PHYSICIAN)
    units = [
        r
        for r in recipients(municipality, social)
        if ("region" if r["kind"] == "primary-care" else "municipality") in principals
    ]
    stay.send_admission_notice(
        recipients=units,
        estimated_discharge=admitted_at + timedelta(days=5),
        legal_basis=CONSENT,
        at=admitted_at + notice_after,
        by=PHYSICIAN,
    )
    return stay


def waited(
    ready_at: datetime,
    discharged_at: datetime,
    *,
    municipality: str = ALE,
    social: str = ALE_SOCIAL,
    sip_after: timedelta | None = timedelta(hours=1),
) -> Stay:
    """A stay whose region did its part (notice on time; SIP called `sip_after` the ready
    notice, or not at all with None), ready at `ready_at`, discharged at `discharged_at`."""
    admitted_at = ready_at - timedelta(days=4)
    stay = noticed(admitted_at, municipality=municipality, social=social)
    municipal = actor(municipality, social, "needs-assessor")
    stay.confirm_receipt(at=admitted_at + timedelta(hours=3), by=NURSE_VC)
    stay.confirm_receipt(at=admitted_at + timedelta(hours=3), by=municipal)
    stay.name_care_contact(
        name="Sköterska Svensson",
        already_existed=False,
        legal_basis=CONSENT,
        at=admitted_at + timedelta(hours=4),
        by=NURSE_VC,
    )
    stay.notify_ready(legal_basis=CONSENT, at=ready_at, by=PHYSICIAN)
    if sip_after is not None:
        stay.call_sip(plan_id="plan-1", legal_basis=CONSENT, at=ready_at + sip_after, by=NURSE_VC)
    stay.transfer_information(legal_basis=CONSENT, at=discharged_at, by=PHYSICIAN)
    stay.discharge(at=discharged_at, by=PHYSICIAN)
    return stay
