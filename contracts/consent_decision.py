"""The disclosure check: the SIP service asks the consent service `POST /fhir/Consent/$check`.

Both sides build and read the FHIR `Parameters` through these models, so the wire format is
defined once.

Who is asking: the requesting organisation is the caller's token's organisation. Only a peer
service that the consent service trusts by configuration (the SIP service, asking on behalf of
the organisation that reads a plan) may name another requester in `actor`; anyone else naming
another organisation there is refused (403).

What the answer says: a deny says only "not permitted", to everyone: which consents or blocks
stood in the way, and whose, stays in the consent service's access log. A permit names the
consents (and overridden blocks) it relied on only to the trusted peer, which writes them into
its own access log; a system asking for its own organisation gets the bare permit. Every
permit carries `validUntil` when anything it relied on ends (a consent's period, an override's
`until`) or a block of the source comes into force: a permit remembered past it is stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SYSTEM
from contracts.identifiers import HSA_ID_SYSTEM

CHECK_PATH = "/fhir/Consent/$check"
NOT_PERMITTED = "not permitted"
PERMITTED = "permitted"


class MalformedParameters(ValueError):
    pass


class ConsentCheckRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    patient_system: str
    patient_value: str
    actor: str  # HSA-id of the organisation that wants to see (see the module docstring)
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
    # When a permit stops being true on its own (a consent's period ends, an override runs
    # out, a block comes into force); None: only a withdrawal or a new registration ends it.
    valid_until: datetime | None = None

    @property
    def permitted(self) -> bool:
        return self.decision == "permit"

    def as_answered(self, *, name_consents: bool) -> ConsentDecision:
        """What the asker is told: a deny without its reasons, a permit with the consents it
        relied on only where `name_consents`."""
        if not self.permitted:
            return ConsentDecision(decision="deny", reason=NOT_PERMITTED)
        if name_consents:
            return self
        return ConsentDecision(decision="permit", reason=PERMITTED, valid_until=self.valid_until)

    def to_parameters(self) -> dict[str, Any]:
        parameter: list[dict[str, Any]] = [
            {"name": "decision", "valueCode": self.decision},
            {"name": "reason", "valueString": self.reason},
        ]
        parameter += [
            {"name": "consent", "valueReference": {"reference": f"Consent/{consent_id}"}}
            for consent_id in self.consents
        ]
        if self.valid_until is not None:
            parameter.append({"name": "validUntil", "valueInstant": _instant(self.valid_until)})
        return {"resourceType": "Parameters", "parameter": parameter}

    @classmethod
    def from_parameters(cls, body: Any) -> ConsentDecision:
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise MalformedParameters("a consent decision is a Parameters resource")
        decision = reason = valid_until = None
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
            elif name == "validUntil":
                valid_until = _parse_instant(parameter.get("valueInstant"))
        if decision not in ("permit", "deny") or not reason:
            raise MalformedParameters("a consent decision needs 'decision' and 'reason'")
        return cls(
            decision=decision, reason=reason, consents=tuple(consents), valid_until=valid_until
        )


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(value: Any) -> datetime:
    """A FHIR instant: a date and time with seconds and a zone."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise MalformedParameters("validUntil needs a valueInstant") from None
    if moment.tzinfo is None:
        raise MalformedParameters("validUntil needs a valueInstant with a time zone")
    return moment


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
