"""The event feed is no side door (issue 12), over real HTTP on SQLite and PostgreSQL: an
outsider's auditor or record system gets nothing of other organisations' plans and consents
from `/events`; a record system gets the events of the records the API shows it, an entry of
a custodian it may not see withheld (never dropped, never its content), each read logged with
the consents relied on; an auditor their own organisation's share; only a subject the
configuration grants reads the whole log, a scope alone never; and the content-free hash view
is there for every auditor."""

from __future__ import annotations

from itertools import pairwise
from uuid import uuid4

import pytest

from contracts.actor import Actor
from contracts.canonical import EXT_CONSENT_WITHDRAWN
from services.common.audit.feed_access import (
    OMITTED,
    WHOLE,
    WITHHELD,
    AuditorRule,
    FeedEvent,
    RecordSystemRule,
    Verdict,
)
from services.common.disclosure import Disclosure
from services.common.domain import NotFound
from services.common.settings import SERVICE_SUBJECT, ServiceSettings
from tests.conftest import running_system
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    run,
    whole_feed,
    withdrawal,
)

LOG_READER = "log-reader"
NEED = "Jag vill klara mig hemma"  # what prepare_for_activation records


@pytest.fixture(scope="module")
def system(module_backend):
    """Both services, granting the whole log to the SIP service (as by default) and to one
    more reader."""
    with running_system(module_backend, whole_log_readers=(SERVICE_SUBJECT, LOG_READER)) as system:
        yield system


def shared_plan(system, goal: str, *, with_consent: bool = True):
    """An active plan of the region's that the municipality takes part in; (plan id,
    personnummer, consent id)."""
    personnummer = new_personnummer()
    consent_id = None
    if with_consent:
        given = system.consent.post("/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON)
        assert given.status_code == 201, given.text
        consent_id = given.json()["id"]
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    assert run(system.sip, plan_id, "set-goal", text=goal, need="need-1").status_code == 200
    if with_consent:
        assert system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate").status_code == 200
    return plan_id, personnummer, consent_id


def region_only_plan(system, goal: str):
    """A plan only the region takes part in; (plan id, personnummer)."""
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    assert run(system.sip, plan_id, "record-need", text=goal).status_code == 200
    return plan_id, personnummer


def test_an_outsiders_auditor_and_record_system_get_nothing_of_others_records(system):
    goal = f"Mål {uuid4().hex}"
    plan_id, personnummer, consent_id = shared_plan(system, goal)
    outsiders = {
        "auditor": system.as_caller("auditor", organization=OTHER_REGION),
        "record system": system.as_caller("integration", organization=OTHER_REGION),
        "record system with the Event scope": system.as_caller(
            "integration", organization=OTHER_REGION, scopes=("system/Event.rs",)
        ),
    }
    for who, outsider in outsiders.items():
        for client, params in (
            (outsider.sip, {}),
            (outsider.sip, {"type": "Plan"}),
            (outsider.consent, {}),
            (outsider.consent, {"type": "Consent"}),
            (outsider.sip, {"type": "AccessRecord"}),
        ):
            events, raw = whole_feed(client, **params)
            for secret in (personnummer, NEED, goal, plan_id, consent_id):
                assert secret not in raw, (who, params, secret)
            assert not [e for e in events if e["aggregate_id"] in (plan_id, consent_id)]


def test_a_participants_record_system_gets_only_the_plans_it_takes_part_in(system):
    goal = f"Mål {uuid4().hex}"
    plan_id, personnummer, consent_id = shared_plan(system, goal)
    other_id, other_personnummer = region_only_plan(system, f"Behov {uuid4().hex}")
    municipality = system.as_caller("integration", organization=MUNICIPALITY)
    events, raw = whole_feed(municipality.sip, type="Plan")
    assert {e["aggregate_id"] for e in events} >= {plan_id}
    assert other_id not in raw and other_personnummer not in raw
    mine = [e for e in events if e["aggregate_id"] == plan_id]
    assert [e["version"] for e in mine] == list(range(1, len(mine) + 1))  # none dropped
    shown = [e for e in mine if e["payload"] is not None]
    assert goal in str([e["payload"] for e in shown])  # the region's goal, on the consent
    assert all("stored_state" not in e for e in events)  # the stored bytes: whole log only
    # The read is logged as a search is: for the person and custodian, naming the consent.
    extract = system.as_caller("auditor").sip.get(
        "/fhir/AuditEvent", params={"patient:identifier": personnummer, "_count": 1000}
    )
    feed_reads = [
        entry["resource"] for entry in extract.json()["entry"]
        if entry["resource"]["subtype"][0]["code"] == "event-feed"
        and entry["resource"]["agent"][0]["who"]["identifier"]["value"] == "integration-1"
    ]  # fmt: skip
    assert feed_reads
    assert any(consent_id in str(read["entity"]) for read in feed_reads)


def test_an_entry_of_a_custodian_not_seen_comes_withheld(system, monkeypatch):
    """Drives the feed with a disclosure that sees only the municipality's entries, as the
    per-custodian rule does without the region's consent."""
    goal = f"Mål {uuid4().hex}"
    plan_id, personnummer, _ = shared_plan(system, goal)
    own_need = f"Kommunens {uuid4().hex}"
    municipality_staff = system.as_caller(organization=MUNICIPALITY).sip
    assert run(municipality_staff, plan_id, "record-need", text=own_need).status_code == 200

    feed = system.sip_app.state.event_feed
    monkeypatch.setattr(feed, "disclose", lambda plan, actor: Disclosure(
        consents=("c-1",), custodians=frozenset({MUNICIPALITY})
    ))  # fmt: skip
    municipality = system.as_caller("integration", organization=MUNICIPALITY)
    events, raw = whole_feed(municipality.sip, type="Plan")
    mine = [e for e in events if e["aggregate_id"] == plan_id]
    assert [e["version"] for e in mine] == list(range(1, len(mine) + 1))  # nothing dropped
    withheld = [e for e in mine if "withheld" in e]
    assert withheld and mine[0] in withheld  # the region started it
    assert all(e["payload"] is None and "author" not in e for e in withheld)
    for secret in (personnummer, NEED, goal):
        assert secret not in raw
    assert own_need in raw  # its own entry, in full


def test_an_auditor_sees_their_own_organisations_records_only(system):
    goal = f"Mål {uuid4().hex}"
    plan_id, personnummer, _ = shared_plan(system, goal)
    region_auditor = system.as_caller("auditor")
    events, raw = whole_feed(region_auditor.sip)
    assert plan_id in {e["aggregate_id"] for e in events} and personnummer in raw
    records = [e for e in events if e["type"].endswith("AccessRecord.Recorded")]
    assert records and all(
        (r["payload"]["actor"]["organization"] == REGION and r["payload"]["outcome"] == "0")
        or r["payload"]["custodian"] == REGION
        for r in records
    )
    # The municipality's auditor: the plan is the region's, so nothing of its content.
    municipality_auditor = system.as_caller("auditor", organization=MUNICIPALITY)
    events, raw = whole_feed(municipality_auditor.sip, type="Plan")
    assert personnummer not in raw and goal not in raw and NEED not in raw


def test_only_a_configured_subject_reads_the_whole_log(system):
    plan_id, personnummer, consent_id = shared_plan(system, f"Mål {uuid4().hex}")
    reader = system.as_caller(
        "integration", organization=OTHER_REGION, subject=LOG_READER, scopes=("system/Event.rs",)
    )
    for client, ids in ((reader.sip, {plan_id}), (reader.consent, {consent_id})):
        events, raw = whole_feed(client)
        head = events[-1]["position"]
        assert [e["position"] for e in events] == list(range(1, head + 1))
        assert ids <= {e["aggregate_id"] for e in events} and personnummer in raw
        assert all("stored_state" in e for e in events)
    # The granted subject without a scope naming Event, and an ungranted one with it, get
    # only their share: nothing of the region's plan.
    for caller in (
        system.as_caller("integration", organization=OTHER_REGION, subject=LOG_READER),
        system.as_caller("integration", organization=OTHER_REGION, scopes=("system/Event.rs",)),
    ):
        _, raw = whole_feed(caller.sip)
        assert personnummer not in raw and plan_id not in raw


def test_the_hash_view_is_for_every_auditor_and_holds_no_content(system):
    plan_id, personnummer, _ = shared_plan(system, f"Mål {uuid4().hex}")
    outsider = system.as_caller("auditor", organization=OTHER_REGION)
    response = outsider.sip.get("/events/chain", params={"_count": 5000})
    assert response.status_code == 200
    body = response.json()
    assert personnummer not in response.text and NEED not in response.text
    assert {link["aggregate_id"] for link in body["links"]} >= {plan_id}
    assert {tuple(sorted(link)) for link in body["links"]} == {
        ("aggregate_id", "event_stored", "log_hash", "position", "previous_log_hash",
         "stream_hash", "type", "version")
    }  # fmt: skip
    links = body["links"]
    assert all(b["previous_log_hash"] == a["log_hash"] for a, b in pairwise(links))
    assert outsider.consent.get("/events/checkpoint").status_code == 200
    for who in (
        system.as_caller("integration", scopes=("system/Event.rs",)),
        system.as_caller("coordinator"),
    ):
        assert who.sip.get("/events/chain").status_code == 403
        assert who.sip.get("/events/checkpoint").status_code == 403


def test_the_chain_view_pages_with_a_cursor(system):
    shared_plan(system, "sidor")
    auditor = system.as_caller("auditor")
    links, after, head = [], 0, None
    while head is None or after < head:
        page = auditor.sip.get("/events/chain", params={"after": after, "_count": 3}).json()
        head = page["head"] if head is None else head
        links += [link for link in page["links"] if link["position"] <= head]
        after = page["next"]
    assert [link["position"] for link in links] == list(range(1, head + 1))
    assert links[0]["previous_log_hash"] == "0" * 64
    assert all(b["previous_log_hash"] == a["log_hash"] for a, b in pairwise(links))


# The rules themselves, with a fake disclosure rule.

ACTOR = Actor(subject="rs", role="integration", organization=MUNICIPALITY)


def event(author_organization=None, *, role="coordinator", access_record=False, custodian=REGION,
          aggregate=None, payload=None, topic="services.sip.domain:Plan.NeedRecorded"):  # fmt: skip
    author = None if author_organization is None and role != "patient" else {
        "subject": "u", "role": role, "organization": author_organization
    }  # fmt: skip
    return FeedEvent(
        aggregate_id=aggregate or uuid4(),
        topic=topic,
        author=author,
        payload=payload or {},
        access_record=access_record,
        record_custodian=custodian,
    )


def test_a_record_system_sees_the_custodians_its_disclosure_names_and_the_frame():
    loaded = []

    def load(aggregate_id):
        loaded.append(aggregate_id)
        return aggregate_id

    def disclose(aggregate, actor):
        if aggregate == hidden:
            raise NotFound("CarePlan/x")
        return Disclosure(consents=("c-1",), custodians=frozenset({MUNICIPALITY}))

    plan, hidden = uuid4(), uuid4()
    rule = RecordSystemRule(ACTOR, disclose, load)
    assert rule(event(MUNICIPALITY, aggregate=plan)) == Verdict(True, True, ("c-1",))
    assert rule(event(REGION, aggregate=plan)) == Verdict(True, False, ("c-1",))  # withheld
    assert rule(event(role="patient", aggregate=plan)).content is False  # the person's
    assert rule(event(None, aggregate=plan)).content is True  # the frame
    assert rule(event(MUNICIPALITY, aggregate=hidden)) == OMITTED
    assert rule(event(MUNICIPALITY, access_record=True, custodian=MUNICIPALITY)) == OMITTED
    assert loaded == [plan, hidden]  # once per record


def test_a_kind_withheld_whoever_its_custodian_is_comes_withheld_from_the_feed():
    costs = "services.sip.domain:Plan.CostAllocationProposed"
    disclosure = Disclosure(withheld_kinds=frozenset({"cost-allocation"}))
    rule = RecordSystemRule(
        ACTOR,
        lambda aggregate, actor: disclosure,
        lambda i: i,
        lambda topic: "cost-allocation" if topic == costs else None,
    )
    assert rule(event(REGION, topic=costs)) == Verdict(True, False)
    assert rule(event(MUNICIPALITY, topic=costs)).content is False  # even its own
    assert rule(event(REGION)).content is True


def test_a_record_system_with_every_custodian_disclosed_sees_every_entry():
    rule = RecordSystemRule(ACTOR, lambda aggregate, actor: Disclosure(), lambda i: i)
    assert all(rule(event(org)).content for org in (REGION, MUNICIPALITY, OTHER_REGION, None))
    assert rule(event(role="patient")).content


def test_an_auditor_rule_shows_their_organisations_share():
    rule = AuditorRule(MUNICIPALITY)
    assert rule(event(MUNICIPALITY, custodian=REGION)) == WHOLE  # its own entry
    assert rule(event(REGION, custodian=MUNICIPALITY)) == WITHHELD  # another's, in its record
    assert rule(event(None, custodian=MUNICIPALITY)) == WHOLE  # the frame of its record
    assert rule(event(REGION, custodian=REGION)) == OMITTED
    assert rule(event(None, custodian=REGION)) == OMITTED

    def record(actor_org, outcome, custodian):
        payload = {"actor": {"organization": actor_org}, "outcome": outcome,
                   "custodian": custodian}  # fmt: skip
        return event(access_record=True, payload=payload)

    assert rule(record(MUNICIPALITY, "0", REGION)) == WHOLE  # what its users read
    assert rule(record(MUNICIPALITY, "4", REGION)) == OMITTED  # a refusal stays with REGION
    assert rule(record(REGION, "0", MUNICIPALITY)) == WHOLE  # what was read of its data
    assert rule(record(REGION, "0", REGION)) == OMITTED
    assert AuditorRule(None)(event(None, custodian=None)) == OMITTED


def test_the_whole_log_is_granted_by_configuration_only(monkeypatch, tmp_path):
    embedded = ServiceSettings(data_dir=tmp_path, dev_issuer=True)
    assert embedded.whole_log_reader_subjects == {SERVICE_SUBJECT}
    production = ServiceSettings(data_dir=tmp_path, database_url="postgresql://db/consent")
    assert production.whole_log_reader_subjects == frozenset()
    monkeypatch.setenv("CONSENT_WHOLE_LOG_READERS", "sip-client, archive")
    monkeypatch.setenv("CONSENT_DATABASE_URL", "postgresql://db/consent")
    configured = ServiceSettings.from_env("CONSENT_DATABASE_URL")
    assert configured.whole_log_reader_subjects == {"sip-client", "archive"}
    monkeypatch.setenv("CONSENT_WHOLE_LOG_READERS", "")
    monkeypatch.delenv("CONSENT_DATABASE_URL")
    assert ServiceSettings.from_env("CONSENT_DATABASE_URL").whole_log_reader_subjects == set()


def test_without_the_grant_the_sip_service_gets_no_consent_events(backend):
    """The SIP service follows the consent log by its grant, not by its token's scopes: with
    the consent service granting nobody, it reads only its share, which is nothing, and a
    withdrawal is not noted on the plan."""
    with running_system(backend, whole_log_readers=()) as system:
        plan_id, _, consent_id = shared_plan(system, "utan tillstånd")
        withdrawn = system.consent.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        )
        assert withdrawn.status_code == 200
        system.settle()  # the follower has read up to the consent log's head
        plan = system.sip.get(f"/fhir/CarePlan/{plan_id}").json()
        assert EXT_CONSENT_WITHDRAWN not in str(plan.get("extension", []))
