"""Cost shares between the principals, over HTTP: the 1/3–2/3 default applies only when both
principals record that the split is unclear, and only principals propose or agree."""

from __future__ import annotations

from typing import Any

from contracts.canonical import EXT_COST_ALLOCATION
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    prepare_for_activation,
    run,
)

SCHOOL = "SE5560000000-S0001"


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def plan_with_school(system: Any) -> str:
    personnummer = new_personnummer()
    organizations = (REGION, MUNICIPALITY, SCHOOL)
    system.consent.post(
        "/fhir/Consent", json=consent(personnummer, organizations=organizations), headers=FHIR_JSON
    )
    created = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    plan_id = created.json()["id"]
    prepare_for_activation(system.sip, plan_id)
    ok(run(system.sip, plan_id, "invite-organization", organization=SCHOOL, kind="other"))
    return plan_id


def allocation(plan: dict[str, Any]) -> dict[str, list[Any]]:
    """The cost-allocation extension's parts, by name."""
    detail = plan["activity"][0]["detail"]
    parts = next(e for e in detail["extension"] if e["url"] == EXT_COST_ALLOCATION)["extension"]
    found: dict[str, list[Any]] = {}
    for part in parts:
        value = next(v for k, v in part.items() if k.startswith("value") or k == "extension")
        found.setdefault(part["url"], []).append(value)
    return found


def organizations(references: list[dict[str, Any]]) -> list[str]:
    return [reference["identifier"]["value"] for reference in references]


def test_the_default_split_needs_both_principals_to_find_the_split_unclear(system):
    plan_id = plan_with_school(system)
    sip = system.sip
    version = ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]
    silent = run(sip, plan_id, "allocate-cost", intervention="intervention-1",
                 periodStart="2027-01-01")  # fmt: skip
    assert silent.status_code == 422, silent.text
    issue = silent.json()["issue"][0]
    assert issue["expression"] == ["share"]
    assert issue["details"]["text"] == "default-split-only-when-unclear"
    both = run(sip, plan_id, "allocate-cost", intervention="intervention-1",
               periodStart="2027-01-01", splitUnclear=True,
               share=[{"organization": REGION, "percent": 50},
                      {"organization": MUNICIPALITY, "percent": 50}])  # fmt: skip
    assert both.status_code == 422 and both.json()["issue"][0]["expression"] == ["splitUnclear"]
    assert ok(sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"] == version

    proposed = allocation(ok(run(sip, plan_id, "allocate-cost", intervention="intervention-1",
                                 periodStart="2027-01-01", splitUnclear=True)))  # fmt: skip
    assert [s[1]["valueDecimal"] for s in proposed["share"]] == [33.33, 66.67]
    assert organizations(proposed["splitUnclearBy"]) == [REGION]
    assert proposed["inForce"] == [False]

    municipality = system.as_caller(organization=MUNICIPALITY).sip
    unsaid = run(municipality, plan_id, "agree-cost-allocation", allocation="cost-1")
    assert unsaid.status_code == 422 and unsaid.json()["issue"][0]["expression"] == ["splitUnclear"]
    agreed = allocation(ok(run(municipality, plan_id, "agree-cost-allocation",
                               allocation="cost-1", splitUnclear=True)))  # fmt: skip
    assert organizations(agreed["splitUnclearBy"]) == [REGION, MUNICIPALITY]
    assert agreed["inForce"] == [True]


def test_shares_the_principals_give_are_agreed_by_both_without_the_default(system):
    plan_id = plan_with_school(system)
    shares = [
        {"organization": REGION, "percent": 40},
        {"organization": MUNICIPALITY, "percent": 60},
    ]
    given = allocation(ok(run(system.sip, plan_id, "allocate-cost", intervention="intervention-1",
                              periodStart="2027-01-01", share=shares)))  # fmt: skip
    assert "splitUnclearBy" not in given and given["inForce"] == [False]
    ok(run(system.sip, plan_id, "agree-cost-allocation", allocation="cost-1"))
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    agreed = allocation(
        ok(run(municipality, plan_id, "agree-cost-allocation", allocation="cost-1"))
    )
    assert agreed["inForce"] == [True]


def test_a_school_or_the_person_neither_proposes_nor_agrees_costs(system):
    plan_id = plan_with_school(system)
    personnummer = ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["subject"]["identifier"]["value"]
    person = system.as_caller("patient", organization=None, patient=personnummer).sip
    ok(run(system.sip, plan_id, "allocate-cost", intervention="intervention-1",
           periodStart="2027-01-01", splitUnclear=True))  # fmt: skip
    school = system.as_caller(organization=SCHOOL).sip
    for operation, values in (
        ("allocate-cost", {"intervention": "intervention-1", "periodStart": "2027-01-01",
                           "splitUnclear": True}),
        ("agree-cost-allocation", {"allocation": "cost-1", "splitUnclear": True}),
    ):  # fmt: skip
        refused = run(school, plan_id, operation, **values)
        assert refused.status_code == 403, refused.text
        assert refused.json()["issue"][0]["details"]["text"] == "principal-takes-part"
        refused = run(person, plan_id, operation, **values)
        assert refused.status_code == 403, refused.text
        assert refused.json()["issue"][0]["details"]["text"] == f"role-matrix-{operation}"
