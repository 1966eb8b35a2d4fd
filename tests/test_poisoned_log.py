"""Events stored before validation refused them (a null HSA-id, a null need text, a NUL byte
in an access record) can never be removed from the log: they are read, shown and projected
without error, and a read model that still fails on one event passes it over, records it and
goes on, while the other read models are unaffected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.cli import main as sip
from services.common.access_log_views import AccessLogIndex
from services.common.persistence import read_model_engine, storage_for
from services.common.projection import projection_failures
from services.sip.application import SipPlans
from services.sip.projections import PlanIndex, plan_index
from tests.conftest import running_system
from tests.fhir_data import FHIR_JSON, REGION, care_plan, new_personnummer, started_by_region
from tests.test_audit import storage_arguments

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": REGION, "unit": None}


def start_plan(plans: SipPlans, personnummer: str) -> Any:
    return plans.start(**started_by_region(personnummer, at=NOW, by=BY, title="SIP", region=REGION))


def store_poisoned_events(backend: Any, personnummer: str) -> str:
    """What a route that forgot to validate stored, written with today's event classes past
    the commands that now refuse it; returns the plan's id."""
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    try:
        plan = start_plan(plans, personnummer)
        plan._organization_invited(hsa_id=None, kind="municipality", name=None, at=NOW, by=BY)
        plan._need_recorded(need_id="need-1", text=None, wishes=None, at=NOW, by=BY)
        plan._goal_set(goal_id="goal-1", text=None, target_date=None, need_ids=[], at=NOW, by=BY)
        plans.save(plan)
        plans.record_access(
            interaction="read",
            action="R",
            outcome="0",
            actor=BY,
            patient={"system": PERSONNUMMER_SYSTEM, "value": personnummer},
            custodian=REGION,
            entity=f"Goal/{plan.id}-goal-\x00",
            consents=[],
            query=None,
            detail=None,
            recorded_at=NOW,
        )
        return str(plan.id)
    finally:
        plans.close()


def test_a_data_folder_holding_null_events_serves_search_and_rebuilds_cleanly(backend, capsys):
    personnummer = new_personnummer()
    plan_id = store_poisoned_events(backend, personnummer)
    with running_system(backend) as system:
        found = system.sip.get("/fhir/CarePlan", params={"subject:identifier": personnummer})
        assert found.status_code == 200, found.text
        assert [entry["resource"]["id"] for entry in found.json()["entry"]] == [plan_id]
        assert system.sip.get("/fhir/CarePlan").status_code == 200
        shown = system.sip.get(f"/fhir/CarePlan/{plan_id}")
        assert shown.status_code == 200, shown.text
        audit = system.as_caller("auditor").sip.get("/fhir/AuditEvent")
        assert audit.status_code == 200, audit.text
        ready = system.sip.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}

    arguments = storage_arguments(backend)
    assert sip(["audit", "verify", *arguments]) == 0
    assert sip(["projections", "rebuild", "--check", *arguments]) == 0
    assert sip(["projections", "status", *arguments]) == 0
    printed = capsys.readouterr().out
    assert "sip/plan_index: at position" in printed
    assert "0 failed event(s)" in printed and "FAILED" not in printed


class FailingOnNeeds(PlanIndex):
    """A plan index with a bug: it cannot apply a recorded need."""

    def apply(self, connection: Any, event: Any) -> None:
        if type(event).__name__ == "NeedRecorded":
            raise ValueError(f"cannot show {event.text}")  # quotes the event, as bugs do
        super().apply(connection, event)


@pytest.mark.parametrize("backend_kind", ["sqlite"], indirect=True)
def test_a_projection_failing_on_one_event_records_it_and_keeps_going(backend):
    storage = storage_for("sip", None, backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    engine = read_model_engine(storage)
    try:
        first, second = start_plan(plans, new_personnummer()), start_plan(plans, new_personnummer())
        first.record_need(text="Jag vill bo hemma 19121212-1212", wishes=None, at=NOW, by=BY)
        first.set_goal(text="Bo hemma", target_date=None, need_ids=[], at=NOW, by=BY)
        plans.save(first)
        plans.record_access(
            interaction="read", action="R", outcome="0", actor=BY, patient=None,
            custodian=REGION, entity=f"CarePlan/{first.id}", consents=[], query=None,
            detail=None, recorded_at=NOW,
        )  # fmt: skip
        index, access_log = FailingOnNeeds(plans, engine), AccessLogIndex(plans, engine)

        assert set(index.search()) == {first.id, second.id}
        (failed,) = index.failed_events()
        assert (failed.originator_id, failed.originator_version) == (str(first.id), 2)
        assert failed.topic.endswith("Plan.NeedRecorded")
        assert failed.error_type == "ValueError" and "19121212" not in failed.error
        # It passed over that one event only: the goal set after it is in the index.
        with engine.connect() as connection:
            version = connection.execute(
                select(plan_index.c.version).where(plan_index.c.plan_id == str(first.id))
            ).scalar_one()
        assert version == 3
        assert index.position() == plans.recorder.max_notification_id()
        # The other read model is unaffected and has failed on nothing.
        assert len(access_log.search()) == 1 and access_log.failed_events() == []
        # A rebuild starts the record afresh.
        index.rebuild()
        with engine.connect() as connection:
            assert len(connection.execute(select(projection_failures)).all()) == 1
    finally:
        engine.dispose()
        plans.close()


def test_an_event_a_read_model_fails_on_is_reported_by_readyz_status_and_rebuild(
    fresh_system, monkeypatch, capsys
):
    system = fresh_system
    plan_applies = PlanIndex.apply

    def failing_on_needs(index: PlanIndex, connection: Any, event: Any) -> None:
        if type(event).__name__ == "NeedRecorded":
            raise ValueError("a bug in the read model")
        plan_applies(index, connection, event)

    monkeypatch.setattr(PlanIndex, "apply", failing_on_needs)
    personnummer = new_personnummer()
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    plan_id = plan.json()["id"]
    need = system.sip.post(
        f"/fhir/CarePlan/{plan_id}/$record-need",
        json={"resourceType": "Parameters",
              "parameter": [{"name": "text", "valueString": "Bo hemma"}]},
        headers=FHIR_JSON,
    )  # fmt: skip
    assert need.status_code == 200, need.text
    found = system.sip.get("/fhir/CarePlan", params={"subject:identifier": personnummer})
    assert [entry["resource"]["id"] for entry in found.json()["entry"]] == [plan_id]

    ready = system.sip.get("/readyz")
    assert ready.status_code == 200
    (failed,) = ready.json()["failedEvents"]
    assert failed["projection"] == "plan_index" and failed["aggregateId"] == plan_id
    assert failed["topic"].endswith("Plan.NeedRecorded") and failed["errorType"] == "ValueError"
    assert system.consent.get("/readyz").json() == {"status": "ready"}

    arguments = storage_arguments(system.backend)
    assert sip(["projections", "status", *arguments]) == 1
    printed = capsys.readouterr().out
    assert "sip/plan_index: " in printed and "1 failed event(s)" in printed
    assert f"FAILED event at position {failed['position']} (NeedRecorded of {plan_id}" in printed
    assert sip(["projections", "rebuild", "--check", *arguments]) == 1
    printed = capsys.readouterr().out
    assert "sip/plan_index: equal to a rebuild" in printed and "FAILED event" in printed


@pytest.mark.parametrize(
    ("operation", "parameter"),
    [
        ("invite-organization", {"name": "organization", "valueString": None}),
        ("record-need", {"name": "text", "valueString": None}),
        ("set-goal", {"name": "text", "valueString": None}),
        ("schedule-meeting", {"name": "start", "valueDateTime": None}),
        ("set-follow-up", {"name": "date", "valueDate": None}),
    ],
)
def test_a_null_parameter_is_refused_and_nothing_is_stored(system, operation, parameter):
    personnummer = new_personnummer()
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    plan_id, version = plan.json()["id"], plan.json()["meta"]["versionId"]
    others = {
        "invite-organization": [{"name": "kind", "valueCode": "municipality"}],
        "schedule-meeting": [
            {"name": "end", "valueDateTime": "2027-01-01T10:00:00+01:00"},
            {"name": "location", "valueString": "Vårdcentralen"},
        ],
    }.get(operation, [])
    refused = system.sip.post(
        f"/fhir/CarePlan/{plan_id}/${operation}",
        json={"resourceType": "Parameters", "parameter": [parameter, *others]},
        headers=FHIR_JSON,
    )
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert system.sip.get(f"/fhir/CarePlan/{plan_id}").json()["meta"]["versionId"] == version
    assert system.sip.get("/fhir/CarePlan").status_code == 200


def test_a_command_the_domain_refuses_is_a_422_naming_the_element():
    """Where a route forgot to validate, the aggregate's refusal still reaches the client as
    an OperationOutcome, and nothing is written."""
    from fastapi import FastAPI

    from services.common.fhir_api import install_error_handlers
    from tests.servers import http_client, serve
    from tests.test_sip_domain import ready

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/need")
    def record_need_without_validation() -> None:
        ready().record_need(text=None, wishes=None, at=NOW, by=BY)

    with serve(app) as url, http_client(url) as client:
        answer = client.post("/need")
    assert answer.status_code == 422
    (issue,) = answer.json()["issue"]
    assert issue["code"] == "invalid" and issue["diagnostics"].startswith("text:")
    assert issue["details"]["coding"][0]["code"] == "invalid-command"


@pytest.mark.parametrize("backend_kind", ["sqlite"], indirect=True)
def test_the_consent_feed_passes_over_an_event_it_cannot_handle_and_records_it(backend):
    from services.common.projection import failed_events
    from services.sip.consent_feed import FEED, ConsentFeedFollower

    class ForgetfulIndex:
        """Plans relying on a consent; one consent's lookup fails."""

        def relying_on(self, consent_id: str) -> list[str]:
            if consent_id == "c0ffee":
                raise KeyError("a consent no plan index knows")
            return []

    storage = storage_for("sip", None, backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    engine = read_model_engine(storage)
    follower = ConsentFeedFollower(
        consent_url="http://127.0.0.1:9", token_source=lambda: "", plans=plans,
        index=ForgetfulIndex(), engine=engine, cache=None,
    )  # fmt: skip
    try:
        withdrawn = "services.consent.domain:Consent.Withdrawn"
        for position, consent_id in ((7, "c0ffee"), (8, "decaf")):
            follower._handle_or_record(
                {"position": position, "aggregate_id": consent_id, "version": 2,
                 "type": withdrawn, "payload": {}}
            )  # fmt: skip
        (failed,) = failed_events(engine)
        assert (failed.projection, failed.position, failed.error_type) == (FEED, 7, "KeyError")
    finally:
        follower._client.close()
        engine.dispose()
        plans.close()
