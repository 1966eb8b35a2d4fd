"""Personal data encrypted per person, switched on in both services (issue 16,
docs/decisions/0007): the master key comes from the settings (or, on the embedded default, a
file made once in the key directory), production refuses to start without one, and the
services store each personal field of their events sealed while the API answers as before."""

import dataclasses
import json
import stat
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.cli import main as sip
from services.common.configuration_check import ConfigurationError
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.personal_data.master_key import MASTER_KEY_FILE, MasterKey, MasterKeys
from services.common.settings import ServiceSettings
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated, running_system
from tests.fhir_data import (
    REGION_NEED,
    active_plan,
    new_personnummer,
    started_by_region,
    whole_feed,
)

PRODUCTION = ServiceSettings(
    database_url="postgresql://db/sip",
    key_dir=None,
    trusted_issuers={"https://idp": "https://idp/jwks"},
    client_token_url="https://idp/token",
    client_id="sip",
    client_secret="secret",
)


def test_production_refuses_to_start_without_a_master_key_and_names_the_settings(tmp_path):
    production = replace(PRODUCTION, key_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"SIP_MASTER_KEY .*SIP_MASTER_KEY_FILE"):
        production.checked("sip")
    assert not (tmp_path / MASTER_KEY_FILE).exists()  # nothing made behind the operator's back
    given = replace(production, master_key=MasterKey.generate().as_text())
    assert given.checked("sip") is given
    in_a_file = replace(production, master_key_file=tmp_path / "elsewhere")
    assert in_a_file.checked("sip") is in_a_file


def test_a_master_key_that_is_not_32_bytes_of_base64url_is_refused_at_start(tmp_path):
    for wrong in ("not base64 at all!", MasterKey.generate().as_text()[:20]):
        with pytest.raises(ConfigurationError, match="SIP_MASTER_KEY"):
            replace(PRODUCTION, key_dir=tmp_path, master_key=wrong).checked("sip")
    with pytest.raises(ConfigurationError, match="SIP_MASTER_KEY_PREVIOUS"):
        replace(
            PRODUCTION,
            key_dir=tmp_path,
            master_key=MasterKey.generate().as_text(),
            master_key_previous=("short",),
        ).checked("sip")


def test_the_settings_read_the_master_key_from_the_environment(monkeypatch, tmp_path):
    current, previous = MasterKey.generate(), MasterKey.generate()
    monkeypatch.setenv("SIP_MASTER_KEY", current.as_text())
    monkeypatch.setenv("SIP_MASTER_KEY_PREVIOUS", previous.as_text())
    monkeypatch.setenv("SIP_DATA_DIR", str(tmp_path))
    keys = ServiceSettings.from_env("SIP_DATABASE_URL").master_keys()
    assert keys.current == current and keys.previous == (previous,)
    assert current.as_text() not in repr(ServiceSettings.from_env("SIP_DATABASE_URL"))
    monkeypatch.delenv("SIP_MASTER_KEY")
    key_file = tmp_path / "master"
    key_file.write_text(current.as_text())
    monkeypatch.setenv("SIP_MASTER_KEY_FILE", str(key_file))
    assert ServiceSettings.from_env("SIP_DATABASE_URL").master_keys().current == current
    assert not (tmp_path / MASTER_KEY_FILE).exists()


def test_the_embedded_default_makes_its_master_key_once_in_the_key_directory(tmp_path):
    settings = ServiceSettings(data_dir=tmp_path / "data", key_dir=tmp_path / "keys")
    assert settings.checked("sip") is settings  # the embedded default needs no key given
    first = settings.master_keys().current
    made = tmp_path / "keys" / MASTER_KEY_FILE
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert settings.master_keys().current == first  # the same key on every start
    assert replace(settings, key_dir=None).master_keys().current != first  # another directory


def stored_states(backend, service):
    """(topic, stored bytes) of every event in the service's event store."""
    storage = storage_for(service, backend.database_urls[service], backend.data_dir)
    engine = read_model_engine(storage)
    table = {"sip": "sipplans_events", "consent": "consents_events"}[service]
    try:
        with engine.connect() as connection:
            sql = f"SELECT topic, state FROM {table if storage.is_postgres else 'stored_events'}"
            return [(row[0], bytes(row[1])) for row in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def test_both_services_store_personal_fields_sealed_and_answer_as_before(backend):
    with running_system(backend) as system:
        plan_id, personnummer = active_plan(system)  # the consent service's $check opens it
        plan = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
        assert plan["subject"]["identifier"]["value"] == personnummer
        found = system.sip.get(
            "/fhir/CarePlan", params={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
        ).json()
        assert [entry["resource"]["id"] for entry in found.get("entry", [])] == [plan_id]
        consents = system.consent.get(
            "/fhir/Consent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"}
        ).json()
        assert consents["total"] == 1 if "total" in consents else len(consents["entry"]) == 1
        auditor = system.as_caller("auditor", scopes=("user/*.rs",))
        events, _ = whole_feed(auditor.sip)
        started = [e for e in events if e["type"].endswith("Plan.Started")]
        # The feed's payload is what the mapper opened; the person is named as before.
        assert any(e["payload"]["subject"]["value"] == personnummer for e in started)

        for service in ("sip", "consent"):
            stored = stored_states(backend, service)
            assert [state for _, state in stored if b"_sealed_" in state], service
            for _, state in stored:  # the access records too (sealed under `access`)
                assert personnummer.encode() not in state, (service, state[:200])
                assert REGION_NEED.encode() not in state, (service, state[:200])
    where = (
        ["--data-dir", str(backend.data_dir)]
        if backend.database_urls["sip"] is None
        else ["--sip-database-url", backend.database_urls["sip"]]
    )
    assert sip(["audit", "verify", "--service", "sip", *where]) == 0


def test_the_feeds_payload_opens_sealed_fields_names_erased_ones_and_leaves_tampered_sealed(
    tmp_path,
):
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    by = {"subject": "anna", "role": "coordinator", "organization": "SE2321000032-R1"}
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", None, backend.data_dir)
    engine = read_model_engine(storage)
    keys = PersonalDataKeys(engine, MasterKeys(MasterKey.generate()))
    app = SipPlans(env=storage.event_store_env, personal_data=keys)
    erased, kept = new_personnummer(), new_personnummer()
    ids = {}
    for personnummer in (erased, kept):
        ids[personnummer] = app.start(
            **started_by_region(
                personnummer,
                at=now,
                by={**by, "unit": None},
                title="Plan för Kalle",
                region="SE2321000032-R1",
            )
        ).id
    keys.erase(PersonIdentifier(PERSONNUMMER_SYSTEM, erased), rule="SoL 5 years", at=now)

    def first(personnummer):
        return app.recorder.select_events(ids[personnummer], lte=1, limit=1)[0]

    kept_payload = app.mapper.opened_payload(first(kept))
    assert kept_payload["subject"] == {"system": PERSONNUMMER_SYSTEM, "value": kept}
    assert kept_payload["title"] == "Plan för Kalle" and kept_payload["description"] is None
    erased_payload = app.mapper.opened_payload(first(erased))
    assert erased_payload["subject"] == {"erased": {"at": now.isoformat(), "rule": "SoL 5 years"}}
    stored = first(kept)
    state = json.loads(stored.state)
    state["title"]["_sealed_"]["c"] = state["title"]["_sealed_"]["c"][::-1]
    tampered = dataclasses.replace(stored, state=json.dumps(state).encode())
    tampered_payload = app.mapper.opened_payload(tampered)
    assert "_sealed_" in tampered_payload["title"]  # left as stored, never shown as erased
    assert tampered_payload["subject"]["value"] == kept
    app.close()
    engine.dispose()
