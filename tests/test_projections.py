"""Read models are projections of the event log: rebuilt from zero they equal the live ones."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.consent.projections import ConsentIndex, consent_index, consent_terms
from services.ops.offline import open_service
from services.sip.projections import plan_consents, plan_index, plan_organizations
from tests.fhir_data import (
    FHIR_JSON,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    withdrawal,
)


def rows(index, table):
    with index.engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(table)))


def test_rebuilt_read_models_equal_the_live_ones(fresh_system):
    """The whole log is rebuilt and counted: on services of its own."""
    system = fresh_system
    for number in range(6):
        personnummer = new_personnummer()
        given = system.consent.post(
            "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
        ).json()
        plan = system.sip.post(
            "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
        ).json()
        if number % 2:
            prepare_for_activation(system.sip, plan["id"])
            system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
        if number % 3 == 0:
            system.consent.post(
                f"/fhir/Consent/{given['id']}/$withdraw", json=withdrawal(), headers=FHIR_JSON
            )
    assert system.sip.get("/fhir/CarePlan", params={"status": "active"}).json()["total"] >= 3
    # The SIP service notes withdrawals on the plans as it follows the consent log.
    system.settle()

    for index, tables in (
        (system.sip_app.state.index, (plan_index, plan_organizations, plan_consents)),
        (system.consent_app.state.index, (consent_index, consent_terms)),
    ):
        index.catch_up()  # what the next query would see
        live = [rows(index, table) for table in tables]
        recorder = index.application.recorder
        head = recorder.max_notification_id()
        logged = len(recorder.select_notifications(start=1, limit=1_000_000))
        assert index.position() <= head  # access records after the last plan event pass over
        assert index.rebuild() == logged  # the whole log, read again from position zero
        # A consent given and withdrawn in one batch keeps its terms; a plan's related rows
        # are those of its newest version.
        assert [rows(index, table) for table in tables] == live
        assert index.position() == head


def test_a_replica_finds_what_another_replica_wrote_and_applied_since_it_last_looked(backend):
    """A read model looks only at the events after the position it knows to be applied (it no
    longer reads the tracking row each query); what another replica wrote and applied since
    shows up there, and the next query finds it, before and after the tracking row moved."""
    url = backend.database_urls["consent"]
    with (
        open_service("consent", backend.data_dir, url) as first,
        open_service("consent", backend.data_dir, url) as second,
    ):
        here, there = (ConsentIndex(s.application, s.engine) for s in (first, second))
        people = [new_personnummer() for _ in range(3)]
        give(first.application, people[0])
        assert len(here.search(patient=(PERSONNUMMER_SYSTEM, people[0]))) == 1
        give(second.application, people[1])  # written there, not yet applied by anyone
        first.application.record_access(**ACCESS)  # and an event here after it
        assert len(here.search(patient=(PERSONNUMMER_SYSTEM, people[1]))) == 1
        give(second.application, people[2])
        assert len(there.search(patient=(PERSONNUMMER_SYSTEM, people[2]))) == 1  # applied there
        assert len(here.search(patient=(PERSONNUMMER_SYSTEM, people[2]))) == 1
        assert here.position() == there.position()
        # It knows where that left the read model: the next query looks after it only.
        assert here._accounted_for == here.position()


ACCESS = {
    "interaction": "read", "action": "R", "outcome": "0", "actor": {"subject": "test"},
    "patient": None, "custodian": None, "entity": None, "consents": [], "query": None,
    "detail": "test", "recorded_at": datetime.now(UTC),
}  # fmt: skip


def give(application, personnummer):
    patient = {"system": PERSONNUMMER_SYSTEM, "value": personnummer}
    now = datetime.now(UTC)
    application.give(
        patient=patient, kind="permit", scope="patient-privacy", categories=["sip-plan"],
        performer=[{"identifier": patient}], givers=[{"role": "person"}], form="written",
        organizations=["SE2321000032-R1"], recipients=[], sources=[], exclusions=[],
        period_start=now - timedelta(days=1), period_end=None, given_at=now,
        recorded_by={"subject": "test", "role": "coordinator"},
    )  # fmt: skip
