"""Read models are projections of the event log: rebuilt from zero they equal the live ones."""

from sqlalchemy import select

from services.consent.projections import consent_index, consent_terms
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
