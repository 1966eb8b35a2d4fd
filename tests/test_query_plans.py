"""Every hot query finds its rows through an index: none reads a whole table that grows with
the registry (issue 15: a request's cost must not grow with the store).

The read models' queries are the ones the code sends, caught as it runs (catching up, the
searches, the access log, the business-identifier lookups, projection tracking); the event
store's are the library's and the hash chain's, written out below. Each is explained on the
database it ran on: `EXPLAIN QUERY PLAN` on SQLite, where a `SCAN` of a growing table fails;
`EXPLAIN` on PostgreSQL with sequential scans priced out (so a small test table does not make
one the cheapest plan), where a sequential scan, or an index scan with no condition, fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from contracts.consent_decision import ConsentCheckRequest
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.access_log import WriteContext, writing
from services.common.access_log_views import AccessLogIndex
from services.common.business_identifiers import BusinessIdentifier, IdentifierClaims
from services.common.persistence import read_model_engine, storage_for
from services.common.settings import SERVICE_HSA_ID, SERVICE_SUBJECT
from services.sip.application import SipPlans
from services.sip.discharge.application import Stays
from services.sip.discharge.projections import StayIndex
from services.sip.messages.projections import MessageIndex
from services.sip.projections import PlanIndex
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    consent,
    new_personnummer,
    started_by_region,
    withdrawal,
)

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
BY = {"subject": "anna", "role": "coordinator", "organization": REGION, "unit": None}
# Tables whose size does not grow with the registry: one row per read model, or per migration.
BOUNDED = {"projection_tracking", "sip_schema_version", "consent_schema_version"}
PLANS = 12


@contextmanager
def caught(engine: Engine) -> Iterator[dict[str, Any]]:
    """The statements sent through `engine` meanwhile, each once, with its parameters."""
    statements: dict[str, Any] = {}

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, _c: Any, many: bool):
        if not many and statement.lstrip().split(None, 1)[0].upper() in (
            "SELECT", "UPDATE", "DELETE",
        ):  # fmt: skip
            statements.setdefault(statement, parameters)

    event.listen(engine, "before_cursor_execute", catch)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", catch)


def full_scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The growing tables the statement's plan reads whole."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [
                detail
                for detail in (row[3] for row in plan)
                if detail.startswith("SCAN ")
                and detail.split()[1] not in BOUNDED
                and not _newest_row(statement)
            ]
        connection.exec_driver_sql("SET enable_seqscan = off")
        (plan,) = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).one()
        connection.rollback()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return list(_postgres_full_scans(plan[0]["Plan"], under_limit=False))


def _newest_row(statement: str) -> bool:
    """`SELECT ... ORDER BY <key> DESC LIMIT 1` with no condition: reads one row in the
    key's order and stops (the chain's log head)."""
    normalised = " ".join(statement.upper().split())
    return " WHERE " not in normalised and normalised.endswith("DESC LIMIT 1")


def _postgres_full_scans(node: dict[str, Any], *, under_limit: bool) -> Iterator[str]:
    table = node.get("Relation Name")
    if table and table not in BOUNDED and not table.startswith("pg_"):  # not the catalogue
        if node["Node Type"] == "Seq Scan":
            yield f"Seq Scan on {table}"
        elif "Index" in node["Node Type"] and "Index Cond" not in node and not under_limit:
            yield f"{node['Node Type']} on {table} with no condition"
    for child in node.get("Plans", []):
        yield from _postgres_full_scans(child, under_limit=node["Node Type"] == "Limit")


def event_store_queries(dialect: str, application: Any, plan_id: str) -> list[tuple[str, Any]]:
    """The library's queries for one aggregate and for the log's next page, and the hash
    chain's heads (services/common/audit/chain.py), as they send them."""
    recorder = application.recorder
    if dialect == "sqlite":
        events, chain = recorder.events_table_name, recorder.chain_table
        return [
            (f"SELECT * FROM {events} WHERE originator_id=? AND originator_version>? "
             "ORDER BY originator_version ASC", (plan_id, 1)),
            (f"SELECT rowid, * FROM {events} WHERE rowid>? ORDER BY rowid LIMIT ?", (0, 10)),
            (f"SELECT MAX(rowid) FROM {events}", ()),
            (f"SELECT stream_hash FROM {chain} WHERE originator_id = ? "
             "ORDER BY originator_version DESC LIMIT 1", (plan_id,)),
            (f"SELECT log_hash FROM {chain} ORDER BY notification_id DESC LIMIT 1", ()),
        ]  # fmt: skip
    events, chain = f"public.{recorder.events_table_name}", f"public.{recorder.chain_table}"
    return [
        (f"SELECT * FROM {events} WHERE originator_id = %s AND originator_version > %s "
         "ORDER BY originator_version ASC", (plan_id, 1)),
        (f"SELECT * FROM {events} WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
         (0, 10)),
        (f"SELECT MAX(notification_id) FROM {events}", ()),
        (f"SELECT stream_hash FROM {chain} WHERE originator_id = %s "
         "ORDER BY originator_version DESC LIMIT 1", (plan_id,)),
        (f"SELECT log_hash FROM {chain} ORDER BY notification_id DESC LIMIT 1", ()),
    ]  # fmt: skip


def write_plans(plans: SipPlans, engine: Engine) -> list[Any]:
    """Plans with members, a responsible organisation, a consent and a business identifier,
    each change with its access record, as the API writes them."""
    written = []
    for number in range(PLANS):
        with writing(WriteContext(BY, "create", "CarePlan", NOW)):
            plan = plans.aggregate_class(
                **started_by_region(new_personnummer(), at=NOW, by=BY, title="SIP", region=REGION)
            )
            claims = IdentifierClaims(
                "CarePlan", REGION, [BusinessIdentifier("urn:x-test", f"plan-{number}")], engine
            )
            claims.save(plans, plan)
        with writing(WriteContext(BY, "operation", "CarePlan", NOW)):
            plans.change(
                plan.id,
                lambda plan: plan.invite_organization(
                    hsa_id=MUNICIPALITY, kind="municipality", name=None, at=NOW, by=BY
                ),
            )
            plans.change(
                plan.id,
                lambda plan: plan.record_need(text="Hemma", wishes=None, at=NOW, by=BY),
            )
        written.append(plan)
    return written


@pytest.fixture
def sip_store(backend: Any) -> Iterator[tuple[SipPlans, Engine]]:
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    engine = read_model_engine(storage)
    try:
        yield plans, engine
    finally:
        engine.dispose()
        plans.close()


def test_no_hot_query_of_the_sip_service_reads_a_whole_growing_table(sip_store):
    plans, engine = sip_store
    written = write_plans(plans, engine)
    plan = written[PLANS // 2]
    person = (PERSONNUMMER_SYSTEM, plan.subject["value"])
    index, log = PlanIndex(plans, engine), AccessLogIndex(plans, engine)
    with caught(engine) as statements:
        index.catch_up()
        log.catch_up()
        with writing(WriteContext(BY, "operation", "CarePlan", NOW)):
            plans.change(plan.id, lambda p: p.record_need(text="Mer", wishes=None, at=NOW, by=BY))
        index.catch_up()  # an update of one plan's rows, not a creation
        index.search(subject=person)
        index.search(member=MUNICIPALITY)
        index.search(responsible=REGION)
        index.search(invitation_pending=MUNICIPALITY)
        index.search(identifier=BusinessIdentifier("urn:x-test", "plan-3"))
        index.relying_on("a-consent-id")
        index.failed_events()
        IdentifierClaims(
            "CarePlan", REGION, [BusinessIdentifier("urn:x-test", "plan-3")], engine
        ).existing()
        log.search(patient_value=person[1])
        log.search(entity_prefix=f"CarePlan/{plan.id}/_history/")
        log.page(REGION, [[{"patient_value": person[1]}]], {}, 10)  # AuditEvent?patient=
        log.page(REGION, [[{"user_id": "anna", "since": NOW}]], {}, 10, with_total=False)
        log.search(auditor_organization=REGION, patient_value=person[1])
    tables = " ".join(statements)
    for table in (
        *("plan_index", "plan_organizations", "plan_consents", "access_log"),
        *("business_identifiers", "projection_tracking", "projection_failures"),
    ):
        assert table in tables, f"no query of {table} was caught"
    queries = [*statements.items(), *event_store_queries(engine.dialect.name, plans, str(plan.id))]
    scans = {
        statement: found
        for statement, parameters in queries
        if (found := full_scans(engine, statement, parameters))
    }
    assert scans == {}


def test_no_hot_query_of_the_consent_service_reads_a_whole_growing_table(fresh_system):
    """Over HTTP: consents given and withdrawn, found, checked and audited."""
    system = fresh_system
    registry = system.consent_app.state.registry
    engine = system.consent_app.state.index.engine
    peer = system.as_caller("integration", organization=SERVICE_HSA_ID, subject=SERVICE_SUBJECT)
    auditor = system.as_caller("auditor")
    with caught(engine) as statements:
        for number in range(4):
            person = new_personnummer()
            given = system.consent.post("/fhir/Consent", json=consent(person), headers=FHIR_JSON)
            assert given.status_code == 201, given.text
            check = ConsentCheckRequest(
                patient_system=PERSONNUMMER_SYSTEM, patient_value=person, actor=MUNICIPALITY,
                source=REGION, category="sip-plan",
            )  # fmt: skip
            checked = peer.consent.post("/fhir/Consent/$check", json=check.to_parameters())
            assert checked.status_code == 200, checked.text
            if number % 2:
                withdrawn = system.consent.post(
                    f"/fhir/Consent/{given.json()['id']}/$withdraw",
                    json=withdrawal(),
                    headers=FHIR_JSON,
                )
                assert withdrawn.status_code == 200, withdrawn.text
            for query in (
                {"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{person}"},
                {"actor": f"{HSA_ID_SYSTEM}|{MUNICIPALITY}", "category": "sip-plan"},
            ):
                assert system.consent.get("/fhir/Consent", params=query).status_code == 200
            audited = auditor.consent.get(
                "/fhir/AuditEvent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{person}"}
            )
            assert audited.status_code == 200, audited.text
    tables = " ".join(statements)
    for table in ("consent_index", "consent_terms", "access_log", "projection_tracking"):
        assert table in tables, f"no query of {table} was caught"
    assert "UPDATE consent_index" in tables  # a withdrawal applied
    queries = [
        *statements.items(),
        *event_store_queries(engine.dialect.name, registry, given.json()["id"]),
    ]
    scans = {
        statement: found
        for statement, parameters in queries
        if (found := full_scans(engine, statement, parameters))
    }
    assert scans == {}


def test_no_hot_query_of_the_stays_and_messages_read_models_reads_a_whole_table(sip_store):
    """The stays' and messages' read models (services/sip/discharge/projections.py,
    services/sip/messages/projections.py): catching up, the candidates of a caller, of a
    patient, of a municipality's month, of the clock's round. (No message is written here:
    the queries' plans are what is checked.)"""
    plans, engine = sip_store
    stays = Stays(plans, consent_gate=None)  # type: ignore[arg-type]
    hospital = {**BY, "unit": f"{REGION}-W1"}
    written = []
    for _ in range(PLANS):
        with writing(WriteContext(BY, "operation", "Encounter", NOW)):
            person = {"system": PERSONNUMMER_SYSTEM, "value": new_personnummer()}
            stay = stays.admit(subject=person, ward=f"{REGION}-W1", admitted_at=NOW, by=hospital)
            stays.judge_care_needed(stay.id, principals=["region"], at=NOW, by=hospital)
        written.append(stay)
    index = StayIndex(plans, engine)
    with caught(engine) as statements:
        index.catch_up()
        with writing(WriteContext(BY, "operation", "Encounter", NOW)):
            stays.discharge(written[3].id, at=NOW, by=hospital)
        index.catch_up()  # an update of one stay's rows
        index.concerning(REGION)
        index.of_person(written[2].subject["value"])
        index.discharged_between(MUNICIPALITY, NOW, NOW + timedelta(days=31))
        index.clock_due(NOW)
        messages = MessageIndex(plans, engine)
        messages.catch_up()
        messages.concerning(MUNICIPALITY)
        messages.of_person(written[2].subject["value"])
    tables = " ".join(statements)
    for table in ("stay_index", "stay_parties", "message_index", "message_parties"):
        assert table in tables, f"no query of {table} was caught"
    scans = {
        statement: found
        for statement, parameters in statements.items()
        if (found := full_scans(engine, statement, parameters))
    }
    assert scans == {}
