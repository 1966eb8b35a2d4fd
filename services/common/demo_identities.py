"""Who the embedded default's demo is about and who works in it: made-up HSA-ids of the right
form and Skatteverket-style test personnummer (serial numbers 98x, never issued to real
people). The demo loader (services/demo.py) writes their plans; the web client's development
sign-in lists the users."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.identifiers import with_check_digit
from services.common.auth.tokens import DevIssuer, default_scopes

REGION = "SE2321000032-DEMO1"  # Region Sörmland, Psykiatrimottagning Eskilstuna (demo)
REGION_NAME = "Region Sörmland, Psykiatrimottagning Eskilstuna"
MUNICIPALITY = "SE2120000357-DEMO2"  # Eskilstuna kommun, Socialtjänsten (demo)
MUNICIPALITY_NAME = "Eskilstuna kommun, socialtjänsten"
# An organisation that takes part in none of the demo plans.
OUTSIDER = "SE2120001231-DEMO3"
OUTSIDER_NAME = "Västerås stad, socialtjänsten"


@dataclass(frozen=True)
class DemoPerson:
    name: str
    personnummer: str
    state: str  # what the demo leaves the plan as


PEOPLE = [
    DemoPerson("Tolvan Tolvansson", with_check_digit("19121212981"), "active"),
    DemoPerson("Anna Andersson", with_check_digit("19800315982"), "draft"),
    DemoPerson("Erik Eriksson", with_check_digit("20090520983"), "consent-withdrawn"),
]
# The demo's inpatient stay (discharge, LSU 2017:612): admitted at the region's ward, the
# notice sent to the demo coordinators' units, ready for discharge, the SIP call due in 72 hours.
STAY_PERSON = DemoPerson("Birgitta Björk", with_check_digit("19380214984"), "ready")
WARD = "SE2321000032-WARD9"  # the region's hospital ward (demo)


@dataclass(frozen=True)
class DemoUser:
    key: str  # stable, for forms and tests
    name: str
    description: str  # in Swedish: who this is, for the sign-in page
    role: str
    organization: str | None = None
    unit: str | None = None
    patient: str | None = None

    def token(self, issuer: DevIssuer, lifetime_seconds: int = 8 * 3600) -> str:
        """This user's token from the development issuer, with the role's usual scopes."""
        return issuer.mint(
            subject=self.key,
            role=self.role,
            organization=self.organization,
            unit=self.unit,
            patient=self.patient,
            scopes=default_scopes(self.role),
            lifetime_seconds=lifetime_seconds,
        )


DEMO_USERS = [
    DemoUser(
        "region-coordinator",
        "Karin Lind",
        f"Samordnare, {REGION_NAME}",
        "coordinator",
        REGION,
        REGION,
    ),
    DemoUser(
        "municipality-coordinator",
        "Omar Said",
        f"Samordnare, {MUNICIPALITY_NAME}",
        "coordinator",
        MUNICIPALITY,
        MUNICIPALITY,
    ),
    DemoUser(
        "region-professional",
        "Lena Berg",
        f"Sjuksköterska, {REGION_NAME}",
        "professional",
        REGION,
        REGION,
    ),
    DemoUser(
        "region-auditor",
        "Per Holm",
        f"Granskare (loggkontroll), {REGION_NAME}",
        "auditor",
        REGION,
        REGION,
    ),
    DemoUser(
        "outsider-coordinator",
        "Sara Ek",
        f"Samordnare, {OUTSIDER_NAME} (deltar inte i demoplanerna)",
        "coordinator",
        OUTSIDER,
        OUTSIDER,
    ),
    DemoUser(
        "person",
        PEOPLE[0].name,
        "Personen själv, med en aktiv plan",
        "patient",
        patient=PEOPLE[0].personnummer,
    ),
]
