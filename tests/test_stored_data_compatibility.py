"""A data folder written by an earlier release still opens, verifies and reads the same.

`tests/data/demo-2026-11-25/` was made by `sip up --demo` on 2026-11-25, before the code was
restructured (routers, the audit package split by layer, typed plan state). The stored events
can never change, so every later release must read them exactly as that release did: the
same FHIR resources, histories and views, the same audit replay and export, an intact chain,
read models that rebuild to the same rows. `golden.json` holds what that release answered;
`SIP_WRITE_GOLDEN=1` rewrites it, which is only right when a change of output is intended.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from contracts.identifiers import PERSONNUMMER_SYSTEM
from services.cli import main as sip
from tests.conftest import Backend, System
from tests.servers import serve

FOLDER = Path(__file__).parent / "data" / "demo-2026-11-25"
GOLDEN = FOLDER.parent / "demo-2026-11-25.golden.json"
PEOPLE = ["191212129819", "198003159822", "200905209839"]  # the demo's test numbers
BASE = "{base}"


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(FOLDER, copy)
    return copy


def _normalised(value: Any, bases: list[str]) -> Any:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    for base in bases:
        text = text.replace(base, BASE)
    # A paging cursor is sealed with a fresh nonce each time: the same search, new letters.
    text = re.sub(r"_cursor=[A-Za-z0-9_.-]+", "_cursor={cursor}", text)
    return json.loads(text)


def _cli_answers(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    answers: dict[str, Any] = {}
    # An operator upgrading runs the migrations first; the first one adopts the old schema.
    assert sip(["migrate", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    assert sip(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    # "sip: intact, 53 events, head <hash> (9,557 events/s)": all but the rate
    answers["verify"] = [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()]
    assert sip(["projections", "rebuild", "--check", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    for personnummer in PEOPLE:
        out = tmp_path / f"export-{personnummer}.json"
        assert sip(["audit", "export", "--patient", personnummer, "--out", str(out),
                    "--data-dir", str(data_dir)]) == 0  # fmt: skip
        exported = json.loads(out.read_text())
        exported.pop("exported")  # the time of the export
        answers[f"export {personnummer}"] = exported
        capsys.readouterr()
        for plan in exported["sip"]["resources"]:
            assert sip(["audit", "replay", "--plan", plan["id"], "--data-dir", str(data_dir)]) == 0
            answers[f"replay {plan['id']}"] = capsys.readouterr().out.splitlines()
    return answers


def _api_answers(system: System) -> dict[str, Any]:
    """What each person is shown of their own plans and consents (the person's view is the
    one every release must keep: it is their whole plan)."""
    answers: dict[str, Any] = {}
    for personnummer in PEOPLE:
        person = system.as_caller("patient", None, patient=personnummer)
        plans = person.sip.get("/fhir/CarePlan", params={"_include": "CarePlan:goal"})
        assert plans.status_code == 200, plans.text
        answers[f"plans {personnummer}"] = plans.json()
        for entry in plans.json()["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "CarePlan":
                continue
            plan_id = resource["id"]
            for path in (
                f"/fhir/CarePlan/{plan_id}",
                f"/fhir/CarePlan/{plan_id}/_history",
                f"/fhir/CarePlan/{plan_id}/_history/1",
                f"/fhir/CareTeam/{plan_id}-team/_history",
                # A type's history counts only when asked (docs/decisions/0009).
                "/fhir/Goal/_history?_total=accurate",
                "/fhir/Appointment/_history?_total=accurate",
            ):
                answer = person.sip.get(path)
                assert answer.status_code == 200, (path, answer.text)
                answers[path.replace(plan_id, "{plan}") + f" {personnummer}"] = answer.json()
        consents = person.consent.get(
            "/fhir/Consent",
            params={"patient:identifier": f"{PERSONNUMMER_SYSTEM}|{personnummer}"},
        )
        assert consents.status_code == 200, consents.text
        answers[f"consents {personnummer}"] = consents.json()
        for entry in consents.json()["entry"]:
            history = person.consent.get(f"/fhir/Consent/{entry['resource']['id']}/_history")
            assert history.status_code == 200, history.text
            answers[f"consent history {entry['resource']['id']}"] = history.json()
    return answers


def test_a_data_folder_of_an_earlier_release_opens_verifies_and_reads_the_same(
    old_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    answers = _cli_answers(old_data, tmp_path, capsys)
    backend = Backend("sqlite", old_data, {"sip": None, "consent": None})
    consent = consent_app(backend.settings("consent"))
    with serve(consent) as consent_url:
        plans = sip_app(backend.settings("sip", consent_service_url=consent_url))
        with serve(plans) as sip_url:
            system = System(sip_url, consent_url, backend.issuer)
            try:
                answers.update(_api_answers(system))
            finally:
                system.close()
            bases = [f"{sip_url}/fhir", f"{consent_url}/fhir", sip_url, consent_url]
    answers = _normalised(answers, bases)
    if os.environ.get("SIP_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(answers, ensure_ascii=False, indent=1, sort_keys=True))
    golden = json.loads(GOLDEN.read_text())
    assert sorted(answers) == sorted(golden)
    for key, value in golden.items():
        assert answers[key] == value, key
