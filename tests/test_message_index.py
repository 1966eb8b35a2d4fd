"""The messages' read model (services/sip/messages/projections.py, issue 15): rebuilt from
zero to the same rows, caught up before a search answers, holding no personnummer, and
narrowing the Communication search to the messages that may concern the caller: the messages
it loads do not grow with other organisations' messages."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.sip.messages.projections import message_index, message_parties
from tests.communication_http import a_plan, message, send
from tests.conftest import running_system
from tests.fhir_data import MUNICIPALITY, OTHER_REGION, new_personnummer
from tests.test_stay_index import Loads


@pytest.fixture(scope="module")
def system(module_backend):
    with running_system(module_backend) as system:
        yield system


def sent(system, plan_id):
    answered = send(system.sip, message(plan=plan_id, to=(MUNICIPALITY,)))
    assert answered.status_code == 201, answered.text
    return answered.json()["id"]


def rows(index):
    index.catch_up()
    with index.engine.connect() as connection:
        found = connection.execute(select(message_index).order_by(message_index.c.message_id))
        parties = connection.execute(
            select(message_parties).order_by(message_parties.c.message_id, message_parties.c.hsa_id)
        )
        return [tuple(r) for r in found], [tuple(p) for p in parties]


def test_rebuilt_from_zero_to_the_same_rows_with_no_personnummer(system):
    personnummer = new_personnummer()
    plan = a_plan(system, personnummer)
    sent(system, plan["id"])
    index = system.sip_app.state.message_index
    before = rows(index)
    assert before[0] and before[1]
    flat = " ".join(str(value) for row in [*before[0], *before[1]] for value in row)
    assert personnummer not in flat
    index.rebuild()
    assert rows(index) == before


def test_a_search_right_after_a_send_sees_it_and_an_outsider_still_sees_nothing(system):
    personnummer = new_personnummer()
    plan = a_plan(system, personnummer)
    municipality = system.as_caller("professional", MUNICIPALITY).sip
    municipality.get("/fhir/Communication")  # caught up before the send
    message_id = sent(system, plan["id"])
    found = municipality.get("/fhir/Communication", params={"_count": 1000}).json()
    assert message_id in {e["resource"]["id"] for e in found.get("entry", [])}
    own = system.as_caller("patient", None, patient=personnummer).sip.get("/fhir/Communication")
    assert [e["resource"]["id"] for e in own.json()["entry"]] == [message_id]
    outsider = system.as_caller("professional", OTHER_REGION).sip
    assert outsider.get("/fhir/Communication").json()["total"] == 0
    assert outsider.get(f"/fhir/Communication/{message_id}").status_code == 404


def test_the_messages_loaded_by_a_search_do_not_grow_with_other_organisations_messages(
    system, monkeypatch
):
    plan = a_plan(system, new_personnummer())
    outsider = system.as_caller("professional", OTHER_REGION).sip
    patient = system.as_caller("patient", None, patient=new_personnummer()).sip
    loads = Loads(monkeypatch, system.sip_app.state.plans)

    def measured():
        return (
            loads.of(lambda: outsider.get("/fhir/Communication", params={"_count": 1000})),
            loads.of(lambda: patient.get("/fhir/Communication")),
        )

    for _ in range(3):
        sent(system, plan["id"])
    with_3 = measured()
    for _ in range(20):
        sent(system, plan["id"])
    assert measured() == with_3 == (0, 0)
