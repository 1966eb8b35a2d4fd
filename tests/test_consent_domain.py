from datetime import UTC, datetime, timedelta

import pytest

from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.identifiers import PERSONNUMMER_SYSTEM, PersonIdentifier, with_check_digit
from services.common.domain import InvalidCommand, RuleViolation
from services.consent.domain import Consent, decide

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
ADULT = PersonIdentifier(PERSONNUMMER_SYSTEM, "191212121212")
CHILD = PersonIdentifier(PERSONNUMMER_SYSTEM, with_check_digit("20150315238"))
REGION = "SE2321000032-R1"
MUNICIPALITY = "SE2120000357-K1"
SCHOOL = "SE2120000357-S1"
ACTOR = {"subject": "u1", "role": "coordinator", "organization": REGION, "unit": None}
JUDGED = {"by": "Kurator Anna Berg", "at": NOW - timedelta(days=31), "basis": "samtal"}


def given(person: PersonIdentifier = ADULT, **changes) -> Consent:
    arguments = {
        "patient": person.as_fhir(),
        "kind": "permit",
        "scope": "patient-privacy",
        "categories": ["sip-plan"],
        "performer": [{"identifier": person.as_fhir()}],
        "givers": [{"role": "person"}],
        "form": "written",
        "organizations": [REGION, MUNICIPALITY],
        "recipients": [],
        "sources": [],
        "exclusions": [],
        "period_start": NOW - timedelta(days=30),
        "period_end": None,
        "given_at": NOW - timedelta(days=30),
        "recorded_by": ACTOR,
    } | changes
    return Consent(**arguments)


def block_of(source: str, **changes) -> Consent:
    return given(kind="block", categories=[], organizations=[source], **changes)


def check(actor=MUNICIPALITY, source=REGION, category="sip-plan", person=ADULT):
    return ConsentCheckRequest(
        patient_system=person.system,
        patient_value=person.value,
        actor=actor,
        source=source,
        category=category,
    )


def decide_now(consents, request=None, person=ADULT, **options):
    return decide(consents, request or check(person=person), NOW, person=person, **options)


def test_a_consent_in_force_permits_and_is_named():
    consent = given()
    decision = decide_now([consent])
    assert decision == ConsentDecision(
        decision="permit", reason=decision.reason, consents=(str(consent.id),)
    )
    assert decision.reason.startswith("consent-in-force")


def test_deny_by_default_without_any_consent():
    decision = decide_now([])
    assert decision.decision == "deny"
    assert decision.reason.startswith("no-consent")
    assert decision.consents == ()


@pytest.mark.parametrize(
    ("consent_changes", "request_changes", "why"),
    [
        ({"period_end": NOW - timedelta(seconds=1)}, {}, "not in force"),
        ({"period_start": NOW + timedelta(days=1)}, {}, "not in force"),
        ({}, {"category": "health-care"}, "does not cover 'health-care'"),
        ({}, {"actor": "SE2321000016-X1"}, "requesting organisation"),
        ({}, {"source": "SE2321000016-X1"}, "source organisation"),
        (
            {"exclusions": [{"organizations": [SCHOOL]}], "recipients": [SCHOOL]},
            {"actor": SCHOOL},
            "excluded",
        ),
        (
            {"exclusions": [{"categories": ["sip-plan"]}]},
            {},
            "excluded",
        ),
    ],
)
def test_a_consent_that_does_not_cover_the_disclosure_denies(consent_changes, request_changes, why):
    decision = decide_now([given(**consent_changes)], check(**request_changes))
    assert decision.decision == "deny"
    assert why in decision.reason


def test_a_one_way_consent_covers_its_direction_only():
    one_way = given(organizations=[], sources=[REGION], recipients=[MUNICIPALITY])
    assert decide_now([one_way], check(actor=MUNICIPALITY, source=REGION)).decision == "permit"
    backwards = decide_now([one_way], check(actor=REGION, source=MUNICIPALITY))
    assert backwards.decision == "deny"


def test_withdrawal_ends_the_consent_and_cannot_be_repeated():
    consent = given()
    consent.withdraw(reason="changed my mind", withdrawn_by=ACTOR, at=NOW)
    assert consent.status == "inactive"
    decision = decide_now([consent])
    assert decision.decision == "deny"
    assert "withdrawn" in decision.reason
    with pytest.raises(RuleViolation) as refused:
        consent.withdraw(reason="again", withdrawn_by=ACTOR, at=NOW)
    assert refused.value.rule == "consent-withdrawal-is-final"
    assert consent.version == 2


def test_a_registration_made_in_error_counts_for_nothing_and_stays_in_history():
    consent = given()
    consent.mark_entered_in_error(reason="wrong person", by=ACTOR, at=NOW)
    assert consent.status == "entered-in-error"
    assert decide_now([consent]).decision == "deny"
    with pytest.raises(RuleViolation) as refused:
        consent.withdraw(reason="too late", withdrawn_by=ACTOR, at=NOW)
    assert refused.value.rule == "consent-entered-in-error"
    assert [type(e).__name__ for e in consent.collect_events()] == ["Given", "EnteredInError"]


def test_a_block_denies_even_where_consent_exists():
    consent, block = given(), block_of(REGION)
    decision = decide_now([consent, block])
    assert decision.decision == "deny"
    assert f"Consent/{block.id}" in decision.reason
    other_source = decide_now([consent, block], check(actor=REGION, source=MUNICIPALITY))
    assert other_source.decision == "permit"


def test_a_temporary_override_lets_one_organisation_past_a_block_and_is_named():
    consent, block = given(), block_of(REGION)
    block.override_block(
        organization=MUNICIPALITY,
        reason="acute care need",
        until=NOW + timedelta(hours=1),
        basis="emergency",
        form=None,
        by=ACTOR,
        at=NOW,
    )
    decision = decide_now([consent, block])
    assert decision.decision == "permit"
    assert set(decision.consents) == {str(consent.id), str(block.id)}
    assert "overridden" in decision.reason
    assert decision.valid_until == NOW + timedelta(hours=1)  # the override's end
    later = decide(
        [consent, block], check(), NOW + timedelta(hours=2), person=ADULT, guardians_required=1
    )
    assert later.decision == "deny"


@pytest.mark.parametrize(
    ("kind", "until", "rule"),
    [
        ("permit", timedelta(hours=1), "override-only-blocks"),
        ("block", timedelta(0), "override-is-temporary"),
    ],
)
def test_an_override_is_refused_unless_it_is_temporary_and_on_a_block(kind, until, rule):
    consent = block_of(REGION) if kind == "block" else given()
    with pytest.raises(RuleViolation) as refused:
        consent.override_block(
            organization=MUNICIPALITY,
            reason="r",
            until=NOW + until,
            basis="consent",
            form="oral",
            by=ACTOR,
            at=NOW,
        )
    assert refused.value.rule == rule


@pytest.mark.parametrize(
    ("givers", "guardians_required", "decision"),
    [
        ([{"role": "guardian"}], 1, "permit"),
        ([{"role": "guardian"}], 2, "deny"),
        ([{"role": "guardian"}, {"role": "guardian"}], 2, "permit"),
        ([{"role": "guardian", "sole_custody": True}], 2, "permit"),
        ([{"role": "child", "mature": True, "maturity": JUDGED}], 2, "permit"),
        # Recorded before judgements were kept: the bare flag no longer counts.
        ([{"role": "child", "mature": True}], 2, "deny"),
        ([{"role": "child"}], 1, "deny"),
        ([{"role": "guardian"}, {"role": "child"}], 1, "permit"),
        ([{"role": "relative"}], 1, "deny"),
    ],
)
def test_a_childs_consent_is_given_by_the_guardians_or_a_mature_child(
    givers, guardians_required, decision
):
    consent = given(person=CHILD, givers=[{"role": "guardian"}])
    consent.givers = givers  # as a stored event replays them: unchecked
    result = decide_now([consent], person=CHILD, guardians_required=guardians_required)
    assert result.decision == decision


@pytest.mark.parametrize(
    ("givers", "decision"),
    [
        ([{"role": "person"}], "permit"),
        ([{"role": "god-man"}], "permit"),
        ([{"role": "forvaltare"}], "permit"),
        ([{"role": "guardian"}], "deny"),
        ([{"role": "relative"}], "deny"),
    ],
)
def test_an_adults_consent_is_given_by_the_person_or_their_representative(givers, decision):
    assert decide_now([given(givers=givers)]).decision == decision


@pytest.mark.parametrize(
    ("element", "command"),
    [
        ("categories", lambda: given(categories=["sip-plan", None])),
        ("organizations", lambda: given(organizations=None)),
        ("period_end", lambda: given(period_end="9999-12-31")),
        ("patient.value", lambda: given(patient={"system": PERSONNUMMER_SYSTEM, "value": None})),
        ("reason", lambda: given().withdraw(reason=None, withdrawn_by=ACTOR, at=NOW)),
        ("reason", lambda: given().mark_entered_in_error(reason="\x00", by=ACTOR, at=NOW)),
        ("until", lambda: block_of(REGION).override_block(organization=MUNICIPALITY,
            reason="akut", until=None, basis="emergency", form=None, by=ACTOR, at=NOW)),
        ("basis", lambda: block_of(REGION).override_block(organization=MUNICIPALITY,
            reason="akut", until=NOW + timedelta(hours=1), basis="because", form=None, by=ACTOR,
            at=NOW)),
        ("form", lambda: block_of(REGION).override_block(organization=MUNICIPALITY,
            reason="ok", until=NOW + timedelta(hours=1), basis="consent", form=None, by=ACTOR,
            at=NOW)),
        ("givers[0].maturity", lambda: given(person=CHILD, givers=[{"role": "child",
            "mature": True}])),
        ("givers[0].maturity.basis", lambda: given(person=CHILD, givers=[{"role": "child",
            "maturity": {**JUDGED, "basis": " "}}])),
        ("form", lambda: given(form="telepathic")),
    ],
)  # fmt: skip
def test_consent_commands_refuse_missing_or_malformed_values(element, command):
    with pytest.raises(InvalidCommand) as refusal:
        command()
    assert refusal.value.element == element


def test_a_permit_is_valid_until_the_first_end_of_what_it_relies_on():
    ends_soon = given(period_end=NOW + timedelta(hours=2))
    open_ended = given()
    assert decide_now([open_ended]).valid_until is None
    assert decide_now([open_ended, ends_soon]).valid_until == NOW + timedelta(hours=2)
    # A block of the source that starts later ends the permit when it starts.
    coming = block_of(REGION, period_start=NOW + timedelta(minutes=5))
    decision = decide_now([open_ended, ends_soon, coming])
    assert (decision.decision, decision.valid_until) == ("permit", NOW + timedelta(minutes=5))
    assert decide_now([open_ended, block_of(MUNICIPALITY, period_start=NOW + timedelta(minutes=5))]
                      ).valid_until is None  # fmt: skip
