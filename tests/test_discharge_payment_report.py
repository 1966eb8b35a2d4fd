"""The monthly payment report over real HTTP (`Encounter/$payment-report`, a MeasureReport):
the hand-worked cases of tests/test_discharge_payment.py (seed 002, 5.1–5.2; 8 000 kr a day
for 2026, a figure of the tests' own) stored in the service and asked for by the municipality
and the region concerned. Tried as an attacker and a careless client: a month or municipality
that is none (400 naming it), a year without a daily amount (422 naming it), a patient (403),
an organisation the report does not concern (404), and every person listed in the access log.

Each test has a municipality of its own, so the stays of one are not in another's month."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from services.sip.discharge.payment import PaymentModel
from services.sip.discharge.payment_report import (
    EXT_AMOUNT,
    EXT_LINE,
    EXT_PAYABLE_DAYS,
    EXT_TOTAL,
    payment_model_from_env,
)
from tests import discharge_data
from tests.conftest import running_system
from tests.discharge_data import (
    HOSPITAL,
    JUDGEMENT,
    NURSE_VC,
    PERSON,
    PHYSICIAN,
    PRIMARY_CARE_ORG,
    local,
    noticed,
    waited,
)
from tests.fhir_data import OTHER_REGION, new_personnummer

MODEL = PaymentModel(daily_amounts={2026: Decimal("8000"), 2027: Decimal("8500")})


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        system.sip_app.state.payment_model = MODEL
        yield system


@pytest.fixture(autouse=True)
def person(monkeypatch) -> str:
    """The stays' person: a personnummer of the test's own (the service, sealing personal
    data, checks its check digit, which the domain tests' example lacks)."""
    value = new_personnummer()
    monkeypatch.setattr(discharge_data, "PERSON", {**PERSON, "value": value})
    # The steps on a recorded secrecy judgement: every unit the stay concerns sees them (on
    # consent they would need the consent service to hold the person's consent).
    monkeypatch.setattr(discharge_data, "CONSENT", JUDGEMENT)
    return value


def a_municipality() -> str:
    return f"SE2120001439-T{uuid4().hex[:6].upper()}"


def stored(system, *stays):
    system.sip_app.state.plans.save(*stays)
    return [str(stay.id) for stay in stays]


def ask(system, municipality, month="2026-03", organization=None, role="professional"):
    caller = system.as_caller(role, organization or municipality).sip
    params = {"municipality": municipality, "month": month}
    return caller.get("/fhir/Encounter/$payment-report", params=params)


def ext(element, url):
    return next(e for e in element.get("extension", []) if e["url"] == url)


def money(element, url):
    return Decimal(str(ext(element, url)["valueMoney"]["value"]))


def groups(report):
    return {g["code"]["coding"][0]["code"]: g for g in report["group"]}


def lines(report):
    found = {}
    for resource in report.get("evaluatedResource", []):
        parts = {p["url"]: p for p in ext(resource, EXT_LINE)["extension"]}
        found[resource["reference"].removeprefix("Encounter/")] = parts
    return found


def test_an_average_over_3_0_is_paid_as_the_difference_times_people_times_the_amount(system):
    """(3 + 6 + 0 + 5) / 4 = 3.5 > 3.0: (3.5 − 3.0) × 4 × 8 000 = 16 000 kr."""
    m = a_municipality()
    ids = stored(
        system,
        waited(local("2026-03-02", "14:00"), local("2026-03-05", "09:00"), municipality=m,
               social=f"{m}-SOC"),
        waited(local("2026-03-03"), local("2026-03-09"), municipality=m, social=f"{m}-SOC"),
        waited(local("2026-03-10", "09:00"), local("2026-03-10", "15:00"), municipality=m,
               social=f"{m}-SOC"),
        waited(local("2026-03-16"), local("2026-03-21"), municipality=m, social=f"{m}-SOC"),
    )  # fmt: skip
    answer = ask(system, m)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    MeasureReport.model_validate(report)  # a valid R4B resource
    average = groups(report)["average"]
    assert average["population"][0]["count"] == 4
    assert Decimal(str(average["measureScore"]["value"])) == Decimal("3.5")
    assert Decimal(str(ext(average, EXT_PAYABLE_DAYS)["valueDecimal"])) == 2
    assert money(average, EXT_AMOUNT) == Decimal("16000") == money(report, EXT_TOTAL)
    assert report["period"]["start"] == "2026-02-28T23:00:00.000Z"  # 1 March in Sweden
    shown = lines(report)
    assert set(shown) == set(ids)
    assert sorted(p["days"]["valueInteger"] for p in shown.values()) == [0, 3, 5, 6]


def test_day_8_is_counted_alone_from_day_4(system):
    """A 7 days (average), B 8 days (alone: 5 × 8 000 = 40 000), C 1 day (average):
    (7 + 1) / 2 = 4.0: 16 000 kr. Total 56 000 kr. The region's hospital asks it too."""
    m, social = a_municipality(), "SOC"
    a, b, c = stored(
        system,
        waited(local("2026-03-02"), local("2026-03-09"), municipality=m, social=social),
        waited(local("2026-03-02"), local("2026-03-10"), municipality=m, social=social),
        waited(local("2026-03-11"), local("2026-03-12"), municipality=m, social=social),
    )
    for organization in (m, HOSPITAL):
        report = ask(system, m, organization=organization).json()
        assert money(report, EXT_TOTAL) == Decimal("56000")
        alone = groups(report)["individual"]
        assert alone["population"][0]["count"] == 1
        assert money(alone, EXT_AMOUNT) == Decimal("40000")
        shown = lines(report)
        assert shown[b]["counted"]["valueCode"] == "individual"
        assert shown[b]["payable-days"]["valueInteger"] == 5
        assert Decimal(str(shown[b]["amount"]["valueMoney"]["value"])) == Decimal("40000")
        assert {shown[a]["counted"]["valueCode"], shown[c]["counted"]["valueCode"]} == {"average"}


def test_nothing_is_paid_where_the_region_did_not_do_its_part(system):
    """Three people waiting 10 days each, excluded (late notice, SIP called 3 days and a
    minute after the ready notice, outpatient care unavailable); a fourth 4 days: 4.0 > 3.0:
    (4.0 − 3.0) × 1 × 8 000 = 8 000 kr."""
    m, social = a_municipality(), "SOC"
    ready = local("2026-03-02")
    late = noticed(ready - timedelta(days=4), notice_after=timedelta(hours=25), municipality=m,
                   social=social)  # fmt: skip
    late.name_care_contact(name="S", already_existed=False, legal_basis=JUDGEMENT,
                           at=ready - timedelta(days=2), by=NURSE_VC)  # fmt: skip
    late.notify_ready(legal_basis=JUDGEMENT, at=ready, by=PHYSICIAN)
    late.call_sip(plan_id="p", legal_basis=JUDGEMENT, at=ready, by=NURSE_VC)
    late.discharge(at=local("2026-03-12"), by=PHYSICIAN)
    sip = waited(ready, local("2026-03-12"), sip_after=timedelta(days=3, minutes=1),
                 municipality=m, social=social)  # fmt: skip
    unavailable = noticed(local("2026-02-26"), municipality=m, social=social)
    unavailable.name_care_contact(name="S", already_existed=False, legal_basis=JUDGEMENT,
                                  at=local("2026-02-26", "12:00"), by=NURSE_VC)  # fmt: skip
    unavailable.notify_ready(legal_basis=JUDGEMENT, at=ready, by=PHYSICIAN)
    unavailable.call_sip(plan_id="p", legal_basis=JUDGEMENT, at=ready, by=NURSE_VC)
    unavailable.record_outpatient_care_unavailable(reason="no district nurse",
                                                   at=local("2026-03-03"), by=NURSE_VC)  # fmt: skip
    unavailable.discharge(at=local("2026-03-12"), by=PHYSICIAN)
    fourth = waited(local("2026-03-16"), local("2026-03-20"), municipality=m, social=social)
    stored(system, late, sip, unavailable, fourth)
    report = ask(system, m).json()
    assert money(report, EXT_TOTAL) == Decimal("8000")
    excluded = groups(report)["excluded"]
    assert excluded["population"][0]["count"] == 3
    strata = {s["value"]["coding"][0]["code"]: s["population"][0]["count"]
              for s in excluded["stratifier"][0]["stratum"]}  # fmt: skip
    assert strata == {"admission-notice-missed": 1, "sip-call-missed": 1,
                      "outpatient-care-unavailable": 1}  # fmt: skip
    assert lines(report)[str(sip.id)]["reason"]["valueCode"] == "sip-call-missed"


def test_the_figures_are_the_configured_model(system):
    """Another county: over 2.0, alone after 5 days from day 3, the notice's day as day 1,
    1 000 kr: P 3 days (average: 1 000 kr), Q 6 days (alone: 4 × 1 000 kr). 5 000 kr."""
    other = PaymentModel(average_over_days=Decimal("2.0"), individual_after_days=5,
                         individual_pays_after_days=2, daily_amounts={2026: Decimal("1000")},
                         count_ready_day=True)  # fmt: skip
    m = a_municipality()
    stored(
        system,
        waited(local("2026-03-02"), local("2026-03-04"), municipality=m, social="SOC"),
        waited(local("2026-03-02"), local("2026-03-07"), municipality=m, social="SOC"),
    )
    system.sip_app.state.payment_model = other
    try:
        assert money(ask(system, m).json(), EXT_TOTAL) == Decimal("5000")
    finally:
        system.sip_app.state.payment_model = MODEL


def test_the_model_is_read_from_the_environment_and_a_malformed_figure_is_named():
    model = payment_model_from_env({
        "SIP_PAYMENT_DAILY_AMOUNTS": "2026=8000, 2027=8500.50",
        "SIP_PAYMENT_AVERAGE_OVER_DAYS": "2.5", "SIP_PAYMENT_COUNT_READY_DAY": "true",
    })  # fmt: skip
    assert model.daily_amount(2027) == Decimal("8500.50")
    assert model.average_over_days == Decimal("2.5") and model.count_ready_day
    assert payment_model_from_env({}).daily_amounts == {}
    for environ, named in (
        ({"SIP_PAYMENT_DAILY_AMOUNTS": "2026:8000"}, "SIP_PAYMENT_DAILY_AMOUNTS"),
        ({"SIP_PAYMENT_DAILY_AMOUNTS": "2026=-1"}, "SIP_PAYMENT_DAILY_AMOUNTS"),
        ({"SIP_PAYMENT_INDIVIDUAL_AFTER_DAYS": "seven"}, "SIP_PAYMENT_INDIVIDUAL_AFTER_DAYS"),
        ({"SIP_PAYMENT_COUNT_READY_DAY": "yes"}, "SIP_PAYMENT_COUNT_READY_DAY"),
    ):
        with pytest.raises(ValueError, match=named):
            payment_model_from_env(environ)


def test_bad_input_is_400_naming_the_parameter_and_an_unpriced_year_is_refused(system):
    m = a_municipality()
    for month in ("2026-13", "2026-3", "mars", "2026-03-01"):
        answer = ask(system, m, month=month)
        assert answer.status_code == 400, (month, answer.text)
        assert "month" in answer.json()["issue"][0]["expression"][0]
    bad = system.as_caller("professional", m).sip.get(
        "/fhir/Encounter/$payment-report", params={"municipality": "Ale", "month": "2026-03"}
    )
    assert bad.status_code == 400 and "municipality" in bad.text
    missing = system.as_caller("professional", m).sip.get(
        "/fhir/Encounter/$payment-report", params={"municipality": m}
    )
    assert missing.status_code == 400 and "month" in missing.text
    unpriced = ask(system, m, month="2031-01")
    assert unpriced.status_code == 422 and "2031" in unpriced.text
    assert unpriced.json()["resourceType"] == "OperationOutcome"


def test_only_the_municipality_and_the_region_concerned_may_ask_and_each_person_is_logged(
    system, person
):
    m = a_municipality()
    [stay_id] = stored(
        system, waited(local("2026-03-02"), local("2026-03-06"), municipality=m, social="SOC")
    )
    assert ask(system, m, organization=a_municipality()).status_code == 404  # another one
    assert ask(system, m, organization=OTHER_REGION).status_code == 404
    # Primary care is told of the stay, but is not a party to the payment.
    assert ask(system, m, organization=PRIMARY_CARE_ORG).status_code == 404
    patient = system.as_caller("patient", None, patient=person).sip
    refused = patient.get("/fhir/Encounter/$payment-report",
                          params={"municipality": m, "month": "2026-03"})  # fmt: skip
    assert refused.status_code == 403
    no_scope = system.as_caller("integration", m, scopes=("system/CarePlan.rs",)).sip
    params = {"municipality": m, "month": "2026-03"}
    assert no_scope.get("/fhir/Encounter/$payment-report", params=params).status_code == 403
    by_post = system.as_caller("professional", m).sip.post(
        "/fhir/Encounter/$payment-report",
        json={"resourceType": "Parameters", "parameter": [
            {"name": "municipality", "valueString": m}, {"name": "month", "valueString": "2026-03"}
        ]},
    )  # fmt: skip
    assert by_post.status_code == 200, by_post.text
    assert stay_id in lines(by_post.json())
    # A stay whose ready notice rests on a consent the service does not hold: counted in
    # the figures, not listed (its days would tell when the person was ready).
    discharge_data.CONSENT = {"basis": "consent", "consents": ["Consent/none"]}
    [hidden] = stored(
        system, waited(local("2026-03-09"), local("2026-03-12"), municipality=m, social="SOC")
    )
    report = ask(system, m).json()
    assert groups(report)["average"]["population"][0]["count"] == 2
    assert set(lines(report)) == {stay_id} and hidden not in lines(report)
    log = system.as_caller("auditor", HOSPITAL).sip.get(
        "/fhir/AuditEvent", params={"patient": person, "_count": "1000"}
    )
    assert log.status_code == 200 and f"Encounter/{stay_id}" in log.text
