"""Every entry of a plan has a custodian, and one rule decides what a reader sees of it at
every way out, over real HTTP: the region that started the plan does not see the
municipality's needs, goals, interventions, participants and meetings without the person's
consent (nor after a withdrawal, nor through the person's block), sees them marked as
withheld, and sees them with a consent; an outsider gets 404 everywhere; the person sees all;
cost shares stay between the principals; activation needs consent both ways."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.canonical import (
    EXT_COST_ALLOCATION,
    EXT_WITHHELD_ENTRIES,
    PARTICIPATION_TYPE_SYSTEM,
    RECIPIENT_ROLE,
    SECURITY_LABEL_REDACTED,
)
from contracts.identifiers import HSA_ID_SYSTEM, PERSONNUMMER_SYSTEM
from services.common.disclosure import PERSON, Disclosure
from services.sip.domain import Plan
from services.sip.redaction import redact, withheld_of
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
from tests.servers import wait_until

SCHOOL = "SE2120000357-S0001"
# The municipality's entries: no word of them may reach a reader who may not see them.
SECRETS = ("Boendestöd i egen lägenhet", "Klara tvätten själv", "Kontaktperson Olle")
MUNICIPAL_GOAL = "goal-1"  # the plan's only goal, the municipality's
MUNICIPAL_MEETING = "meeting-1"


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def shared_plan(system, personnummer):
    """A region plan prepared for activation (region entries), with the municipality's own
    need, goal, intervention, participant and meeting."""
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    steps = [
        ("record-need", {"text": SECRETS[0]}),
        ("set-goal", {"text": SECRETS[1], "need": "need-2"}),
        (
            "assign-intervention",
            {
                "text": "Boendestödjare två gånger i veckan",
                "kind": "support",
                "need": "need-2",
                "goal": "goal-1",
                "performerOrganization": MUNICIPALITY,
                "responsiblePrincipal": "municipality",
                "responsibleOrganization": MUNICIPALITY,
            },
        ),
        (
            "add-participant",
            {"kind": "professional", "name": SECRETS[2], "organization": MUNICIPALITY},
        ),
        (
            "schedule-meeting",
            {
                "start": "2027-02-01T09:00:00Z",
                "end": "2027-02-01T10:00:00Z",
                "location": "Kommunhuset",
            },
        ),
    ]
    for operation, values in steps:
        ok(run(municipality, plan_id, operation, **values))
    return plan_id


def give(system, body, client=None):
    response = (client or system.consent).post("/fhir/Consent", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def one_way(personnummer, source, recipient):
    """The person's consent to disclosure from `source` to `recipient` only."""
    body = consent(personnummer, organizations=(source,))
    body["provision"]["actor"] = [
        {
            "role": {"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": RECIPIENT_ROLE}]},
            "reference": {"identifier": {"system": HSA_ID_SYSTEM, "value": recipient}},
        }
    ]
    return body


def withheld(resource):
    """{(custodian, kind): count} from the withheld-entries extensions."""
    marks = {}
    for extension in resource.get("extension", []):
        if extension["url"] == EXT_WITHHELD_ENTRIES:
            parts = {part["url"]: part for part in extension["extension"]}
            custodian = parts["custodian"].get("valueIdentifier", {}).get("value") or parts[
                "custodian"
            ].get("valueCode")
            marks[(custodian, parts["kind"]["valueCode"])] = parts["count"]["valueUnsignedInt"]
    return marks


def redacted(resource):
    return any(
        label["code"] == SECURITY_LABEL_REDACTED for label in resource["meta"].get("security", [])
    )


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text


def now():
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def every_way_out(caller, plan_id):
    """Every answer a reader gets of the plan: read, `_at`, vread, instance and type
    `_history`, search (with `_include`), `$as-of`, the CareTeam view and an operation's
    answer; as (name, response)."""
    current = caller.get(f"/fhir/CarePlan/{plan_id}").json()
    version = current["meta"]["versionId"]
    subject = current["subject"]["identifier"]
    return [
        ("read", caller.get(f"/fhir/CarePlan/{plan_id}")),
        ("_at", caller.get(f"/fhir/CarePlan/{plan_id}", params={"_at": now()})),
        ("vread", caller.get(f"/fhir/CarePlan/{plan_id}/_history/{version}")),
        ("_history", caller.get(f"/fhir/CarePlan/{plan_id}/_history")),
        ("type _history", caller.get("/fhir/CarePlan/_history", params={"_count": 1000})),
        (
            "search",
            caller.get(
                "/fhir/CarePlan",
                params=[
                    ("subject:identifier", f"{subject['system']}|{subject['value']}"),
                    ("_include", "CarePlan:goal"),
                    ("_include", "CarePlan:care-team"),
                ],
            ),
        ),
        ("$as-of", caller.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": now()})),
        ("CareTeam", caller.get(f"/fhir/CareTeam/{plan_id}-team")),
        ("CareTeam _history", caller.get(f"/fhir/CareTeam/{plan_id}-team/_history")),
        ("operation", run(caller, plan_id, "set-follow-up", date="2027-04-01")),
    ]


def test_the_starter_sees_neither_the_municipalitys_entries_nor_a_word_of_them(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    for name, response in every_way_out(system.sip, plan_id):
        assert response.status_code == 200, (name, response.text)
        assert_no_secret(response.text)
    plan = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert redacted(plan)
    marks = withheld(plan)
    for kind in ("need", "goal", "intervention", "participant", "meeting"):
        assert marks[(MUNICIPALITY, kind)] == 1, (kind, marks)
    assert [c["code"]["text"] for c in plan["contained"]] == ["Jag vill klara mig hemma"]
    assert "goal" not in plan
    assert "need-2" not in str(plan) and "goal-1" not in str(plan)  # no ids of withheld entries
    # The frame stays: who takes part, overall responsibility, the next follow-up.
    team = ok(system.sip.get(f"/fhir/CareTeam/{plan_id}-team"))
    assert MUNICIPALITY in str(team["participant"]) and redacted(team)
    # The municipality's goal and meeting are not there for the region at all.
    for path in (
        f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}",
        f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}/_history",
        f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}/_history/{plan['meta']['versionId']}",
        f"/fhir/Appointment/{plan_id}-{MUNICIPAL_MEETING}",
        f"/fhir/Appointment/{plan_id}-{MUNICIPAL_MEETING}/_history",
    ):
        response = system.sip.get(path)
        assert response.status_code == 404, (path, response.text)
        assert_no_secret(response.text)
    for path in ("/fhir/Goal/_history", "/fhir/Appointment/_history"):
        response = system.sip.get(path, params={"_count": 1000})
        assert response.status_code == 200
        assert_no_secret(response.text)


def test_the_municipality_sees_its_own_entries_and_the_frame_without_consent(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    plan = ok(municipality.get(f"/fhir/CarePlan/{plan_id}"))
    assert [c["code"]["text"] for c in plan["contained"]] == [SECRETS[0]]
    assert withheld(plan)[(REGION, "need")] == 1
    assert "Jag vill klara mig hemma" not in str(plan)
    assert plan["status"] == "draft" and plan["subject"]["identifier"]["value"] == personnummer
    goal = ok(municipality.get(f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}"))
    assert goal["description"]["text"] == SECRETS[1]


def test_a_consent_from_the_municipality_to_the_region_discloses_until_withdrawn(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    consent_id = give(system, one_way(personnummer, MUNICIPALITY, REGION))
    for name, response in every_way_out(system.sip, plan_id):
        assert response.status_code == 200, (name, response.text)
        if name not in ("type _history", "CareTeam", "CareTeam _history"):
            assert SECRETS[0] in response.text, name
    plan = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert not redacted(plan) and not withheld(plan)
    goal = ok(system.sip.get(f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}"))
    assert goal["description"]["text"] == SECRETS[1]
    # One way only: the municipality still does not see the region's need.
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert "Jag vill klara mig hemma" not in municipality.get(f"/fhir/CarePlan/{plan_id}").text

    ok(
        system.consent.post(
            f"/fhir/Consent/{consent_id}/$withdraw", json=withdrawal(), headers=FHIR_JSON
        )
    )
    assert wait_until(
        lambda: SECRETS[0] not in system.sip.get(f"/fhir/CarePlan/{plan_id}").text, seconds=1.0
    ), "the region still sees the municipality's need a second after the withdrawal"
    system.settle()
    for name, response in every_way_out(system.sip, plan_id):
        assert response.status_code == 200, (name, response.text)
        assert_no_secret(response.text)
    assert system.sip.get(f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}").status_code == 404


def test_the_persons_block_on_the_municipality_stops_disclosure_to_the_region(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    give(system, consent(personnummer))
    assert SECRETS[0] in system.sip.get(f"/fhir/CarePlan/{plan_id}").text
    block = consent(personnummer, organizations=(MUNICIPALITY,), categories=())
    block["provision"]["type"] = "deny"
    # The person places it (the region, which it does not name, may not).
    give(system, block, system.as_caller("patient", None, patient=personnummer).consent)
    assert wait_until(
        lambda: SECRETS[0] not in system.sip.get(f"/fhir/CarePlan/{plan_id}").text, seconds=1.0
    )
    system.settle()
    for name, response in every_way_out(system.sip, plan_id):
        assert response.status_code == 200, (name, response.text)
        assert_no_secret(response.text)
    assert withheld(ok(system.sip.get(f"/fhir/CarePlan/{plan_id}")))[(MUNICIPALITY, "need")] == 1
    # The block is on the municipality's information: the region's still reaches it.
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert "Jag vill klara mig hemma" in municipality.get(f"/fhir/CarePlan/{plan_id}").text


def test_an_outsider_gets_404_from_every_way_out(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    give(system, consent(personnummer, organizations=(REGION, MUNICIPALITY, OTHER_REGION)))
    outsider = system.as_caller(organization=OTHER_REGION).sip
    for path in (
        f"/fhir/CarePlan/{plan_id}",
        f"/fhir/CarePlan/{plan_id}/_history",
        f"/fhir/CarePlan/{plan_id}/_history/1",
        f"/fhir/CareTeam/{plan_id}-team",
        f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}",
        f"/fhir/Appointment/{plan_id}-{MUNICIPAL_MEETING}",
    ):
        assert outsider.get(path).status_code == 404, path
    assert outsider.get(f"/fhir/CarePlan/{plan_id}", params={"_at": now()}).status_code == 404
    as_of = outsider.get(f"/fhir/CarePlan/{plan_id}/$as-of", params={"instant": now()})
    assert as_of.status_code == 404
    assert run(outsider, plan_id, "record-need", text="x").status_code == 404
    found = ok(outsider.get("/fhir/CarePlan", params={"subject:identifier": personnummer}))
    assert found.get("entry", []) == []
    for path in ("/fhir/CarePlan/_history", "/fhir/Goal/_history"):
        assert plan_id not in outsider.get(path, params={"_count": 1000}).text


def test_the_person_sees_all_of_their_plan_but_no_cost_shares(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    shares = [
        {"organization": REGION, "percent": 40},
        {"organization": MUNICIPALITY, "percent": 60},
    ]
    ok(
        run(
            system.sip,
            plan_id,
            "allocate-cost",
            intervention="intervention-1",
            share=shares,
            periodStart="2027-01-01",
        )
    )
    person = system.as_caller("patient", organization=None, patient=personnummer).sip
    plan = ok(person.get(f"/fhir/CarePlan/{plan_id}"))
    for secret in SECRETS[:1]:
        assert secret in str(plan)
    assert (
        ok(person.get(f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}"))["description"]["text"]
        == SECRETS[1]
    )
    assert SECRETS[2] in person.get(f"/fhir/CareTeam/{plan_id}-team").text
    assert EXT_COST_ALLOCATION not in str(plan)
    assert withheld(plan) == {(REGION, "cost-allocation"): 1}
    assert EXT_COST_ALLOCATION in system.sip.get(f"/fhir/CarePlan/{plan_id}").text


def test_a_school_taking_part_sees_no_cost_shares_even_with_consent(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    ok(
        run(
            system.sip,
            plan_id,
            "invite-organization",
            organization=SCHOOL,
            kind="other",
            name="Skolan",
        )
    )
    shares = [
        {"organization": REGION, "percent": 40},
        {"organization": MUNICIPALITY, "percent": 60},
    ]
    ok(
        run(
            system.sip,
            plan_id,
            "allocate-cost",
            intervention="intervention-1",
            share=shares,
            periodStart="2027-01-01",
        )
    )
    give(system, consent(personnummer, organizations=(REGION, MUNICIPALITY, SCHOOL)))
    school = system.as_caller(organization=SCHOOL).sip
    plan = ok(school.get(f"/fhir/CarePlan/{plan_id}"))
    assert "Hemtjänst" in str(plan)  # the intervention itself, by consent
    assert EXT_COST_ALLOCATION not in str(plan)
    assert withheld(plan) == {(REGION, "cost-allocation"): 1}
    # The principals see the shares.
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    assert EXT_COST_ALLOCATION in municipality.get(f"/fhir/CarePlan/{plan_id}").text
    # Nor through the event feed: the school's record system gets the event, withheld.
    school_system = system.as_caller("integration", organization=SCHOOL).sip
    events, raw = whole_feed(school_system, type="Plan")
    costs = [e for e in events if e["type"].endswith("CostAllocationProposed")]
    assert [e["aggregate_id"] for e in costs] == [plan_id]
    assert costs[0]["payload"] is None and "withheld" in costs[0]
    assert '"percent"' not in raw


def test_search_does_not_match_through_a_withheld_entry(system):
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    ok(
        run(
            system.sip,
            plan_id,
            "invite-organization",
            organization=MUNICIPALITY,
            kind="municipality",
        )
    )
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    ok(run(municipality, plan_id, "record-need", text=SECRETS[0]))
    ok(
        run(
            municipality,
            plan_id,
            "assign-intervention",
            text="Boendestöd",
            kind="support",
            performerOrganization=MUNICIPALITY,
            responsiblePrincipal="municipality",
            responsibleOrganization=MUNICIPALITY,
        )
    )
    query = {"subject:identifier": personnummer, "responsible-organization": MUNICIPALITY}
    assert ok(system.sip.get("/fhir/CarePlan", params=query)).get("entry", []) == []
    assert len(ok(municipality.get("/fhir/CarePlan", params=query))["entry"]) == 1
    give(system, one_way(personnummer, MUNICIPALITY, REGION))
    assert len(ok(system.sip.get("/fhir/CarePlan", params=query))["entry"]) == 1


def test_activation_needs_consent_both_ways_between_the_principals(system):
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    prepare_for_activation(system.sip, plan_id)
    one_way_id = give(system, one_way(personnummer, MUNICIPALITY, REGION))
    refused = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert refused.status_code == 409, refused.text
    diagnostics = refused.json()["issue"][0]["diagnostics"]
    assert (
        f"from {REGION} (region) to {MUNICIPALITY} (municipality) is not permitted" in diagnostics
    )
    assert f"from {MUNICIPALITY}" not in diagnostics
    assert one_way_id not in diagnostics and "Consent/" not in diagnostics
    assert ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["status"] == "draft"

    other_way_id = give(system, one_way(personnummer, REGION, MUNICIPALITY))
    activated = ok(system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate"))
    relied_on = {info["identifier"]["value"] for info in activated["supportingInfo"]}
    assert relied_on == {f"urn:uuid:{one_way_id}", f"urn:uuid:{other_way_id}"}


def test_the_persons_own_entries_are_seen_by_every_organisation_taking_part():
    """The person's entries (recorded with their own token) are theirs, not any
    organisation's: every reader of the plan sees them, no consent asked."""
    plan = Plan(
        subject={"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "198001019802"},
        starting_organization=REGION,
        starting_organization_kind="region",
        initiative="person",
        title=None,
        description=None,
        started_at=datetime(2026, 11, 1, tzinfo=UTC),
        started_by={"role": "coordinator", "organization": REGION},
    )
    at = datetime(2026, 11, 2, tzinfo=UTC)
    plan.invite_organization(
        hsa_id=MUNICIPALITY, kind="municipality", name=None, at=at, by={"organization": REGION}
    )
    plan.record_need(text="Mina egna ord", wishes=None, at=at, by={"role": "patient"})
    plan.record_need(text=SECRETS[0], wishes=None, at=at, by={"organization": MUNICIPALITY})
    assert plan.needs["need-1"].custodian == PERSON
    assert plan.needs["need-2"].custodian == MUNICIPALITY
    region = redact(plan, Disclosure(custodians=frozenset({REGION, PERSON})))
    assert [n.text for n in region.needs.values()] == ["Mina egna ord"]
    assert [(w.custodian, w.kind) for w in withheld_of(region)] == [(MUNICIPALITY, "need")]
    assert plan.needs.keys() == {"need-1", "need-2"}  # the plan itself is left whole


def test_an_entry_withheld_from_the_caller_cannot_be_changed_by_it(system):
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    version = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    attempts = [
        ("revise-goal", {"goal": MUNICIPAL_GOAL, "text": "Annat", "reason": "Läsa gamla texten"}),
        ("assess-goal", {"goal": MUNICIPAL_GOAL, "outcome": "achieved"}),
        ("set-intervention-status", {"intervention": "intervention-2", "status": "done"}),
        ("record-meeting", {"meeting": MUNICIPAL_MEETING, "notes": "Anteckning"}),
        ("set-goal", {"text": "Mål på kommunens behov", "need": "need-2"}),
    ]
    for operation, values in attempts:
        refused = run(system.sip, plan_id, operation, **values)
        assert refused.status_code == 409, (operation, refused.text)
        assert_no_secret(refused.text)
    after = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))
    assert after["meta"]["versionId"] == version  # nothing written
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    goal = ok(municipality.get(f"/fhir/Goal/{plan_id}-{MUNICIPAL_GOAL}"))
    assert goal["description"]["text"] == SECRETS[1] and "note" not in goal


def reads_by_region_found_by(auditor, personnummer, plan_id):
    """The region's reads of the plan that the auditor's AuditEvent search finds: (consents)."""
    log = ok(
        auditor.get(
            "/fhir/AuditEvent",
            params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}", "action": "R"},
        )
    )
    found = []
    for entry in log.get("entry", []):
        event = entry["resource"]
        organizations = [a["who"]["identifier"]["value"] for a in event["agent"][1:]]
        whats = [e["what"] for e in event["entity"] if "what" in e]
        references = [what.get("reference", "") for what in whats]
        if REGION in organizations and any(plan_id in r for r in references):
            found.append(
                sorted(
                    what["identifier"]["value"]
                    for what in whats
                    if what.get("type") == "Consent" and "identifier" in what
                )
            )
    return found


def test_a_read_of_an_organisations_entries_is_in_that_organisations_log(system):
    """Each custodian's auditors find who read its entries and on which consent; a read that
    showed none of them is not theirs to see."""
    personnummer = new_personnummer()
    plan_id = shared_plan(system, personnummer)
    municipal_auditor = system.as_caller("auditor", organization=MUNICIPALITY).sip
    ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))  # the municipality's entries withheld
    assert reads_by_region_found_by(municipal_auditor, personnummer, plan_id) == []

    consent_id = give(system, one_way(personnummer, MUNICIPALITY, REGION))
    assert SECRETS[0] in system.sip.get(f"/fhir/CarePlan/{plan_id}").text
    assert reads_by_region_found_by(municipal_auditor, personnummer, plan_id) == [
        [f"urn:uuid:{consent_id}"]
    ]
