"""A missed deadline of the legal clock recorded on the stay (issue 17, part 2): the
time-driven check, at an injected instant, records each missed deadline once (run again, or by
two replicas, it records nothing more), names the organisation that missed it, refuses a
deadline not yet due; once the stay has a plan (the SIP called), each missed deadline is raised
once as a deviation of the plan against that organisation (part 3), and a deviation stored
before its event named whom it is against still reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import jsonschema
import pytest
from eventsourcing.domain import Aggregate

from contracts.actor import Actor
from services.common.domain import InvalidCommand, RuleViolation
from services.common.fhir_time import fhir_instant
from services.common.persistence import storage_for
from services.sip.application import SipPlans
from services.sip.discharge.application import LEGAL_CLOCK, Stays, with_missed_deadlines
from services.sip.discharge.disclosure import StayDisclosure, redact_stay
from services.sip.discharge.fhir import EXT_DEADLINE_MISSED, stay_to_fhir
from services.sip.discharge.stay import ADMISSION_NOTICE, SIP_CALL
from services.sip.domain import Plan
from tests.discharge_data import (
    ALE,
    HOSPITAL,
    NURSE_VC,
    PERSON,
    PHYSICIAN,
    PRIMARY_CARE_ORG,
    WARD,
    admitted,
    local,
    recipients,
    waited,
)
from tests.fhir_data import started_by_region
from tests.test_discharge_application import Gate
from tests.test_discharge_disclosure import Gate as DisclosureGate
from tests.test_stored_v1_events import store_as_version_1

MONDAY = local("2026-03-02", "08:00")
SCHEMA = "contracts/event_schemas/sip/Stay.DeadlineMissed.v1.json"
DEVIATION_SCHEMA = "contracts/event_schemas/sip/Plan.DeviationReported.v2.json"


class DeviationReportedV1(Aggregate.Event):
    """`Plan.DeviationReported` as version 1 defined it: no `against`, no `source`."""

    deviation_id: str
    organization: str
    intervention_id: str | None
    text: str
    at: datetime
    by: dict[str, Any]


@pytest.fixture
def stays(backend) -> Iterator[Stays]:
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    try:
        yield Stays(plans, Gate())
    finally:
        plans.close()


def judged_not_noticed(app):
    stay = app.admit(subject=PERSON, ward=WARD, admitted_at=MONDAY, by=PHYSICIAN)
    app.judge_care_needed(stay.id, principals=["region", "municipality"], at=MONDAY, by=PHYSICIAN)
    return stay


def missed_events(app, stay_id):
    return [e for e in app.plans.events.get(stay_id) if type(e).__name__ == "DeadlineMissed"]


def test_the_check_records_a_missed_admission_notice_once_against_the_hospital(stays):
    stay = judged_not_noticed(stays)
    assert stays.check_deadlines(now=MONDAY + timedelta(hours=23)) == 0  # not due yet
    later = MONDAY + timedelta(hours=25)
    assert stays.check_deadlines(now=later) == 1
    assert stays.check_deadlines(now=later + timedelta(hours=1)) == 0  # once only
    assert stays.record_missed_deadlines(stay.id, now=later + timedelta(days=1)) == []
    [recorded] = stays.stay(stay.id).deadlines_missed
    assert (recorded.duty, recorded.due, recorded.owner) == (
        ADMISSION_NOTICE,
        MONDAY + timedelta(hours=24),
        HOSPITAL,
    )
    assert recorded.recorded.at == later and recorded.recorded.by == LEGAL_CLOCK
    assert len(missed_events(stays, stay.id)) == 1
    stored = stays.plans.recorder.select_events(stay.id, desc=True, limit=1)[0]
    with open(SCHEMA) as schema:
        jsonschema.validate(json.loads(stored.state), json.load(schema))


def noticed_and_named(app):
    stay = judged_not_noticed(app)
    app.send_admission_notice(
        stay.id, recipients=recipients(), estimated_discharge=MONDAY + timedelta(days=9),
        at=MONDAY + timedelta(hours=1), by=PHYSICIAN,
    )  # fmt: skip
    app.name_care_contact(stay.id, name="Svensson", already_existed=False,
                          at=MONDAY + timedelta(hours=2), by=NURSE_VC)  # fmt: skip
    return stay


def test_a_missed_sip_call_is_against_primary_care(stays):
    stay = noticed_and_named(stays)
    ready_at = local("2026-03-04")
    stays.notify_ready(stay.id, at=ready_at, by=PHYSICIAN)
    after = ready_at + timedelta(days=3, minutes=1)
    [deadline] = stays.record_missed_deadlines(stay.id, now=after)
    assert (deadline.duty, deadline.owner) == (SIP_CALL, PRIMARY_CARE_ORG)


def test_a_sip_called_late_raises_a_deviation_on_its_plan_against_primary_care_once(stays):
    stay = noticed_and_named(stays)
    ready_at = local("2026-03-04")
    stays.notify_ready(stay.id, at=ready_at, by=PHYSICIAN)
    _, plan_id = stays.call_sip(stay.id, title="SIP", at=ready_at + timedelta(days=4),
                                by=NURSE_VC)  # fmt: skip
    check = ready_at + timedelta(days=6)
    [deadline] = stays.record_missed_deadlines(stay.id, now=check)
    assert (deadline.duty, deadline.owner) == (SIP_CALL, PRIMARY_CARE_ORG)
    plan = stays.plans.aggregate(plan_id)
    [deviation] = plan.deviations.values()
    assert plan.deviation_against(deviation.id) == PRIMARY_CARE_ORG == deviation.against
    assert deviation.organization == HOSPITAL and deviation.intervention_id is None
    assert deviation.source == {"stay": str(stay.id), "duty": SIP_CALL,
                                "due": (ready_at + timedelta(days=3)).isoformat()}  # fmt: skip
    assert "kallelse till SIP" in deviation.text and deviation.reported_at == check
    # Once: the check again, later, on another replica, raises nothing more.
    assert stays.record_missed_deadlines(stay.id, now=check + timedelta(hours=1)) == []
    assert stays.check_deadlines(now=check + timedelta(days=1)) == 0
    assert len(stays.plans.aggregate(plan_id).deviations) == 1
    assert len(missed_events(stays, stay.id)) == 1
    stored = stays.plans.recorder.select_events(plan_id, desc=True, limit=1)[0]
    with open(DEVIATION_SCHEMA) as schema:
        jsonschema.validate(json.loads(stored.state), json.load(schema))


def test_a_deadline_missed_before_the_plan_is_raised_on_it_once_the_sip_is_called(stays):
    stay = judged_not_noticed(stays)
    late = MONDAY + timedelta(hours=30)
    assert stays.check_deadlines(now=late) >= 1  # the admission notice, no plan to hold it
    stays.send_admission_notice(
        stay.id, recipients=recipients(), estimated_discharge=MONDAY + timedelta(days=9),
        at=late, by=PHYSICIAN,
    )  # fmt: skip
    stays.name_care_contact(stay.id, name="S", already_existed=False, at=late, by=NURSE_VC)
    stays.notify_ready(stay.id, at=late + timedelta(hours=1), by=PHYSICIAN)
    _, plan_id = stays.call_sip(stay.id, title="SIP", at=late + timedelta(hours=2), by=NURSE_VC)
    assert stays.plans.aggregate(plan_id).deviations == {}
    assert stays.record_missed_deadlines(stay.id, now=late + timedelta(hours=3)) == []
    [deviation] = stays.plans.aggregate(plan_id).deviations.values()
    assert deviation.against == HOSPITAL and deviation.source["duty"] == ADMISSION_NOTICE
    stays.record_missed_deadlines(stay.id, now=late + timedelta(hours=4))
    assert len(stays.plans.aggregate(plan_id).deviations) == 1


def test_a_stored_version_1_deviation_reads_against_its_intervention_only(stays):
    """A DeviationReported stored before version 2 (no `against`, no `source`) is upcast."""
    plan = Plan(
        **started_by_region(PERSON["value"], at=MONDAY, by=PHYSICIAN, title=None, region=HOSPITAL)
    )
    stays.plans.save(plan)
    old = DeviationReportedV1(
        originator_id=plan.id, originator_version=2, timestamp=MONDAY,
        deviation_id="deviation-1", organization=HOSPITAL, intervention_id=None,
        text="Insatsen uteblev", at=MONDAY, by=PHYSICIAN,
    )  # fmt: skip
    stored = store_as_version_1(stays.plans, old, Plan.DeviationReported)
    payload = json.loads(stored.state)
    assert "class_version" not in payload and "against" not in payload
    with open(DEVIATION_SCHEMA.replace(".v2.", ".v1.")) as schema:
        jsonschema.validate(payload, json.load(schema))
    read = stays.plans.aggregate(plan.id)
    deviation = read.deviations["deviation-1"]
    assert (deviation.against, deviation.source) == (None, None)
    assert read.deviation_against("deviation-1") is None
    assert stays.plans.recorder.select_events(plan.id, gt=1)[0] == stored  # never rewritten


def test_the_stay_refuses_a_deadline_not_yet_due_or_of_no_known_duty():
    stay = admitted(MONDAY)
    due = MONDAY + timedelta(hours=24)
    with pytest.raises(RuleViolation) as refused:
        stay.record_deadline_missed(duty=ADMISSION_NOTICE, due=due, owner=HOSPITAL, at=due,
                                    by=LEGAL_CLOCK)  # fmt: skip
    assert refused.value.rule == "missed-after-due"
    with pytest.raises(InvalidCommand, match="duty"):
        stay.record_deadline_missed(duty="coffee", due=due, owner=HOSPITAL,
                                    at=due + timedelta(hours=1), by=LEGAL_CLOCK)  # fmt: skip
    assert stay.deadlines_missed == [] and not stay.pending_events[1:]


def test_the_stay_refuses_a_deviation_raised_without_a_plan_or_of_no_recorded_missed_deadline(
    stays,
):
    stay = judged_not_noticed(stays)
    due, late = MONDAY + timedelta(hours=24), MONDAY + timedelta(hours=30)
    stays.record_missed_deadlines(stay.id, now=late)
    stay = stays.stay(stay.id)
    with pytest.raises(RuleViolation) as refused:  # no SIP called: no plan to hold it
        stay.record_deviation_raised(duty=ADMISSION_NOTICE, due=due, deviation_id="deviation-1",
                                     at=late, by=LEGAL_CLOCK)  # fmt: skip
    assert refused.value.rule == "deviation-needs-plan"
    stay.sip_plan_id = "a plan"  # as if called, to reach the next rule
    with pytest.raises(RuleViolation) as refused:
        stay.record_deviation_raised(duty=SIP_CALL, due=due, deviation_id=None, at=late,
                                     by=LEGAL_CLOCK)  # fmt: skip
    assert refused.value.rule == "deviation-of-missed"
    assert stay.deviations_raised == {}
    assert stay.record_deviation_raised(duty=ADMISSION_NOTICE, due=due, deviation_id=None,
                                        at=late, by=LEGAL_CLOCK)  # fmt: skip
    assert not stay.record_deviation_raised(duty=ADMISSION_NOTICE, due=due, deviation_id=None,
                                            at=late, by=LEGAL_CLOCK)  # once  # fmt: skip
    assert stay.deviations_owed == []


def test_the_handing_to_the_plan_is_stored_as_its_published_schema_says(stays):
    stay = noticed_and_named(stays)
    ready_at = local("2026-03-04")
    stays.notify_ready(stay.id, at=ready_at, by=PHYSICIAN)
    _, plan_id = stays.call_sip(stay.id, title="SIP", at=ready_at + timedelta(days=4),
                                by=NURSE_VC)  # fmt: skip
    stays.record_missed_deadlines(stay.id, now=ready_at + timedelta(days=5))
    [stored] = [e for e in stays.plans.recorder.select_events(stay.id)
                if e.topic.endswith("Stay.DeviationRaised")]  # fmt: skip
    with open("contracts/event_schemas/sip/Stay.DeviationRaised.v1.json") as schema:
        jsonschema.validate(json.loads(stored.state), json.load(schema))
    [deviation] = stays.plans.aggregate(plan_id).deviations.values()
    assert stays.stay(stay.id).deviations_raised == {
        (SIP_CALL, ready_at + timedelta(days=3)): deviation.id}  # fmt: skip


def test_the_workers_timed_round_records_missed_deadlines_then_asks_the_plans_check(stays):
    stay = judged_not_noticed(stays)
    follow_ups = [("follow-up-overdue", "plan-1", "2026-03-01")]
    asked = []

    def plans_check():
        asked.append(len(stays.stay(stay.id).deadlines_missed))
        return follow_ups

    later = MONDAY + timedelta(days=2)
    check = with_missed_deadlines(stays, plans_check, now=lambda: later)
    assert check() == follow_ups and check() == follow_ups
    assert asked == [1, 1] and len(missed_events(stays, stay.id)) == 1

    def broken(**_):
        raise RuntimeError("database away")

    stays.check_deadlines = broken  # the plans' notices still go out
    assert check() == follow_ups


def test_the_encounter_shows_a_missed_deadline_and_hides_a_sip_call_whose_notice_is_hidden():
    ready_at = local("2026-03-10")
    stay = waited(ready_at, ready_at + timedelta(days=5), sip_after=None)
    due = ready_at + timedelta(days=3)
    recorded_at = ready_at + timedelta(days=6)
    stay.record_deadline_missed(
        duty=SIP_CALL, due=due, owner=PRIMARY_CARE_ORG, at=recorded_at, by=LEGAL_CLOCK
    )
    [shown] = [e for e in stay_to_fhir(stay)["extension"] if e["url"] == EXT_DEADLINE_MISSED]
    parts = {p["url"]: p for p in shown["extension"]}
    assert parts["duty"]["valueCode"] == SIP_CALL
    assert parts["due"]["valueDateTime"] == fhir_instant(due)
    assert parts["owner"]["valueReference"]["identifier"]["value"] == PRIMARY_CARE_ORG

    gate = DisclosureGate()
    municipality = Actor(subject="r", role="integration", organization=ALE, unit=None)
    assert redact_stay(stay, StayDisclosure(gate)(stay, municipality)).deadlines_missed != []
    gate.withdrawn = {(HOSPITAL, ALE)}  # the ready notice rested on this consent
    seen = redact_stay(stay, StayDisclosure(gate)(stay, municipality))
    assert seen.ready_periods == [] and seen.deadlines_missed == []
    assert not [e for e in stay_to_fhir(seen)["extension"] if e["url"] == EXT_DEADLINE_MISSED]
    hospital = Actor(subject="r", role="integration", organization=HOSPITAL, unit=None)
    assert len(redact_stay(stay, StayDisclosure(gate)(stay, hospital)).deadlines_missed) == 1
