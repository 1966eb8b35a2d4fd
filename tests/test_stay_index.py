"""The stays' read model (services/sip/discharge/projections.py, issue 15): rebuilt from
zero to the same rows, caught up before a search answers (a search right after a write sees
it), holding no personnummer, and narrowing each request to the stays it may concern: the
aggregates a search loads do not grow with other organisations' stays."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.sip.discharge.projections import stay_index, stay_parties
from tests.conftest import running_system
from tests.discharge_data import actor, local
from tests.discharge_http import ADMITTED, PRIMARY, noticed_through_the_application, stays_of
from tests.fhir_data import MUNICIPALITY, OTHER_REGION, REGION, new_personnummer


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def admitted(
    system, organization=REGION, *, municipality=MUNICIPALITY, personnummer=None, discharged=False
):
    """A stay of `organization`'s ward, told to primary care and the municipality (on a
    judgement); discharged if asked. (stay id, personnummer)."""
    personnummer = personnummer or new_personnummer()
    stays = stays_of(system)
    stay_id, ward = noticed_through_the_application(
        stays, personnummer, organization=organization, municipality=(municipality, "K-SOC")
    )
    if discharged:
        hospital, at = actor(organization, ward), ADMITTED + timedelta(days=2)
        stays.transfer_information(UUID(stay_id), at=at, by=hospital, judgement="LSU")
        stays.discharge(UUID(stay_id), at=at, by=hospital)
    return stay_id, personnummer


def rows(index):
    index.catch_up()
    with index.engine.connect() as connection:
        found = connection.execute(select(stay_index).order_by(stay_index.c.stay_id)).all()
        parties = connection.execute(
            select(stay_parties).order_by(stay_parties.c.stay_id, stay_parties.c.hsa_id)
        ).all()
    return [tuple(r) for r in found], [tuple(p) for p in parties]


def test_the_read_model_is_rebuilt_from_zero_to_the_same_rows(system):
    admitted(system)
    admitted(system, discharged=True)
    index = system.sip_app.state.stay_index
    before = rows(index)
    assert before[0] and before[1]
    index.rebuild()
    assert rows(index) == before


def test_the_read_model_holds_no_personnummer_in_clear(system):
    stay_id, personnummer = admitted(system)
    found, parties = rows(system.sip_app.state.stay_index)
    flat = " ".join(str(value) for row in [*found, *parties] for value in row)
    assert personnummer not in flat and personnummer[2:] not in flat
    (mine,) = [row for row in found if row[0] == stay_id]
    assert mine[1] is not None  # the blind index: the patient's own stays are found by it


def test_a_search_right_after_a_write_sees_it(system):
    hospital = system.as_caller("professional", REGION).sip
    hospital.get("/fhir/Encounter")  # the read model caught up before the write
    stay_id, personnummer = admitted(system)
    found = hospital.get("/fhir/Encounter", params={"_count": 1000})
    assert found.status_code == 200, found.text
    assert stay_id in {e["resource"]["id"] for e in found.json().get("entry", [])}
    own = system.as_caller("patient", None, patient=personnummer).sip.get("/fhir/Encounter")
    assert [e["resource"]["id"] for e in own.json()["entry"]] == [stay_id]
    tasks = hospital.get("/fhir/Task", params={"encounter": f"Encounter/{stay_id}"})
    assert tasks.status_code == 200 and tasks.json()["total"] >= 1


def test_an_outsider_is_still_shown_nothing_the_index_narrows_only(system):
    """The municipality takes part in the stay (the index names it), the other region not:
    what each sees is the disclosure rule's answer, as before."""
    stay_id, _ = admitted(system)
    outsider = system.as_caller("professional", OTHER_REGION).sip
    searched = outsider.get("/fhir/Encounter", params={"_count": 1000}).json()
    assert stay_id not in {e["resource"]["id"] for e in searched.get("entry", [])}
    assert outsider.get(f"/fhir/Encounter/{stay_id}").status_code == 404
    tasks = outsider.get("/fhir/Task", params={"encounter": f"Encounter/{stay_id}"}).json()
    assert tasks["total"] == 0


class Loads:
    """Counts the stays loaded (the application's `aggregate_of`) while it is on."""

    def __init__(self, monkeypatch, plans):
        self.count = 0
        original = plans.aggregate_of

        def counted(*arguments, **keywords):
            self.count += 1
            return original(*arguments, **keywords)

        monkeypatch.setattr(plans, "aggregate_of", counted)

    def of(self, call):
        before = self.count
        call()
        return self.count - before


def test_the_stays_loaded_per_request_do_not_grow_with_other_organisations_stays(
    system, monkeypatch
):
    """The other region's searches, Task list and the clock's round load the same number of
    stays with 5 and with 50 stays of other organisations in the store."""
    mine, _ = admitted(system, OTHER_REGION)
    outsider = system.as_caller("professional", OTHER_REGION).sip
    state = system.sip_app.state
    loads = Loads(monkeypatch, state.plans)
    stays = stays_of(system)
    now = local("2026-03-02") + timedelta(hours=1)  # nothing due yet for the new ones

    def measured():
        return (
            loads.of(lambda: outsider.get("/fhir/Encounter", params={"_count": 1000})),
            loads.of(lambda: outsider.get("/fhir/Task")),
            loads.of(lambda: stays.check_deadlines(now=now)),
        )

    for _ in range(5):
        admitted(system)
    with_5 = measured()
    for _ in range(45):
        admitted(system)
    with_50 = measured()
    assert with_5 == with_50, (with_5, with_50)
    assert with_5[0] >= 1  # its own stay is loaded, and found
    found = outsider.get("/fhir/Encounter", params={"_count": 1000}).json()
    assert mine in {e["resource"]["id"] for e in found["entry"]}


OTHER_MUNICIPALITY = "SE2120000999-K0002"


def test_the_payment_report_loads_only_the_municipalitys_month(system, monkeypatch):
    """The stays of another municipality, or discharged in another month, are not loaded."""
    state = system.sip_app.state
    index = state.stay_index
    start, end = local("2026-03-01"), local("2026-04-01")
    ours = index.discharged_between(MUNICIPALITY, start, end)
    admitted(system, discharged=True)
    after = index.discharged_between(MUNICIPALITY, start, end)
    assert len(after) == len(ours) + 1  # caught up before answering
    assert index.discharged_between(MUNICIPALITY, end, end + timedelta(days=31)) == []
    municipality = system.as_caller("professional", MUNICIPALITY).sip
    loads = Loads(monkeypatch, state.plans)
    asked = {"municipality": MUNICIPALITY, "month": "2026-03"}

    def report():
        answered = municipality.get("/fhir/Encounter/$payment-report", params=asked)
        assert answered.status_code in (200, 422), answered.text

    before = loads.of(report)
    for _ in range(10):
        admitted(system, municipality=OTHER_MUNICIPALITY, discharged=True)
    assert loads.of(report) == before


def test_an_erased_persons_stays_leave_the_read_model_on_rebuild(system, monkeypatch):
    """`sip retention run` erases the person's keys and rebuilds the read models: their
    records are then never replayed (`person_erased`), and their rows go."""
    stay_id, personnummer = admitted(system)
    index = system.sip_app.state.stay_index
    assert stay_id in {row[0] for row in rows(index)[0]}
    plans = system.sip_app.state.plans
    kept = plans.person_erased
    monkeypatch.setattr(plans, "person_erased", lambda i: str(i) == stay_id or kept(i))
    index.rebuild()
    found, parties = rows(index)
    assert stay_id not in {row[0] for row in found} | {row[0] for row in parties}
    assert index.of_person(personnummer) == []
    monkeypatch.undo()
    index.rebuild()
    assert index.of_person(personnummer) == [UUID(stay_id)]


def test_the_clocks_candidates_shrink_once_a_stays_missed_deadlines_are_on_its_plan(system):
    """A deadline missed before the SIP was called is owed to the plan (`deviations_pending`)
    until the clock raises it there; then the stay is no candidate of the timed check, on the
    live read model and on one rebuilt from zero."""
    stays = stays_of(system)
    index = system.sip_app.state.stay_index
    ward, unit = f"{REGION}-W{uuid4().hex[:6]}", f"{PRIMARY}-VC{uuid4().hex[:6]}"
    hospital, care_contact = actor(REGION, ward), actor(PRIMARY, unit)
    at = local("2026-03-02")
    person = {"system": PERSONNUMMER_SYSTEM, "value": new_personnummer()}
    stay = stays.admit(subject=person, ward=ward, admitted_at=at, by=hospital)
    stays.judge_care_needed(stay.id, principals=["region", "municipality"], at=at, by=hospital)
    late = at + timedelta(hours=30)  # the admission notice was due after 24
    assert [d.duty for d in stays.record_missed_deadlines(stay.id, now=late)] == [
        "admission-notice"]  # fmt: skip
    stays.send_admission_notice(
        stay.id, estimated_discharge=at + timedelta(days=9), at=late, by=hospital,
        recipients=[{"organization": PRIMARY, "unit": unit, "kind": "primary-care"},
                    {"organization": MUNICIPALITY, "unit": "K-SOC", "kind": "social-services"}],
        judgement="LSU 2017:612: needed for the planning",
    )  # fmt: skip
    stays.name_care_contact(stay.id, name="S", already_existed=False, at=late, by=care_contact,
                            judgement="LSU")  # fmt: skip
    stays.notify_ready(stay.id, at=late + timedelta(hours=1), by=hospital, judgement="LSU")
    _, plan_id = stays.call_sip(stay.id, title="SIP", at=late + timedelta(hours=2),
                                by=care_contact, judgement="LSU")  # fmt: skip
    check = late + timedelta(hours=3)
    index.catch_up()
    assert stay.id in index.clock_due(check)  # nothing due, but a deviation owed to the plan
    assert stays.check_deadlines(now=check) == 0  # none newly missed ...
    [deviation] = stays.plans.aggregate(plan_id).deviations.values()  # ... one raised
    assert deviation.source["duty"] == "admission-notice"
    index.catch_up()
    assert stay.id not in index.clock_due(check)
    assert stay.id not in index.clock_due(check + timedelta(hours=1))
    index.rebuild()
    assert stay.id not in index.clock_due(check + timedelta(hours=1))
    # The next round raises nothing again: the plan keeps its one deviation.
    stays.check_deadlines(now=check + timedelta(hours=2))
    assert len(stays.plans.aggregate(plan_id).deviations) == 1
