"""Search parameters both services read the same way."""

from datetime import UTC, datetime, timedelta

import pytest

from services.common.fhir_api import FhirError
from services.common.search import date_range, organization_token


def test_date_search_prefixes_take_whole_periods():
    day_start, day_end = date_range(["ge2026-11-23", "le2026-11-23"])
    after, before = date_range(["gt2026-11-23", "lt2026-11-23"])
    assert after == day_end + timedelta(microseconds=1)
    assert before == day_start - timedelta(microseconds=1)
    assert day_start == datetime(2026, 11, 22, 23, tzinfo=UTC)  # midnight in Sweden (CET)
    moment = "2026-11-23T10:00:00.000001+00:00"
    assert date_range([f"gt{moment}"])[0] == datetime(2026, 11, 23, 10, 0, 0, 2, tzinfo=UTC)
    with pytest.raises(FhirError):
        date_range(["ne2026-11-23"])


def test_organisation_tokens_are_hsa_ids_with_or_without_their_system():
    assert organization_token("actor", "SE2321000016-7P31") == "SE2321000016-7P31"
    assert organization_token("actor", "urn:oid:1.2.752.29.4.19|SE2321000016-7P31") == (
        "SE2321000016-7P31"
    )
    assert organization_token("actor", None) is None
    for bad in ("http://other|SE2321000016-7P31", "Kommunen", ""):
        with pytest.raises(FhirError) as refused:
            organization_token("actor", bad)
        assert refused.value.status == 400
