"""What an erasure leaves behind (issue 16, docs/decisions/0007), beyond the tables
test_retention.py reads: the bytes of the SQLite files themselves (the database, its
write-ahead log and shared memory), where deleted rows and old copies of pages outlive the
rows; the person's stays (Encounter) and messages (Communication); and a subscription that
follows the person, which the run ends rather than leave it filtering by their blind index."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import select, text

from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier
from contracts.subscription_topics import PLAN_CHANGED
from services.cli import main as sip
from services.common.personal_data.retention import (
    DEFAULT_RULES,
    RETENTION_FILE_VARIABLE,
    retention_rules,
)
from services.ops import retention
from tests.communication_http import MUNICIPAL_UNIT, a_stay, message, send
from tests.conftest import new_backend, running_system
from tests.discharge_http import PRIMARY, VARDCENTRAL, step
from tests.discharge_http import staff as stay_staff
from tests.fhir_data import MUNICIPALITY, REGION, active_plan, run
from tests.record_system import RecordSystem, numbered, subscribe, subscription
from tests.test_retention import (  # noqa: F401 (the fixture keeps the access log 50 years)
    ACCESS_KEPT,
    access_log_kept_long,
    due_date_of,
    forms,
    opened,
    scan,
    where,
)

LONG_CITATION = (
    "gallringsbeslut 2027-03-14, dnr RS 2027/0412, enligt "
    "arkivlagen (1990:782) 10 § och patientdatalagen (2008:355) 3 kap. 17 §"
)


@pytest.fixture
def sqlite_backend(request, tmp_path):
    with new_backend("sqlite", tmp_path / "data", request) as backend:
        yield backend


def staff(system, organization, unit):
    return system.as_caller("professional", organization, unit=unit).sip


@contextmanager
def wal_kept_open(data_dir: Path) -> Iterator[None]:
    """A connection to each database, as a running service holds: the write-ahead log is then
    not removed as the run's last connection closes, and keeps what was written to it."""
    connections = [
        sqlite3.connect(path, isolation_level=None) for path in sorted(data_dir.glob("*.sqlite"))
    ]
    try:
        for connection in connections:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield
    finally:
        for connection in connections:
            connection.close()


def file_hits(data_dir: Path, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    """(file, what) for every SQLite file of the data folder (database, -wal, -shm) whose raw
    bytes hold one of `needles`: free pages and old page copies included."""
    files = sorted(Path(data_dir).glob("*.sqlite*"))
    assert any(path.name == "sip.sqlite" for path in files)
    hits = []
    for path in files:
        stored = path.read_bytes()
        hits += [(path.name, what) for what, needle in needles.items() if needle in stored]
    return hits


def spellings(what: str, value: str) -> dict[str, bytes]:
    """A value as it may lie in a file: UTF-8, and JSON's escaped form of it."""
    escaped = json.dumps(value)[1:-1]
    return {f"{what} (utf-8)": value.encode(), f"{what} (json)": escaped.encode()}


def someone_with_a_stay_and_a_message(system) -> dict[str, str]:
    """An active plan, a stay with a named care contact and a message about the stay, each
    with words no one else's record has."""
    plan_id, number = active_plan(system)
    mark = uuid4().hex[:12]
    need = f"Needs help with the stairs {mark}"
    assert run(system.sip, plan_id, "record-need", text=need).status_code < 300
    stay = a_stay(system, number)
    contact = f"Sjukskoterska Contact{mark}"
    primary_care = stay_staff(system, PRIMARY, VARDCENTRAL)
    named = step(primary_care, stay["id"], "name-care-contact", name=contact)
    assert named.status_code == 200, named.text
    said = f"Patient needs medication at home {mark}"
    ward = staff(system, REGION, stay["ward"])
    sent = send(ward, message(said, stay=stay["id"], to=(MUNICIPAL_UNIT, PRIMARY)))
    assert sent.status_code == 201, sent.text
    return {
        "plan": plan_id, "number": number, "need": need, "stay": stay["id"],
        "ward": stay["ward"], "contact": contact, "message": sent.json()["id"], "said": said,
    }  # fmt: skip


def wrapped_keys(backend, index_of_service: dict[str, str]) -> dict[str, bytes]:
    """The person's wrapped data keys in each database, as stored before the erasure (but
    the access records' key: kept 50 years in these tests)."""
    found = {}
    for service, index in index_of_service.items():
        with opened(backend, service) as open_, open_.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT key_id, wrapped_key FROM personal_data_keys "
                    "WHERE person_index = :index AND retention_class != 'access'"
                ),
                {"index": index},
            ).all()
        found |= {f"{service} key {row.key_id}": bytes(row.wrapped_key) for row in rows}
    return found


def person_indexes(backend, number: str) -> dict[str, str]:
    indexes = {}
    for service in ("sip", "consent"):
        with opened(backend, service) as open_:
            indexes[service] = open_.application.personal_data.person_index(
                PersonIdentifier(PERSONNUMMER_SYSTEM, number)
            )
    return indexes


def test_no_byte_of_the_sqlite_files_holds_the_erased_persons_plan_stay_message_or_keys(
    sqlite_backend, tmp_path, capsys
):
    backend = sqlite_backend
    # Rules named at length, as a region's decision is cited: an erased key's row then grows,
    # and SQLite writes it elsewhere in the page, leaving the old row, its wrapped key with
    # it, in the page's free space unless the deleting connection zeroes it.
    cited = tmp_path / "cited.toml"
    cited.write_text(
        ACCESS_KEPT
        + "".join(
            f'[{kind}]\nyears = {DEFAULT_RULES[kind].years}\nrule = "{DEFAULT_RULES[kind].rule}, '
            f'{LONG_CITATION}"\n'
            for kind in ("region", "consent")
        )
    )
    os.environ[RETENTION_FILE_VARIABLE] = str(cited)  # restored by access_log_kept_long
    with running_system(backend) as system:
        # The erased person's records first: the others' entries are all later, so not due
        # on the date the person's are.
        erased = someone_with_a_stay_and_a_message(system)
        others = [someone_with_a_stay_and_a_message(system) for _ in range(2)]
    on, _ = due_date_of(backend, erased["number"])
    keys_before = wrapped_keys(backend, person_indexes(backend, erased["number"]))
    assert len(keys_before) == 2  # the region's key in the SIP service, consent's in its own

    needles = {f"personnummer {form}": form.encode() for form in forms(erased["number"])}
    for what in ("need", "contact", "said"):
        needles |= spellings(what, erased[what])
    needles |= keys_before
    # Before the run the keys are in the files and the rest is sealed: the scan can find.
    assert {what for _, what in file_hits(backend.data_dir, needles)} == set(keys_before)

    # Run while the databases are held open, as running services hold them: the write-ahead
    # log is then not removed as the run's last connection closes, and holds older copies of
    # the pages the run changed. (Not the services themselves: this test is about the files,
    # and a replica's minute of kept keys, decision 0007, is another matter.)
    with wal_kept_open(backend.data_dir):
        capsys.readouterr()
        assert sip(["retention", "run", "--date", on.isoformat(), *where(backend)]) == 0
        ran = capsys.readouterr().out
        assert "sip: write-ahead log checkpointed and emptied" in ran, ran
        assert file_hits(backend.data_dir, needles) == [], ran
    assert file_hits(backend.data_dir, needles) == []
    # Nor in any table, by SQL (the stays' and messages' read models included).
    words = {*forms(erased["number"]), erased["need"], erased["contact"], erased["said"]}
    assert scan(backend.data_dir, words) == []
    assert sip(["audit", "verify", *where(backend)]) == 0
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0

    with running_system(backend) as system:
        ward = staff(system, REGION, erased["ward"])
        assert ward.get(f"/fhir/Encounter/{erased['stay']}").status_code == 404
        assert ward.get(f"/fhir/Communication/{erased['message']}").status_code == 404
        assert ward.get(f"/fhir/Communication/{erased['message']}/_history").status_code == 404
        assert ward.get(f"/fhir/Encounter/{erased['stay']}/_history").status_code == 404
        stays = ward.get("/fhir/Encounter", params={"patient": f"Patient/{erased['number']}"})
        assert stays.status_code == 200 and stays.json().get("entry", []) == []
        # The person, asking for their own: none of the erased remains.
        themselves = system.as_caller("patient", None, patient=erased["number"]).sip
        for kind in ("Encounter", "Communication"):
            searched = themselves.get(f"/fhir/{kind}")
            assert searched.status_code == 200 and searched.json().get("entry", []) == [], kind
        about_stay = ward.get("/fhir/Communication", params={"encounter": erased["stay"]})
        assert about_stay.status_code == 200 and about_stay.json().get("entry", []) == []
        history = ward.get("/fhir/Communication/_history")
        assert history.status_code == 200 and erased["message"] not in history.text
        for kept in others:
            their_ward = staff(system, REGION, kept["ward"])
            stay = their_ward.get(f"/fhir/Encounter/{kept['stay']}")
            assert stay.status_code == 200 and kept["contact"] in stay.text
            said = their_ward.get(f"/fhir/Communication/{kept['message']}")
            assert said.status_code == 200 and kept["said"] in said.text
            person = system.as_caller("patient", None, patient=kept["number"]).sip
            found = person.get("/fhir/Communication").json()  # the notice is one too
            assert kept["message"] in [e["resource"]["id"] for e in found["entry"]]
            found = person.get("/fhir/Encounter").json()
            assert [e["resource"]["id"] for e in found["entry"]] == [kept["stay"]]
            plan = system.sip.get(f"/fhir/CarePlan/{kept['plan']}")
            assert plan.status_code == 200 and kept["need"] in plan.text


def access_due(backend, number: str):
    with opened(backend, "sip") as service:
        index = service.application.personal_data.person_index(
            PersonIdentifier(PERSONNUMMER_SYSTEM, number)
        )
        far = retention.now() + timedelta(days=365 * 40)
        dues = retention.plan(service, DEFAULT_RULES, far)
    return max(d.due for d in dues if d.person_index == index and d.retention_class == "access")


def subscription_row(backend, subscription_id: str):
    with opened(backend, "sip") as service, service.engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM subscriptions WHERE id = :id"), {"id": subscription_id}
        ).one()


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_a_subscription_following_an_erased_person_is_ended_and_delivers_nothing_more(
    backend, tmp_path
):
    """Who watches a person is kept and erased with their access records: once the person's
    `access` key is erased, the run ends the subscription (its filter would otherwise still
    match the person by blind index, a new record of theirs included)."""
    default = tmp_path / "default.toml"
    default.write_text("[access]\nyears = 5\n")
    os.environ[RETENTION_FILE_VARIABLE] = str(default)  # restored by access_log_kept_long
    receiver = RecordSystem()
    try:
        with running_system(backend, subscription_endpoints=("loopback",)) as system:
            municipality = system.as_caller(
                "integration", MUNICIPALITY, subject=f"rs-{MUNICIPALITY}"
            ).sip
            plan_id, number = active_plan(system)
            followed = subscribe(
                municipality, subscription(PLAN_CHANGED, receiver.url, patient=number)
            )
            assert run(system.sip, plan_id, "record-need", text="Ny").status_code < 300
            wait_for(lambda: numbered(municipality, followed) >= 1)
        # The other person's records are all later: their access key is not due yet.
        with running_system(backend, subscription_endpoints=("loopback",)) as system:
            municipality = system.as_caller(
                "integration", MUNICIPALITY, subject=f"rs-{MUNICIPALITY}"
            ).sip
            other_plan, other = active_plan(system)
            control = subscribe(
                municipality, subscription(PLAN_CHANGED, receiver.url, patient=other)
            )
        before = numbered_rows(backend, followed)

        date = access_due(backend, number).isoformat()
        assert sip(["retention", "run", "--date", date, *where(backend)]) == 0
        ended = subscription_row(backend, followed)
        assert ended.status == "off"
        assert ended.person_value is None and ended.person_sealed is None  # no index left
        assert (
            "erased" in ended.last_error
            and retention_rules(default)["access"].rule in ended.last_error
        )
        assert not any(form in ended.last_error for form in forms(number))
        assert subscription_row(backend, control).status == "active"

        with running_system(backend, subscription_endpoints=("loopback",)) as system:
            municipality = system.as_caller(
                "integration", MUNICIPALITY, subject=f"rs-{MUNICIPALITY}"
            ).sip
            shown = municipality.get(f"/fhir/Subscription/{followed}").json()
            assert shown["status"] == "off" and "erased" in shown["error"]
            assert number not in json.dumps(shown)
            # A new entry about the person (their plan is kept; only the access records
            # went), then one about the other: the other's subscription is told, once the
            # worker is past both, and the ended one is told nothing.
            assert run(system.sip, plan_id, "record-need", text="Igen").status_code < 300
            told = numbered(municipality, control)
            assert run(system.sip, other_plan, "record-need", text="Annat").status_code < 300
            wait_for(lambda: numbered(municipality, control) > told)
            assert numbered(municipality, followed) == before
        assert numbered_rows(backend, followed) == before
    finally:
        receiver.close()


def numbered_rows(backend, subscription_id: str) -> int:
    with opened(backend, "sip") as service, service.engine.connect() as connection:
        return connection.execute(
            select(text("count(*)"))
            .select_from(text("subscription_notifications"))
            .where(text("subscription_id = :id")),
            {"id": subscription_id},
        ).scalar_one()
