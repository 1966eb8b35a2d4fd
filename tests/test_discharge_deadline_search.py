"""Encounter search by the legal clock (issue 17): `deadline-missed=true` finds the stays with
a deadline missed at the search's instant (done late, or past due and not done), `false` the
others, each named for the duty the law sets; the instant is injected here, the server's own
clock answers over HTTP."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from services.common.fhir_api import FhirError
from services.sip.discharge.routes import SEARCH, StayScan
from tests.conftest import running_system
from tests.discharge_data import PHYSICIAN, admitted, local, noticed, waited
from tests.discharge_http import WARD, admit, staff
from tests.fhir_data import REGION, new_personnummer

MONDAY = local("2026-03-02", "09:00")


class Stays:
    """The two methods StayScan asks of the stays' access."""

    def __init__(self, stays):
        self.stays = {uuid4(): stay for stay in stays}

    def aggregate_ids(self):
        return list(self.stays)

    def aggregate(self, stay_id):
        return self.stays[stay_id]


def scan_at(now, **stays):
    access = Stays(stays.values())
    names = {stay_id: name for stay_id, name in zip(access.stays, stays, strict=True)}
    scan = StayScan(access, access.aggregate_ids, now=lambda: now)
    return lambda **arguments: {names[found] for found in scan(**arguments)}


def test_deadline_missed_finds_the_stays_past_a_deadline_at_the_instant_asked():
    judged = admitted(MONDAY)  # care judged needed, the notice never sent
    judged.judge_care_needed(principals=["region", "municipality"], at=MONDAY, by=PHYSICIAN)
    late_notice = noticed(MONDAY, notice_after=timedelta(hours=25))
    on_time = noticed(MONDAY)
    no_sip = waited(local("2026-03-10"), local("2026-03-20"), sip_after=None)
    called = waited(local("2026-03-10"), local("2026-03-20"))
    stays = dict(judged=judged, late=late_notice, on_time=on_time, no_sip=no_sip, called=called)

    within_a_day = scan_at(MONDAY + timedelta(hours=23), judged=judged, on_time=on_time)
    assert within_a_day(deadline_missed=True) == set()
    assert within_a_day(deadline_missed=False) == {"judged", "on_time"}

    later = scan_at(local("2026-03-25"), **stays)
    assert later(deadline_missed=True) == {"judged", "late", "no_sip"}
    assert later(deadline_missed=False) == {"on_time", "called"}
    assert later() == set(stays)  # not asked: every stay


def test_deadline_missed_reads_true_or_false_and_refuses_anything_else():
    parameter = next(p for p in SEARCH.parameters if p.name == "deadline-missed")
    assert parameter.alternative(None, "true").arguments == {"deadline_missed": True}
    assert parameter.alternative(None, "false").arguments == {"deadline_missed": False}
    for wrong in ("yes", "1", "TRUE"):
        with pytest.raises(FhirError) as refused:
            parameter.alternative(None, wrong)
        assert refused.value.status == 400 and refused.value.expression == "deadline-missed"


def test_over_http_a_stay_just_admitted_has_missed_nothing_and_the_parameter_is_declared(
    backend,
):
    with running_system(backend) as system:
        ward = staff(system, REGION, WARD)
        admitted_now = admit(ward, new_personnummer())
        assert admitted_now.status_code == 200, admitted_now.text
        stay_id = admitted_now.json()["id"]

        def ids(value):
            found = ward.post("/fhir/Encounter/_search", data={"deadline-missed": value})
            assert found.status_code == 200, found.text
            return {e["resource"]["id"] for e in found.json().get("entry", [])}

        assert stay_id in ids("false") and stay_id not in ids("true")
        bad = ward.get("/fhir/Encounter", params={"deadline-missed": "maybe"})
        assert bad.status_code == 400 and "deadline-missed" in bad.text
        statement = system.sip.get("/fhir/metadata").json()
        encounter = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Encounter")
        assert "deadline-missed" in {p["name"] for p in encounter["searchParam"]}
