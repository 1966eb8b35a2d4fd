"""The stay's personal fields sealed as the plan's are (docs/decisions/0007, 0008): with the
service's personal-data keys switched on, the stored events of a stay walked through every
operation hold neither the personnummer nor the free text in clear (the care contact's name,
the reasons, the secrecy judgement), and the Encounter still reads back as written."""

from __future__ import annotations

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.sip.discharge.fhir import EXT_CARE_CONTACT, EXT_OUTPATIENT_UNAVAILABLE, EXT_READY
from tests.conftest import running_system
from tests.discharge_http import WARD, a_stays_whole_life, extension, staff
from tests.fhir_data import REGION, new_personnummer
from tests.test_personal_data_switched_on import stored_states

# Parts of the free text a_stays_whole_life writes (ASCII, so that JSON's escaping of å, ä, ö
# cannot hide one in clear): the care contact's name, the reasons, the secrecy judgement.
FREE_TEXT = ("Svensson", "feber", "LSU 4 kap", "ingen hemsjukv")


def part(resource_extension, url):
    return next(p["valueString"] for p in resource_extension["extension"] if p["url"] == url)


def test_a_stays_stored_events_hold_no_personal_data_in_clear_and_it_reads_back(backend):
    personnummer = new_personnummer()
    with running_system(backend) as system:
        stay_id = a_stays_whole_life(system, personnummer)
        encounter = staff(system, REGION, WARD).get(f"/fhir/Encounter/{stay_id}")
        assert encounter.status_code == 200, encounter.text
        stay = encounter.json()
        assert stay["subject"]["identifier"] == {
            "system": PERSONNUMMER_SYSTEM,
            "value": personnummer,
        }
        assert part(extension(stay, EXT_CARE_CONTACT), "name") == "Sköterska Svensson"
        withdrawn = [
            e for e in stay["extension"] if e["url"] == EXT_READY
            and any(p["url"] == "reason" for p in e["extension"])
        ]  # fmt: skip
        assert [part(e, "reason") for e in withdrawn] == ["feber"]
        unavailable = extension(stay, EXT_OUTPATIENT_UNAVAILABLE)
        assert part(unavailable, "reason") == "ingen hemsjukvård ännu"
        found = staff(system, REGION, WARD).post(
            "/fhir/Encounter/_search",
            data={"subject:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
        )
        assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [stay_id]

    stays = [(topic, state) for topic, state in stored_states(backend, "sip") if ":Stay." in topic]
    assert {topic.rsplit(".", 1)[-1] for topic, _ in stays} >= {
        "Admitted", "CareContactNamed", "ReadyWithdrawn", "OutpatientCareUnavailable", "Discharged"
    }  # fmt: skip
    for topic, state in stays:
        assert personnummer.encode() not in state, (topic, state[:200])
        for text in FREE_TEXT:
            assert text.encode() not in state, (topic, text)
    sealed = {topic.rsplit(".", 1)[-1] for topic, state in stays if b"_sealed_" in state}
    assert {"Admitted", "CareContactNamed", "ReadyWithdrawn", "ReadyNotified"} <= sealed
