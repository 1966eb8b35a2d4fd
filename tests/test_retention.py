"""Retention (issue 16, docs/decisions/0007): `sip retention plan` lists what is due and
changes nothing; `sip retention run` erases one person among several by deleting their data
keys, leaves none of their personal data in any table of either database, leaves the others
as they were, keeps `sip audit verify` intact, rebuilds the read models, records an erasure
event with nothing personal in it, and is safe to repeat or to interrupt."""

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from services.cli import main as sip
from services.common.configuration_check import ConfigurationError
from services.common.personal_data.envelope import Erased
from services.common.personal_data.erasure import erasure_id
from services.common.personal_data.master_key import MasterKey
from services.common.personal_data.retention import (
    DEFAULT_RULES,
    RETENTION_FILE_VARIABLE,
    RetentionConfigProblem,
    retention_file_from_env,
    retention_rules,
)
from services.common.settings import ServiceSettings
from services.ops import retention
from services.ops.offline import open_service
from tests.conftest import new_backend, running_system
from tests.fhir_data import active_plan, run, whole_feed

ACCESS_TOPIC = "services.common.access_log:AccessRecord"
# The access records are sealed under each person's `access` key, due five years after the
# person's last record by default: on the date a plan of ten years is due, every person's
# access key would be due too. These tests erase one person's records among several, so
# the access log is kept longer here (as a region may choose); `access` erasure is the
# default rules' case in test_access_records_are_erased_on_their_own_date.
ACCESS_KEPT = '[access]\nyears = 50\nrule = "access log, kept 50 years in these tests"\n'


@pytest.fixture(autouse=True)
def access_log_kept_long(tmp_path_factory):
    """SIP_RETENTION_FILE set for the whole test, out of `monkeypatch`'s reach (a test undoes
    its own patches midway)."""
    path = tmp_path_factory.mktemp("retention") / "retention.toml"
    path.write_text(ACCESS_KEPT)
    before = os.environ.get(RETENTION_FILE_VARIABLE)
    os.environ[RETENTION_FILE_VARIABLE] = str(path)
    try:
        yield retention_rules(path)
    finally:
        if before is None:
            os.environ.pop(RETENTION_FILE_VARIABLE, None)
        else:
            os.environ[RETENTION_FILE_VARIABLE] = before


def rules():
    return retention_rules(retention_file_from_env())


def people(system, count):
    """`count` persons, each with an active plan and a need in words no one else's plan has:
    [(plan id, personnummer, phrase)]."""
    made = []
    for number in range(count):
        plan_id, personnummer = active_plan(system)
        phrase = f"Vill cykla till Vättern {number} gånger i veckan"
        assert run(system.sip, plan_id, "record-need", text=phrase).status_code < 300
        made.append((plan_id, personnummer, phrase))
    return made


def forms(personnummer):
    """Every way the number may be written: 12 digits, 10, and each with its hyphen."""
    ten = personnummer[2:]
    return {personnummer, ten, f"{personnummer[:8]}-{personnummer[8:]}", f"{ten[:6]}-{ten[6:]}"}


def scan(data_dir: Path, needles: set[str]):
    """(database, table, column, topic) of every value in every table of both SQLite
    databases that holds one of `needles` (text or bytes)."""
    hits = []
    for database in ("sip.sqlite", "consent.sqlite"):
        connection = sqlite3.connect(data_dir / database)
        try:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )]  # fmt: skip
            for table in tables:
                cursor = connection.execute(f'SELECT * FROM "{table}"')
                columns = [column[0] for column in cursor.description]
                for row in cursor:
                    values = dict(zip(columns, row, strict=True))
                    for column, value in values.items():
                        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else (
                            str(value) if value is not None else ""
                        )  # fmt: skip
                        if any(needle in text for needle in needles):
                            hits.append((database, table, column, values.get("topic")))
        finally:
            connection.close()
    return hits


def where(backend):
    urls = backend.database_urls
    if urls["sip"] is None:
        return ["--data-dir", str(backend.data_dir)]
    # The data folder too: the services' master key is in it (the key directory).
    return [
        *("--data-dir", str(backend.data_dir)),
        *("--sip-database-url", urls["sip"], "--consent-database-url", urls["consent"]),
    ]


def opened(backend, service):
    return open_service(service, backend.data_dir, backend.database_urls[service])


def due_date_of(backend, personnummer):
    """The instant at which the person's newest key is due (the others' not yet)."""
    with opened(backend, "sip") as sip_service:
        index = sip_service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer)
        )
        far = retention.now() + timedelta(days=365 * 40)
        dues = {d.key_id: d for d in retention.plan(sip_service, rules(), far)}
    mine = [d for d in dues.values() if d.person_index == index]
    assert mine, "the person has a key in the SIP service"
    with opened(backend, "consent") as consent_service:
        consent_index = consent_service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, personnummer)
        )
        theirs = retention.plan(consent_service, rules(), far)
    mine += [d for d in theirs if d.person_index == consent_index]
    return max(d.due for d in mine), index


@pytest.fixture
def sqlite_backend(request, tmp_path):
    with new_backend("sqlite", tmp_path / "data", request) as backend:
        yield backend


def test_erasing_one_person_among_several_leaves_nothing_of_theirs_and_the_others_intact(
    sqlite_backend, capsys
):
    backend = sqlite_backend
    with running_system(backend) as system:
        made = people(system, 3)
    (erased_plan, erased_number, erased_phrase), *others = made
    on, erased_index = due_date_of(backend, erased_number)
    date = on.isoformat(timespec="microseconds")

    # The plan names the person by their blind index, never by number, and erases nothing.
    capsys.readouterr()
    assert sip(["retention", "plan", "--date", date, *where(backend)]) == 0
    planned = capsys.readouterr().out
    assert erased_index[:16] in planned and "nothing erased" in planned
    assert not any(form in planned for form in forms(erased_number))
    assert "sip: 1 key(s) due" in planned and "consent: 1 key(s) due" in planned
    assert scan(backend.data_dir, {erased_phrase}) == []  # sealed, as before
    with opened(backend, "sip") as service:
        assert service.application.aggregate(UUID(erased_plan))  # still there

    assert sip(["retention", "run", "--date", date, *where(backend)]) == 0
    ran = capsys.readouterr().out
    assert ran.count(": erased") == 2 and "read models rebuilt" in ran
    assert not any(form in ran for form in forms(erased_number))

    # No plain personal data of theirs in any table of either database. The access records
    # are not sealed yet (decision 0007, "Not yet") and have their own, longer retention:
    # their hits are reported apart below.
    hits = scan(backend.data_dir, forms(erased_number) | {erased_phrase})
    access = [
        hit for hit in hits
        if hit[1] == "access_log" or (hit[3] or "").startswith(ACCESS_TOPIC)
    ]  # fmt: skip
    assert [hit for hit in hits if hit not in access] == []
    assert not [hit for hit in hits if erased_phrase in str(hit)]

    # The erasure events: nothing personal, one per key, under the rule.
    with opened(backend, "sip") as service:
        keys = service.application.personal_data
        erased_rows = [row for row in keys.person_keys() if row.erased_at]
        assert len(erased_rows) == 1 and erased_rows[0].person_index is None
        event = service.application.repository.get(erasure_id(erased_rows[0].key_id))
        assert event.rule == DEFAULT_RULES["region"].rule and event.retention_class == "region"
        started = next(iter(service.application.events.get(UUID(erased_plan))))
        assert isinstance(started.subject, Erased) and started.subject.rule == event.rule

    # Verify intact; the read models equal a rebuild; the replay names the erasure.
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0
    capsys.readouterr()
    assert sip(["audit", "replay", "--plan", erased_plan, *where(backend)]) == 0
    replayed = capsys.readouterr().out
    assert f"erased on {erased_rows[0].erased_at}" in replayed
    assert DEFAULT_RULES["region"].rule in replayed
    assert not any(form in replayed for form in forms(erased_number))

    # The API answers for the erased person as for an unknown one; the others as before.
    with running_system(backend) as system:
        assert system.sip.get(f"/fhir/CarePlan/{erased_plan}").status_code == 404
        assert system.sip.get(f"/fhir/CarePlan/{erased_plan}/_history").status_code == 404
        # The plans existed then: to the millisecond, as the whole test may take less than a
        # second from their start to here (in whole seconds it was before them, now and then).
        moment = retention.now().isoformat(timespec="milliseconds")
        at = system.sip.get(f"/fhir/CarePlan/{erased_plan}", params={"_at": moment})
        assert at.status_code == 404
        as_of = system.sip.get(f"/fhir/CarePlan/{erased_plan}/$as-of", params={"instant": moment})
        assert as_of.status_code == 404
        for plan_id, *_ in others:  # the same questions about the others are answered
            assert system.sip.get(f"/fhir/CarePlan/{plan_id}", params={"_at": moment}).is_success
            kept = system.sip.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": moment})
            assert kept.status_code == 200, (kept.text, moment)
        written = run(system.sip, erased_plan, "record-need", text="Något nytt")
        assert written.status_code == 404  # nothing more is written about them
        # The feed, as an auditor and as a record system reads it: nothing of theirs but
        # the access records (not sealed yet, below).
        for role in ("auditor", "integration"):
            events, _ = whole_feed(system.as_caller(role).sip)
            plans = json.dumps([e for e in events if not e["type"].startswith(ACCESS_TOPIC)])
            assert events and not any(form in plans for form in forms(erased_number)), role
        history = system.sip.get("/fhir/CarePlan/_history")
        assert history.status_code == 200 and erased_plan not in history.text
        assert others[0][0] in history.text
        for who, number in (("erased", erased_number), *(("kept", o[1]) for o in others)):
            found = system.sip.get(
                "/fhir/CarePlan",
                params={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{number}"},
            ).json()
            consents = system.consent.get(
                "/fhir/Consent", params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{number}"}
            ).json()
            expected = 0 if who == "erased" else 1
            assert len(found.get("entry", [])) == expected, who
            assert len(consents.get("entry", [])) == expected, who
        for plan_id, number, phrase in others:
            plan = system.sip.get(f"/fhir/CarePlan/{plan_id}")
            assert plan.status_code == 200
            assert plan.json()["subject"]["identifier"]["value"] == number
            assert phrase in plan.text

    # Safe to run twice: nothing more is due, nothing more recorded.
    assert sip(["retention", "run", "--date", date, *where(backend)]) == 0
    assert "nothing due" in capsys.readouterr().out
    assert sip(["audit", "verify", *where(backend)]) == 0

    # The person's export still states when it was made, and holds nothing of theirs.
    out = backend.data_dir.parent / "export.json"
    assert sip(["audit", "export", "--patient", erased_number, "--out", str(out),
                *where(backend)]) == 0  # fmt: skip
    exported = json.loads(out.read_text())
    assert exported["exported"] and exported["sip"]["resources"] == []
    kept_out = backend.data_dir.parent / "kept.json"
    assert sip(["audit", "export", "--patient", others[0][1], "--out", str(kept_out),
                *where(backend)]) == 0  # fmt: skip
    assert others[0][2] in kept_out.read_text()  # decrypted with their key

    if access:
        pytest.xfail(
            "the erased person's number is still in the access records (not sealed yet, "
            f"decision 0007): {sorted({(h[0], h[1], h[2]) for h in access})}"
        )


def test_an_interrupted_run_is_finished_by_the_next(backend, monkeypatch, capsys):
    with running_system(backend) as system:
        (_, number, _), _ = people(system, 2)
    date = due_date_of(backend, number)[0].isoformat(timespec="microseconds")

    def interrupted(*_):
        raise KeyboardInterrupt

    # With a master key that is not the services', nothing is done.
    monkeypatch.setenv("SIP_MASTER_KEY", MasterKey.generate().as_text())
    assert sip(["retention", "run", "--date", date, *where(backend)]) == 1
    monkeypatch.delenv("SIP_MASTER_KEY")
    with opened(backend, "sip") as service:
        assert not [row for row in service.application.personal_data.person_keys() if row.erased_at]

    monkeypatch.setattr(retention, "_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sip(["retention", "run", "--service", "sip", "--date", date, *where(backend)])
    with opened(backend, "sip") as service:
        (row,) = [row for row in service.application.personal_data.person_keys() if row.erased_at]
        assert not retention._recorded(service, row)  # the key went, its event did not
    monkeypatch.undo()
    capsys.readouterr()
    assert sip(["retention", "run", "--service", "sip", "--date", date, *where(backend)]) == 0
    finished = capsys.readouterr().out
    assert f"erasure of key {row.key_id} recorded" in finished
    with opened(backend, "sip") as service:
        assert retention._recorded(service, row)
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0


def test_an_entry_written_after_the_plan_keeps_the_key(backend):
    with running_system(backend) as system:
        ((plan_id, number, _),) = people(system, 1)
    on = due_date_of(backend, number)[0]
    with opened(backend, "sip") as service:
        (due,) = retention.plan(service, rules(), on)
    with running_system(backend) as system:  # a new entry after the plan was made
        assert run(system.sip, plan_id, "record-need", text="Ny anteckning").status_code < 300
    with opened(backend, "sip") as service:
        keys = service.application.personal_data
        still_due = retention.no_entry_since(service, due)
        assert not keys.erase_key(due.key_id, rule="x", at=on, still_due=still_due)
        assert not [row for row in keys.person_keys() if row.erased_at]
        # Planned afresh, the period counts from the new entry: not due on that date.
        assert retention.plan(service, rules(), on) == []


def test_retention_rules_default_to_swedish_law_and_a_file_changes_them(tmp_path, monkeypatch):
    assert {c: r.years for c, r in DEFAULT_RULES.items()} == {
        "region": 10, "municipality": 5, "consent": 10, "access": 5,
    }  # fmt: skip
    changed = tmp_path / "retention.toml"
    changed.write_text('[municipality]\nyears = 7\nrule = "Gallringsbeslut 2027:12"\n')
    rules = retention_rules(changed)
    assert rules["municipality"].years == 7 and rules["municipality"].rule.startswith("Gall")
    assert rules["region"] == DEFAULT_RULES["region"]
    for wrong, named in (
        ("[region]\nyears = 3\n", "minimum"),
        ("[access]\nyears = 4\n", "minimum"),
        ("[journals]\nyears = 3\n", "not a retention class"),
        ("[municipality]\nyears = 'five'\n", "whole number"),
        ("[municipality]\nmonths = 5\n", "`years` and `rule`"),
        ("not toml at all [", "SIP_RETENTION_FILE"),
    ):
        changed.write_text(wrong)
        with pytest.raises(RetentionConfigProblem, match=named):
            retention_rules(changed)
    # Checked at start, and by the commands.
    monkeypatch.setenv("SIP_RETENTION_FILE", str(changed))
    assert sip(["retention", "plan", "--data-dir", str(tmp_path)]) == 2


def test_a_service_refuses_to_start_with_a_retention_file_it_cannot_use(tmp_path):
    wrong = tmp_path / "retention.toml"
    wrong.write_text("[region]\nyears = 2\n")
    settings = ServiceSettings(data_dir=tmp_path, retention_file=wrong)
    with pytest.raises(ConfigurationError, match=r"SIP_RETENTION_FILE .*minimum of 10"):
        settings.checked("sip")
    wrong.write_text("[region]\nyears = 12\n")
    assert settings.checked("consent") is settings


def test_access_records_are_erased_on_their_own_date(sqlite_backend, tmp_path, capsys):
    """Sealed under the person's `access` key, the access records are erased five years after
    the person's last one, while the plan (ten years) is kept: the audit log then names no one
    for those records, and still verifies."""
    backend = sqlite_backend
    default = tmp_path / "default.toml"
    default.write_text("[access]\nyears = 5\n")
    os.environ[RETENTION_FILE_VARIABLE] = str(default)  # restored by access_log_kept_long
    with running_system(backend) as system:
        plan_id, number = active_plan(system)
        auditor = system.as_caller("auditor", subject="ivo")
        asked = {"patient": f"Patient/{number}"}
        assert auditor.sip.get("/fhir/AuditEvent", params=asked).json().get("entry")
    with opened(backend, "sip") as service:
        index = service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, number)
        )
        far = retention.now() + timedelta(days=365 * 40)
        dues = [d for d in retention.plan(service, DEFAULT_RULES, far) if d.person_index == index]
    access_due = max(d.due for d in dues if d.retention_class == "access")
    assert access_due < min(d.due for d in dues if d.retention_class == "region")
    date = access_due.isoformat(timespec="microseconds")
    assert sip(["retention", "run", "--date", date, *where(backend)]) == 0
    assert "read models rebuilt" in capsys.readouterr().out
    with running_system(backend) as system:
        auditor = system.as_caller("auditor", subject="ivo")
        found = auditor.sip.get("/fhir/AuditEvent", params=asked).json()
        assert found.get("entry", []) == []  # the records name no one any more
        every = auditor.sip.get("/fhir/AuditEvent", params={"_count": "1000"})
        assert every.status_code == 200 and number not in every.text
        # The plan is kept; reading it is a new access, under a new `access` key.
        assert system.sip.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
        again = auditor.sip.get("/fhir/AuditEvent", params=asked).json()
        assert len(again["entry"]) == 1
    assert sip(["audit", "verify", *where(backend)]) == 0
