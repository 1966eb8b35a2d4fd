"""The disclosure check: the SIP service asks the consent service `POST /fhir/Consent/$check`.

Both sides build and read the FHIR `Parameters` through these models, so the wire format is
defined once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM
from contracts.identifiers import HSA_ID_SYSTEM

CHECK_PATH = "/fhir/Consent/$check"


class MalformedParameters(ValueError):
    pass


class ConsentCheckRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    patient_system: str
    patient_value: str
    actor: str  # HSA-id of the organisation that wants to see
    source: str  # HSA-id of the organisation whose information it is
    category: str  # a code of CONSENT_CATEGORY_SYSTEM
    purpose: str | None = None

    def to_parameters(self) -> dict[str, Any]:
        parameter: list[dict[str, Any]] = [
            {
                "name": "patient",
                "valueIdentifier": {"system": self.patient_system, "value": self.patient_value},
            },
            {"name": "actor", "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": self.actor}},
            {"name": "source", "valueIdentifier": {"system": HSA_ID_SYSTEM, "value": self.source}},
            {"name": "category", "valueCode": self.category},
        ]
        if self.purpose:
            parameter.append({"name": "purpose", "valueCode": self.purpose})
        return {"resourceType": "Parameters", "parameter": parameter}

    @classmethod
    def from_parameters(cls, body: Any) -> ConsentCheckRequest:
        values = _parameter_values(body)

        def identifier(name: str) -> dict[str, Any]:
            value = values.get(name, {}).get("valueIdentifier")
            if not isinstance(value, dict) or not value.get("value"):
                raise MalformedParameters(f"parameter '{name}' needs a valueIdentifier")
            return value

        patient = identifier("patient")
        category = values.get("category", {}).get("valueCode")
        if category not in CONSENT_CATEGORIES:
            raise MalformedParameters(
                f"parameter 'category' needs a valueCode from {CONSENT_CATEGORY_SYSTEM}: "
                + ", ".join(CONSENT_CATEGORIES)
            )
        return cls(
            patient_system=patient.get("system", ""),
            patient_value=patient["value"],
            actor=identifier("actor")["value"],
            source=identifier("source")["value"],
            category=category,
            purpose=values.get("purpose", {}).get("valueCode"),
        )


class ConsentDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Literal["permit", "deny"]
    reason: str
    consents: tuple[str, ...] = ()  # ids of the consents the decision relies on

    @property
    def permitted(self) -> bool:
        return self.decision == "permit"

    def to_parameters(self) -> dict[str, Any]:
        parameter: list[dict[str, Any]] = [
            {"name": "decision", "valueCode": self.decision},
            {"name": "reason", "valueString": self.reason},
        ]
        parameter += [
            {"name": "consent", "valueReference": {"reference": f"Consent/{consent_id}"}}
            for consent_id in self.consents
        ]
        return {"resourceType": "Parameters", "parameter": parameter}

    @classmethod
    def from_parameters(cls, body: Any) -> ConsentDecision:
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise MalformedParameters("a consent decision is a Parameters resource")
        decision = reason = None
        consents: list[str] = []
        for parameter in body.get("parameter") or []:
            name = parameter.get("name")
            if name == "decision":
                decision = parameter.get("valueCode")
            elif name == "reason":
                reason = parameter.get("valueString")
            elif name == "consent":
                reference = (parameter.get("valueReference") or {}).get("reference", "")
                consents.append(reference.removeprefix("Consent/"))
        if decision not in ("permit", "deny") or not reason:
            raise MalformedParameters("a consent decision needs 'decision' and 'reason'")
        return cls(decision=decision, reason=reason, consents=tuple(consents))


def _parameter_values(body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise MalformedParameters("the body must be a FHIR Parameters resource")
    parameters = body.get("parameter")
    if not isinstance(parameters, list):
        raise MalformedParameters("Parameters.parameter must be a list")
    values: dict[str, dict[str, Any]] = {}
    for parameter in parameters:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            values[parameter["name"]] = parameter
    return values
