"""Every cell of the role matrix (services/sip/permissions.py), called over HTTP on both
backends: each role, from each kind of organisation (the region that started the plan and
holds the overall responsibility, the municipality a deviation is against, a school taking
part, an outsider), with the parameter variants a cell's condition depends on.

The cases come from the matrix; what each condition means is written down here a second
time (`WHO_MEETS`), independently of the code that enforces it, so a condition enforced
wrongly fails here. An allowed cell must succeed; a refused one is a 403 naming the rule
(an outsider, or another person, gets 404: it does not learn the plan exists) and the plan's
version is unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from contracts.actor import ROLES
from services.common.auth.tokens import default_scopes
from services.sip.permissions import MATRIX, matrix_markdown
from services.sip.routes.operations import SIP_OPERATIONS
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    OTHER_REGION,
    REGION,
    care_plan,
    consent,
    new_personnummer,
    person,
    run,
)

SCHOOL = "SE5560000000-S0001"
ORGANIZATIONS = {"region": REGION, "municipality": MUNICIPALITY, "school": SCHOOL}
ORGANIZATIONS_TRIED = (*ORGANIZATIONS, "outsider")

# What each condition of the matrix means for the plan `_plan` builds: the region started it
# and holds the overall responsibility, the municipality and a school take part, deviation-1
# is against the municipality (it is responsible for intervention-1; the region for
# intervention-2).
WHO_MEETS = {
    "organization-takes-part": lambda c: c.organization in ORGANIZATIONS,
    "principal-takes-part": lambda c: c.organization in ("region", "municipality"),
    "invited-organization": lambda c: c.organization in ("municipality", "school"),
    "overall-responsible": lambda c: c.organization == "region",
    "starting-or-responsible": lambda c: c.organization == "region",
    "deviation-against-caller": lambda c: c.organization == "municipality",
    "own-organization": lambda c: c.variant == "own",
    "staff-record-a-meetings-approval": lambda c: (
        c.organization in ORGANIZATIONS and c.variant == "meeting"
    ),
    "own-plan": lambda c: c.organization == "own",
    "person-approves": lambda c: c.organization == "own" and c.variant != "meeting",
    "staff-record-a-meetings-rejection": lambda c: (
        c.organization in ORGANIZATIONS and c.variant == "meeting"
    ),
    "person-rejects": lambda c: c.organization == "own" and c.variant != "meeting",
    "person-withdraws": lambda c: c.organization == "own" and c.variant == "person-withdrew",
    # meeting-2 is the region's invitation to the region, the municipality, the school and the
    # person (participant-1); each answers for itself.
    "meeting-answer-for-own": lambda c: c.organization in ORGANIZATIONS,
    "person-answers": lambda c: c.organization == "own",
    "meeting-organizer": lambda c: c.organization == "region",
}

VARIANTS = {
    "create": ("own", "other"),
    "approve-changes": ("meeting", "person"),
    "reject-changes": ("meeting", "person"),
    "close": ("person-withdrew", "goals-reached"),
}


def _parameters(operation: str, variant: str | None, organization: str) -> dict[str, Any]:
    return {
        "invite-organization": {"organization": "SE5560000000-S0002", "kind": "other"},
        "accept-invitation": {"unit": "SE5560000000-S0001E", "contact": "Karin Lund"},
        "add-participant": {"kind": "relative", "name": "Mamma", "personAgrees": True},
        "record-need": {"text": "Jag vill sova bättre"},
        "set-goal": {"text": "Sova hela natten", "need": "need-1"},
        "revise-goal": {"goal": "goal-1", "text": "Sova sex timmar", "reason": "Rimligare"},
        "assess-goal": {"goal": "goal-1", "outcome": "achieved"},
        "assign-intervention": {
            "text": "Sömnskola",
            "kind": "treatment",
            "need": "need-1",
            "performerOrganization": REGION,
            "responsiblePrincipal": "region",
            "responsibleOrganization": REGION,
        },
        "set-intervention-status": {"intervention": "intervention-1", "status": "in-progress"},
        "assign-overall-responsibility": {"organization": MUNICIPALITY, "reason": "Flytt"},
        "schedule-meeting": {
            "start": "2027-02-01T09:00:00+01:00",
            "end": "2027-02-01T10:00:00+01:00",
            "location": "Vårdcentralen",
        },
        "record-meeting": {"meeting": "meeting-1", "attendee": "participant-1"},
        "invite-to-meeting": {
            "start": "2027-02-08T09:00:00+01:00",
            "end": "2027-02-08T10:00:00+01:00",
            "video": "https://möte.example.se/sip",
            "organization": [MUNICIPALITY],
        },
        "answer-meeting": {"meeting": "meeting-2", "answer": "accepted"},
        "reschedule-meeting": {
            "meeting": "meeting-2",
            "start": "2027-02-09T09:00:00+01:00",
            "end": "2027-02-09T10:00:00+01:00",
        },
        "cancel-meeting": {"meeting": "meeting-2", "reason": "Flyttas"},
        "set-follow-up": {"date": "2027-05-01"},
        "record-follow-up": {"reviewed": "Hemtjänsten fungerar"},
        "allocate-cost": {
            "intervention": "intervention-1",
            "share": [
                {"organization": REGION, "percent": 40},
                {"organization": MUNICIPALITY, "percent": 60},
            ],
            "periodStart": "2027-01-01",
        },
        "agree-cost-allocation": {"allocation": "cost-1"},
        "approve-changes": (
            {"approvedBy": "meeting", "meeting": "meeting-1"}
            if variant == "meeting"
            else {"approvedBy": "person"}
        ),
        "reject-changes": (
            {"rejectedBy": "meeting", "meeting": "meeting-1", "reason": "Inte så"}
            if variant == "meeting"
            else {"rejectedBy": "person", "reason": "Inte så"}
        ),
        "close": {"reason": variant},
        "report-deviation": {  # against another organisation than the caller's
            "intervention": "intervention-2"
            if organization == "municipality"
            else "intervention-1",
            "text": "Kom inte i tid",
        },
        "answer-deviation": {"deviation": "deviation-1", "answer": "Åtgärdat"},
        "activate": {},
    }[operation]


@dataclass(frozen=True)
class Cell:
    operation: str
    role: str
    organization: str  # region | municipality | school | outsider; own | stranger (patients)
    variant: str | None

    @property
    def allowed(self) -> bool:
        condition = MATRIX[self.operation].get(self.role)
        return condition is not None and WHO_MEETS[condition.rule](self)

    def __str__(self) -> str:
        return "-".join(filter(None, (self.operation, self.role, self.organization, self.variant)))


def _cells() -> list[Cell]:
    cells = []
    for operation in MATRIX:
        for role in ROLES:
            places = ("own", "stranger") if role == "patient" else ORGANIZATIONS_TRIED
            if role not in MATRIX[operation]:  # refused whatever the organisation: the likeliest
                places = places[:1]
            for organization in places:
                for variant in VARIANTS.get(operation, (None,)):
                    cells.append(Cell(operation, role, organization, variant))
    return cells


CELLS = _cells()


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _plan(system: Any, personnummer: str, *, active: bool) -> str:
    """A plan the region started, with everything every operation refers to."""
    sip = system.sip
    _ok(
        system.consent.post(
            "/fhir/Consent",
            json=consent(personnummer, organizations=(REGION, MUNICIPALITY, SCHOOL)),
            headers=FHIR_JSON,
        )
    )
    plan_id = _ok(sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON))["id"]
    steps: list[tuple[str, dict[str, Any]]] = [
        ("invite-organization", {"organization": MUNICIPALITY, "kind": "municipality"}),
        ("invite-organization", {"organization": SCHOOL, "kind": "other"}),
        ("add-participant", {"kind": "person", "name": "Tolvan"}),
        ("record-need", {"text": "Jag vill klara mig hemma"}),
        ("set-goal", {"text": "Handla själv", "need": "need-1"}),
        (
            "assign-intervention",
            {
                "text": "Hemtjänst",
                "kind": "support",
                "need": "need-1",
                "performerOrganization": MUNICIPALITY,
                "responsiblePrincipal": "municipality",
                "responsibleOrganization": MUNICIPALITY,
            },
        ),
        (
            "assign-intervention",
            {
                "text": "Samtalsstöd",
                "kind": "treatment",
                "need": "need-1",
                "performerOrganization": REGION,
                "responsiblePrincipal": "region",
                "responsibleOrganization": REGION,
            },
        ),
        ("assign-overall-responsibility", {"organization": REGION}),
        ("set-follow-up", {"date": "2027-03-01"}),
        ("report-deviation", {"intervention": "intervention-1", "text": "Uteblev"}),
        (
            "schedule-meeting",
            {
                "start": "2026-12-01T09:00:00+01:00",
                "end": "2026-12-01T10:00:00+01:00",
                "location": "Vårdcentralen",
            },
        ),
        ("record-meeting", {"meeting": "meeting-1", "attendee": "participant-1"}),
        (
            "invite-to-meeting",
            {
                "start": "2027-02-01T09:00:00+01:00",
                "end": "2027-02-01T10:00:00+01:00",
                "location": "Vårdcentralen",
                "organization": [REGION, MUNICIPALITY, SCHOOL],
                "participant": "participant-1",
            },
        ),
    ]
    for operation, values in steps:
        _ok(run(sip, plan_id, operation, **values))
    if active:
        _ok(sip.post(f"/fhir/CarePlan/{plan_id}/$activate"))
        _ok(
            run(
                sip,
                plan_id,
                "allocate-cost",
                intervention="intervention-1",
                share=[
                    {"organization": REGION, "percent": 50},
                    {"organization": MUNICIPALITY, "percent": 50},
                ],
                periodStart="2027-01-01",
            )
        )
        _ok(run(sip, plan_id, "record-need", text="Att vänta på godkännande"))  # pending
    return plan_id


def _caller(system: Any, cell: Cell, personnummer: str) -> Any:
    if cell.role == "patient":
        whose = personnummer if cell.organization == "own" else new_personnummer()
        scopes = (*default_scopes("patient"), "patient/CarePlan.cruds")
        return system.as_caller("patient", organization=None, patient=whose, scopes=scopes).sip
    organization = ORGANIZATIONS.get(cell.organization, OTHER_REGION)
    # Every staff role may write plans as far as its token goes: the matrix alone refuses.
    scopes = default_scopes(cell.role)
    if cell.role != "integration":
        scopes = (*scopes, "user/CarePlan.cruds")
    return system.as_caller(cell.role, organization=organization, scopes=scopes).sip


def _version(system: Any, plan_id: str) -> str:
    return _ok(system.sip.get(f"/fhir/CarePlan/{plan_id}"))["meta"]["versionId"]


def _assert_refused(response: Any, cell: Cell) -> None:
    hidden = cell.organization in ("outsider", "stranger")
    expected = (403, 404) if hidden else (403,)
    assert response.status_code in expected, (str(cell), response.text)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    # An auditor's write is refused before the matrix too, by the token check (auth layer).
    if response.status_code == 403 and cell.role != "auditor":
        condition = MATRIX[cell.operation].get(cell.role)
        rule = condition.rule if condition else f"role-matrix-{cell.operation}"
        assert outcome["issue"][0]["details"]["text"] == rule, str(cell)


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_every_cell_of_the_role_matrix(system, cell: Cell):
    personnummer = new_personnummer()
    caller = _caller(system, cell, personnummer)
    if cell.operation == "create":
        _check_create(system, caller, cell, personnummer)
        return
    plan_id = _plan(system, personnummer, active=cell.operation != "activate")
    before = _version(system, plan_id)
    if cell.operation == "activate":
        response = caller.post(f"/fhir/CarePlan/{plan_id}/$activate")
    else:
        parameters = _parameters(cell.operation, cell.variant, cell.organization)
        response = run(caller, plan_id, cell.operation, **parameters)
    if cell.allowed:
        assert response.status_code == 200, (str(cell), response.text)
        assert _version(system, plan_id) != before
    else:
        _assert_refused(response, cell)
        assert _version(system, plan_id) == before, f"{cell} wrote to the plan"


def _check_create(system: Any, caller: Any, cell: Cell, personnummer: str) -> None:
    own = ORGANIZATIONS.get(cell.organization, OTHER_REGION)
    author = own if cell.variant == "own" else (MUNICIPALITY if own == REGION else REGION)
    body = care_plan(personnummer, author)
    response = caller.post("/fhir/CarePlan", json=body, headers=FHIR_JSON)
    if cell.allowed:
        assert response.status_code == 201, (str(cell), response.text)
        return
    _assert_refused(response, cell)
    subject = f"{person(personnummer)['system']}|{personnummer}"
    for organization in {own, author}:  # the one that would have started it sees it
        found = system.as_caller(organization=organization).sip.get(
            "/fhir/CarePlan", params={"subject:identifier": subject}
        )
        assert _ok(found)["entry"] == [], f"{cell} started a plan"


def test_every_state_changing_operation_has_a_row_and_every_row_an_operation():
    # The plan's: a stay's steps are taken by care staff acting from a unit, each step's rule
    # in the stay's domain (services/sip/discharge/operations.py, tests/test_discharge_e2e.py).
    routed = {
        op.name for op in SIP_OPERATIONS if op.changes_state and op.resource_type == "CarePlan"
    }
    assert set(MATRIX) == routed | {"create"}


def test_auditors_change_nothing():
    assert not any("auditor" in row for row in MATRIX.values())


def test_the_committed_role_matrix_doc_is_the_generated_one():
    from pathlib import Path

    committed = (Path(__file__).parent.parent / "docs" / "role-matrix.md").read_text()
    assert committed == matrix_markdown(), "run: python -m services.sip.permissions > docs/..."


def test_a_deviation_is_reported_against_another_and_answered_by_the_one_it_is_against(system):
    personnummer = new_personnummer()
    plan_id = _plan(system, personnummer, active=True)
    municipality = system.as_caller(organization=MUNICIPALITY).sip
    own = run(municipality, plan_id, "report-deviation", intervention="intervention-1", text="x")
    assert own.status_code == 409, own.text
    assert own.json()["issue"][0]["details"]["text"] == "deviation-against-another"
    _ok(run(municipality, plan_id, "report-deviation", intervention="intervention-2", text="y"))
    for organization in (MUNICIPALITY, SCHOOL):  # deviation-2 is against the region
        refused = run(system.as_caller(organization=organization).sip, plan_id,
                      "answer-deviation", deviation="deviation-2", answer="z")  # fmt: skip
        assert refused.status_code == 403, refused.text
        assert refused.json()["issue"][0]["details"]["text"] == "deviation-against-caller"
    _ok(run(system.sip, plan_id, "answer-deviation", deviation="deviation-2", answer="Åtgärdat"))
