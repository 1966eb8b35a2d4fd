"""How the disclosure check reads consents (issue 15): from each process's kept copies,
brought up to date with what any process stored since, and decided on a read copy of its own
(`Consent.read_copy`, cheaper than the deep copy commands get) that bringing the kept one up
to date does not change underneath it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.consent_decision import ConsentCheckRequest
from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.ops.offline import open_service
from tests.fhir_data import new_personnummer

REGION, MUNICIPALITY = "SE2321000032-R1", "SE2120000357-K1"
BY = {"subject": "test", "role": "coordinator", "organization": REGION, "unit": None}


def given(application, person: str, kind: str = "permit"):
    at = datetime.now(UTC)
    patient = {"system": PERSONNUMMER_SYSTEM, "value": person}
    return application.give(
        patient=patient, kind=kind, scope="patient-privacy", categories=["sip-plan"],
        performer=[{"identifier": patient}], givers=[{"role": "person"}], form="written",
        organizations=[REGION, MUNICIPALITY], recipients=[], sources=[], exclusions=[],
        period_start=at - timedelta(days=1), period_end=None, given_at=at, recorded_by=BY,
    )  # fmt: skip


def decision(application, person: str, consent_ids: list) -> str:
    request = ConsentCheckRequest(
        patient_system=PERSONNUMMER_SYSTEM, patient_value=person, actor=MUNICIPALITY,
        source=REGION, category="sip-plan", purpose=None,
    )  # fmt: skip
    return application.check(request, consent_ids, datetime.now(UTC), guardians_required=1).decision


@pytest.fixture
def two_processes(backend):
    """Two applications on one database, each with its own kept consents, as two workers."""
    url = backend.database_urls["consent"]
    with (
        open_service("consent", backend.data_dir, url) as first,
        open_service("consent", backend.data_dir, url) as second,
    ):
        yield first.application, second.application


def test_a_withdrawal_in_another_process_denies_the_next_check(two_processes):
    checking, withdrawing = two_processes
    person = new_personnummer()
    consent = given(checking, person)
    for _ in range(2):  # the second one from the kept copy
        assert decision(checking, person, [consent.id]) == "permit"
    assert consent.id in checking.repository.cache.cache

    other = withdrawing.repository.get(consent.id)
    other.withdraw(reason="changed my mind", withdrawn_by=BY, at=datetime.now(UTC))
    withdrawing.save(other)

    assert decision(checking, person, [consent.id]) == "deny"
    assert checking.repository.get(consent.id).withdrawal is not None  # the kept one, too


def test_a_read_copy_is_not_changed_by_bringing_the_kept_one_up_to_date(two_processes):
    checking, overriding = two_processes
    block = given(checking, new_personnummer(), kind="block")
    read = checking.repository.get(block.id, copy=type(block).read_copy)
    kept = checking.repository.cache.get(block.id)
    assert read is not kept and read.overrides == [] and read.version == 1

    other = overriding.repository.get(block.id)
    at = datetime.now(UTC)
    other.override_block(
        organization=MUNICIPALITY, reason="emergency", until=at + timedelta(hours=1),
        basis="emergency", form=None, by=BY, at=at,
    )  # fmt: skip
    overriding.save(other)

    fresh = checking.repository.get(block.id, copy=type(block).read_copy)
    assert len(fresh.overrides) == 1 and fresh.version == 2
    assert read.overrides == [] and read.version == 1  # as it was read
    fresh.overrides.append({"organization": "changed by the reader"})
    assert len(checking.repository.cache.get(block.id).overrides) == 1
