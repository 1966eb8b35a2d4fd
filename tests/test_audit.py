"""Auditors: the hash chain catches an edited, removed or cut-off event, over HTTP and in the
database, on SQLite and PostgreSQL (an edited content only where the hashes are recomputed
from the contents: in the database, or over HTTP for a reader granted the whole log); replay
and export read without knowing the code; read models rebuilt from zero equal the live ones,
and a tampered read model is reported."""

import json

import pytest
from sqlalchemy import text

from services.cli import main as sip
from services.common.persistence import SQLITE_IMMEDIATE, read_model_engine, storage_for
from services.common.settings import SERVICE_SUBJECT
from services.ops.offline import SERVICES
from tests.conftest import running_system
from tests.fhir_data import (
    FHIR_JSON,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    withdrawal,
)


def run_workload(system):
    """A scripted workload: consents given and withdrawn, plans started and activated."""
    plans = []
    for number in range(4):
        personnummer = new_personnummer()
        given = system.consent.post(
            "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
        ).json()
        plan = system.sip.post(
            "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
        ).json()
        prepare_for_activation(system.sip, plan["id"])
        system.sip.post(f"/fhir/CarePlan/{plan['id']}/$activate")
        system.sip.get(f"/fhir/CarePlan/{plan['id']}")
        if number % 2:
            system.consent.post(
                f"/fhir/Consent/{given['id']}/$withdraw", json=withdrawal(), headers=FHIR_JSON
            )
        plans.append((plan["id"], personnummer))
    system.settle()  # the withdrawals are noted on the plans: the log is still from here on
    return plans


@pytest.fixture(scope="module")
def workload(system):
    """The workload on the module's services, the only plans and consents they hold: the
    tests that use it read the whole log and add nothing to it but the records of their
    reads (the read-model test repairs what it breaks)."""
    return run_workload(system)


# A reader the services' configuration grants the whole log (besides the SIP service, which
# follows the consent service's).
LOG_READER = "log-reader"


def log_reader_token(system):
    return system.token("integration", subject=LOG_READER, scopes=("system/Event.rs",))


@pytest.fixture
def tampered(backend):
    """A workload on services of its own, for a test that tampers with the stored log."""
    with running_system(backend, whole_log_readers=(SERVICE_SUBJECT, LOG_READER)) as system:
        run_workload(system)
        yield system


def storage_arguments(backend):
    arguments = ["--data-dir", str(backend.data_dir)]
    for service in ("sip", "consent"):
        if backend.database_urls[service]:
            arguments += [f"--{service}-database-url", backend.database_urls[service]]
    return arguments


def stored_events(backend, service, application):
    """(engine, events table, position column) of a service's event store."""
    engine = read_model_engine(
        storage_for(service, backend.database_urls[service], backend.data_dir)
    )
    position = "rowid" if engine.dialect.name == "sqlite" else "notification_id"
    return engine, application.recorder.events_table_name, position


def tampering(engine):
    """A transaction that takes SQLite's write lock up front: one that reads first could not
    write after the services' own writes meanwhile ("database is locked")."""
    return engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin()


def test_an_intact_log_verifies_in_the_database_and_over_http(system, workload, capsys):
    assert sip(["audit", "verify", *storage_arguments(system.backend)]) == 0
    printed = capsys.readouterr().out
    assert "sip: intact" in printed and "consent: intact" in printed
    token = system.token("auditor")
    assert sip(["audit", "verify", "--url", system.sip_url, "--token", token]) == 0
    assert "intact" in capsys.readouterr().out
    # Recomputing from the contents over HTTP needs the whole log, which no auditor has by
    # default; a record system does not read the hash view.
    assert sip(["audit", "verify", "--url", system.sip_url, "--token", token, "--full"]) == 2
    assert "whole log" in capsys.readouterr().err
    record_system = system.token("integration", scopes=("system/Event.rs",))
    assert sip(["audit", "verify", "--url", system.sip_url, "--token", record_system]) == 2
    assert "refused: 403" in capsys.readouterr().err


def test_a_one_byte_edit_of_a_stored_event_is_caught(tampered, backend, capsys):
    system = tampered
    engine, table, position = stored_events(backend, "sip", system.sip_app.state.plans)
    with tampering(engine) as connection:
        target, state = connection.execute(
            text(f"SELECT {position}, state FROM {table} ORDER BY {position} LIMIT 1 OFFSET 5")
        ).one()
        edited = bytearray(state)
        edited[edited.index(b'"') + 1] ^= 0x01  # one byte of the stored JSON
        connection.execute(
            text(f"UPDATE {table} SET state = :state WHERE {position} = :position"),
            {"state": bytes(edited), "position": target},
        )
    engine.dispose()
    assert sip(["audit", "verify", "--service", "sip", *storage_arguments(backend)]) == 1
    printed = capsys.readouterr().out
    assert f"sip: BROKEN at position {target}" in printed
    assert "changed" in printed
    full = ["--full", "--token", log_reader_token(system)]
    assert sip(["audit", "verify", "--url", system.sip_url, *full]) == 1
    assert f"BROKEN at position {target}" in capsys.readouterr().out
    # The hash view carries no contents: an auditor's check over HTTP cannot see the edit,
    # and says so (docs/audit.md).
    token = system.token("auditor")
    assert sip(["audit", "verify", "--url", system.sip_url, "--token", token]) == 0
    assert "needs --full or the database" in capsys.readouterr().out


def test_a_removed_event_is_caught(tampered, backend, capsys):
    system = tampered
    engine, table, position = stored_events(backend, "consent", system.consent_app.state.registry)
    with tampering(engine) as connection:
        target = connection.execute(
            text(f"SELECT {position} FROM {table} ORDER BY {position} LIMIT 1 OFFSET 3")
        ).scalar_one()
        connection.execute(text(f"DELETE FROM {table} WHERE {position} = :p"), {"p": target})
    engine.dispose()
    assert sip(["audit", "verify", "--service", "consent", *storage_arguments(backend)]) == 1
    assert f"consent: BROKEN at position {target}" in capsys.readouterr().out
    # An auditor of another organisation finds it from the hash view, without any content.
    outsider = system.token("auditor", organization="SE5560000000-OUTSIDE")
    assert sip(["audit", "verify", "--url", system.consent_url, "--token", outsider]) == 1
    printed = capsys.readouterr().out
    assert f"BROKEN at position {target}" in printed and "removed" in printed


def test_cutting_off_the_newest_events_is_caught_by_a_signed_checkpoint(
    tampered, backend, tmp_path, capsys
):
    system = tampered
    auditor = system.as_caller("auditor")
    checkpoint = auditor.sip.get("/events/checkpoint").json()
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(checkpoint))
    arguments = ["audit", "verify", "--service", "sip", "--checkpoint", str(saved)]
    assert sip([*arguments, *storage_arguments(backend)]) == 0
    engine, table, position = stored_events(backend, "sip", system.sip_app.state.plans)
    chain = system.sip_app.state.plans.recorder.chain_table
    with tampering(engine) as connection:  # a careful forger removes events and links alike
        for name, column in ((table, position), (chain, "notification_id")):
            connection.execute(
                text(f"DELETE FROM {name} WHERE {column} >= :cut"),
                {"cut": checkpoint["position"] - 1},
            )
    engine.dispose()
    capsys.readouterr()
    assert sip([*arguments, *storage_arguments(backend)]) == 1
    assert "cut off" in capsys.readouterr().out
    # Over HTTP, from the hash view, an auditor without the whole log finds it as well.
    over_http = ["--url", system.sip_url, "--token", system.token("auditor")]
    assert sip(["audit", "verify", "--checkpoint", str(saved), *over_http]) == 1
    assert "BROKEN" in capsys.readouterr().out
    forged = {**checkpoint, "jws": checkpoint["jws"][:-4] + "AAAA"}
    saved.write_text(json.dumps(forged))
    assert sip([*arguments, *storage_arguments(backend)]) == 1
    assert "checkpoint refused" in capsys.readouterr().err


def test_an_auditor_replays_their_organisations_share_of_the_log_from_position_zero(
    system, workload
):
    auditor = system.as_caller("auditor")
    events, after, head = [], 0, None
    while head is None or after < head:
        page = auditor.sip.get("/events", params={"after": after, "limit": 7}).json()
        head = page["head"] if head is None else head  # reading it logs more after this
        events += [e for e in page["events"] if e["position"] <= head]
        after = page["next"]
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions)) and positions[-1] <= head
    started = [e for e in events if e["type"].endswith("Plan.Started")]
    assert {e["aggregate_id"] for e in started} == {plan_id for plan_id, _ in workload}
    assert all(e["author"]["role"] == "coordinator" for e in started)


def test_the_event_feed_is_for_auditors_and_systems_and_each_read_is_logged(system, workload):
    assert system.sip.get("/events").status_code == 403  # a coordinator may not replay all
    with_scope = system.as_caller("coordinator", scopes=("user/Event.rs", "user/*.rs"))
    assert with_scope.sip.get("/events").status_code == 403  # nor with the scope
    integration = system.as_caller("integration", scopes=("system/Event.rs",))
    consents = integration.consent.get("/events", params={"type": "Consent"}).json()
    assert {e["type"].rsplit(":", 1)[1] for e in consents["events"]} == {
        "Consent.Given", "Consent.Withdrawn"
    }  # fmt: skip
    assert consents["next"] == consents["head"]  # a short page has seen up to the head
    bad = integration.consent.get("/events", params={"type": "Nonsense"})
    assert bad.status_code == 400
    after_head = {"type": "Consent", "after": consents["next"]}
    nothing_new = integration.consent.get("/events", params=after_head).json()
    assert nothing_new["events"] == []
    # Each person whose events a page disclosed has a record of it, naming the reader.
    _, personnummer = workload[0]
    extract = (
        system.as_caller("auditor")
        .consent.get(
            "/fhir/AuditEvent", params={"patient:identifier": personnummer, "_count": 1000}
        )
        .json()
    )
    feed_reads = [
        entry["resource"] for entry in extract["entry"]
        if entry["resource"]["subtype"][0]["code"] == "event-feed"
    ]  # fmt: skip
    readers = sorted(read["agent"][0]["who"]["identifier"]["value"] for read in feed_reads)
    assert readers == ["integration-1", "sip-service"]  # and the SIP service following it


def test_replay_and_export_read_without_knowing_the_code(system, workload, tmp_path, capsys):
    backend = system.backend
    plan_id, personnummer = workload[0]
    assert sip(["audit", "replay", "--plan", plan_id, *storage_arguments(backend)]) == 0
    story = capsys.readouterr().out.splitlines()
    assert story[0] == f"The story of plan {plan_id}"
    assert "v1  coordinator coordinator-1 (organization SE2321000032-R0001)  Started" in story[1]
    (assigned,) = [line for line in story if "InterventionAssigned" in line]
    assert "intervention: (kind support" in assigned and assigned.endswith("; text: Hemtjänst")
    assert any("Activated — consents:" in line for line in story)
    out = tmp_path / "export.json"
    assert sip(["audit", "export", "--patient", personnummer, "--out", str(out),
                *storage_arguments(backend)]) == 0  # fmt: skip
    exported = json.loads(out.read_text())
    assert [r["id"] for r in exported["sip"]["resources"]] == [plan_id]
    assert len(exported["consent"]["resources"]) == 1
    assert {e["subtype"][0]["code"] for e in exported["sip"]["access_log"]} >= {
        "create", "read", "operation"
    }  # fmt: skip
    assert {e["subtype"][0]["code"] for e in exported["consent"]["access_log"]} >= {
        "create", "disclosure-decision"
    }  # fmt: skip


def test_rebuilt_read_models_equal_the_live_ones_and_tampering_is_reported(
    system, workload, capsys
):
    backend = system.backend
    arguments = ["projections", "rebuild", "--check", *storage_arguments(backend)]
    assert sip(arguments) == 0
    printed = capsys.readouterr().out
    read_models = [
        (service, kind.name) for service, (_, kinds) in SERVICES.items() for kind in kinds
    ]
    for service, model in read_models:
        assert f"{service}/{model}: equal to a rebuild" in printed
    assert printed.count("equal to a rebuild") == len(read_models)
    index = system.sip_app.state.index
    with index.engine.begin() as connection:
        connection.execute(text("UPDATE plan_index SET status = 'completed'"))
    assert sip(arguments) == 1
    assert "row(s) differ" in capsys.readouterr().out
    assert sip(["projections", "rebuild", *storage_arguments(backend)]) == 0
    assert sip(arguments) == 0
