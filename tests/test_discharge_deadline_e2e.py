"""A SIP called too late, end to end over HTTP (issue 17): two people of one municipality wait
8 days after being ready for discharge in November 2026. For A primary care calls the SIP four
days after the ready notice (the law: within three); for B the next morning.

- The timed check (the subscription worker's round, `with_missed_deadlines`) finds A's SIP
  deadline missed while no plan exists: the stay records it, its Task is overdue, the stay is
  found by `deadline-missed=true`.
- Primary care calls A's SIP late: the next round raises one deviation on the new plan,
  against primary care, which the plan's readers see; later rounds raise no more.
- The payment report for November: B, counted alone, costs the municipality
  (8 − 3) × 8 000 = 40 000 kr; A costs nothing, excluded as `sip-call-missed`.

The server's clock is moved by the test (the operations' and the Task's instant); the steps
are otherwise the clients' own, each answered 200."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from contracts.canonical import EXT_DEVIATION, EXT_DEVIATION_AGAINST
from services.common import fhir_time
from services.common.operations import pipeline
from services.sip.discharge.application import Stays, with_missed_deadlines
from services.sip.discharge.fhir import EXT_SIP_PLAN
from services.sip.discharge.payment import PaymentModel
from services.sip.discharge.payment_report import EXT_LINE, EXT_TOTAL
from services.sip.discharge.tasks import EXT_DEADLINE_STATE, EXT_OVERDUE
from tests.conftest import running_system
from tests.discharge_data import local
from tests.discharge_http import (
    PRIMARY,
    SOCIAL,
    VARDCENTRAL,
    WARD,
    admit,
    consent_to_the_stay,
    extension,
    staff,
    step,
)
from tests.fhir_data import MUNICIPALITY, REGION, new_personnummer

START = local("2026-11-02", "08:00")
MODEL = PaymentModel(daily_amounts={2026: Decimal("8000")})


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        system.sip_app.state.payment_model = MODEL
        yield system


class Clock:
    """The server's instant, as the test sets it."""

    def __init__(self, monkeypatch, at):
        self.at = at
        monkeypatch.setattr(pipeline, "now", lambda: self.at)
        monkeypatch.setattr(fhir_time, "now", lambda: self.at)


def ready_stay(system, clock, personnummer):
    """Admitted, noticed, received, contact named, ready a day after admission: its id."""
    consent_to_the_stay(system, personnummer)
    ward, vc = staff(system, REGION, WARD), staff(system, PRIMARY, VARDCENTRAL)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    clock.at = START
    stay_id = admit(ward, personnummer).json()["id"]
    recipients = [
        {"organization": PRIMARY, "unit": VARDCENTRAL, "kind": "primary-care"},
        {"organization": MUNICIPALITY, "unit": SOCIAL, "kind": "social-services"},
    ]
    estimate = (START + timedelta(days=9)).isoformat()
    for hours, client, operation, values in (
        (0.1, ward, "judge-care-needed", {"principal": ["region", "municipality"]}),
        (1, ward, "send-admission-notice", {"recipient": recipients,
                                            "estimatedDischarge": estimate}),
        (2, vc, "confirm-receipt", {}),
        (2, municipality, "confirm-receipt", {}),
        (3, vc, "name-care-contact", {"name": "Sköterska Svensson"}),
        (24, ward, "notify-ready", {}),
    ):  # fmt: skip
        clock.at = START + timedelta(hours=hours)
        answer = step(client, stay_id, operation, **values)
        assert answer.status_code == 200, (operation, answer.text)
    return stay_id


def call_sip(system, clock, stay_id, at):
    clock.at = at
    called = step(staff(system, PRIMARY, VARDCENTRAL), stay_id, "call-sip", title="SIP")
    assert called.status_code == 200, called.text
    return extension(called.json(), EXT_SIP_PLAN)["extension"][0]["valueReference"]["reference"]


def discharge(system, clock, stay_id, at):
    ward = staff(system, REGION, WARD)
    clock.at = at
    for operation in ("transfer-information", "discharge"):
        answer = step(ward, stay_id, operation)
        assert answer.status_code == 200, (operation, answer.text)


def deviations(plan):
    return [note for note in plan.get("note", []) if extension(note, EXT_DEVIATION)]


def test_a_sip_called_late_is_a_deviation_on_the_plan_and_costs_the_municipality_nothing(
    system, monkeypatch
):
    clock = Clock(monkeypatch, START)
    stays = Stays(system.sip_app.state.plans, system.sip_app.state.consent_gate_uncached)
    timed_round = with_missed_deadlines(stays, lambda: [], now=lambda: clock.at)
    ready = START + timedelta(days=1)
    late_id = ready_stay(system, clock, new_personnummer())
    on_time_id = ready_stay(system, clock, new_personnummer())
    vc = staff(system, PRIMARY, VARDCENTRAL)
    municipality = staff(system, MUNICIPALITY, SOCIAL)
    on_time_plan = call_sip(system, clock, on_time_id, ready + timedelta(hours=2))

    # Three days and an hour after the ready notice: A's SIP deadline has passed.
    clock.at = ready + timedelta(days=3, hours=1)
    timed_round()
    task = vc.get(f"/fhir/Task/{late_id}.sip-call").json()
    assert extension(task, EXT_OVERDUE)["valueBoolean"] is True
    overdue = vc.get("/fhir/Task", params={"owner": PRIMARY, "overdue": "true"}).json()
    assert f"{late_id}.sip-call" in {e["resource"]["id"] for e in overdue.get("entry", [])}
    found = vc.get("/fhir/Encounter", params={"deadline-missed": "true"}).json()
    assert {e["resource"]["id"] for e in found["entry"]} >= {late_id}
    assert on_time_id not in {e["resource"]["id"] for e in found["entry"]}

    # Primary care calls it a day late: the next round raises the deviation on the plan.
    late_plan = call_sip(system, clock, late_id, ready + timedelta(days=4))
    assert deviations(vc.get(f"/fhir/{late_plan}").json()) == []
    clock.at = ready + timedelta(days=4, hours=1)
    timed_round()
    timed_round()  # again, as the next round (or another replica) would: nothing more
    for reader in (vc, municipality, staff(system, REGION, WARD)):
        plan = reader.get(f"/fhir/{late_plan}")
        assert plan.status_code == 200, plan.text
        [note] = deviations(plan.json())
        against = extension(note, EXT_DEVIATION_AGAINST)["valueReference"]["identifier"]
        assert against["value"] == PRIMARY
        assert "kallelse till SIP" in note["text"]
    assert deviations(vc.get(f"/fhir/{on_time_plan}").json()) == []
    task = vc.get(f"/fhir/Task/{late_id}.sip-call").json()
    assert task["status"] == "completed" and extension(task, EXT_DEADLINE_STATE)["valueCode"] == (
        "late"
    )

    # Both discharged 8 days after being ready; the report is made in December.
    discharge(system, clock, late_id, ready + timedelta(days=8, hours=1))
    discharge(system, clock, on_time_id, ready + timedelta(days=8, hours=2))
    timed_round()
    assert len(deviations(vc.get(f"/fhir/{late_plan}").json())) == 1
    clock.at = local("2026-12-01", "10:00")
    answer = municipality.get(
        "/fhir/Encounter/$payment-report", params={"municipality": MUNICIPALITY, "month": "2026-11"}
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    total = extension(report, EXT_TOTAL)["valueMoney"]["value"]
    assert Decimal(str(total)) == Decimal("40000")  # B alone: (8 − 3) × 8 000
    lines = {
        r["reference"]: {p["url"]: p for p in extension(r, EXT_LINE)["extension"]}
        for r in report["evaluatedResource"]
    }
    late_line, on_time_line = lines[f"Encounter/{late_id}"], lines[f"Encounter/{on_time_id}"]
    assert late_line["counted"]["valueCode"] == "excluded"
    assert late_line["reason"]["valueCode"] == "sip-call-missed"
    assert late_line["days"]["valueInteger"] == 8
    assert on_time_line["counted"]["valueCode"] == "individual"
    assert on_time_line["payable-days"]["valueInteger"] == 5
