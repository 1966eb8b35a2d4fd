"""Reading a FHIR `Parameters` body of an operation, with a 400 naming what is wrong."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.common.fhir_api import FhirError
from services.common.fhir_time import InvalidDateTime, parse_fhir_datetime


class OperationParameters:
    def __init__(self, body: dict[str, Any], operation: str) -> None:
        if body.get("resourceType") != "Parameters":
            raise FhirError(400, "invalid", f"${operation} takes a Parameters resource")
        self.operation = operation
        self._values: dict[str, list[dict[str, Any]]] = {}
        for parameter in body.get("parameter") or []:
            if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
                raise FhirError(400, "invalid", "every parameter has a name")
            self._values.setdefault(parameter["name"], []).append(parameter)

    def _value(self, name: str, kinds: tuple[str, ...], required: bool) -> Any:
        for parameter in self._values.get(name, [])[:1]:
            for kind in kinds:
                if kind in parameter:
                    return parameter[kind]
            raise FhirError(400, "invalid", f"'{name}' needs one of {', '.join(kinds)}")
        if required:
            raise FhirError(400, "required", f"${self.operation} needs the parameter '{name}'")
        return None

    def text(self, name: str, required: bool = True) -> str | None:
        value = self._value(name, ("valueString", "valueCode", "valueMarkdown"), required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise FhirError(400, "invalid", f"'{name}' must be non-empty text")
        return value.strip() if value is not None else None

    def texts(self, name: str) -> list[str]:
        values = []
        for parameter in self._values.get(name, []):
            value = parameter.get("valueString", parameter.get("valueCode"))
            if not isinstance(value, str) or not value:
                raise FhirError(400, "invalid", f"each '{name}' is a valueString")
            values.append(value)
        return values

    def identifier(self, name: str, required: bool = True) -> str | None:
        value = self._value(name, ("valueIdentifier", "valueString"), required)
        if isinstance(value, dict):
            value = value.get("value")
        if value is not None and not isinstance(value, str):
            raise FhirError(400, "invalid", f"'{name}' needs an identifier value")
        return value

    def identifier_object(self, name: str) -> dict[str, Any] | None:
        value = self._value(name, ("valueIdentifier",), False)
        if value is not None and not isinstance(value, dict):
            raise FhirError(400, "invalid", f"'{name}' is a valueIdentifier")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._value(name, ("valueBoolean",), False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise FhirError(400, "invalid", f"'{name}' is a valueBoolean")
        return value

    def date(self, name: str, required: bool = True) -> date | None:
        value = self._value(name, ("valueDate",), required)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise FhirError(400, "invalid", f"'{name}' is a date like 2026-12-01") from None

    def instant(self, name: str, required: bool = True) -> datetime | None:
        value = self._value(name, ("valueDateTime", "valueInstant"), required)
        if value is None:
            return None
        try:
            return parse_fhir_datetime(value)
        except (InvalidDateTime, TypeError) as error:
            raise FhirError(400, "invalid", f"'{name}': {error}") from None

    def number(self, name: str, required: bool = True) -> float | None:
        value = self._value(name, ("valueDecimal", "valueInteger"), required)
        if value is None:
            return None
        try:
            return float(Decimal(str(value)))
        except InvalidOperation:
            raise FhirError(400, "invalid", f"'{name}' is a number") from None

    def parts(self, name: str) -> list[OperationParameters]:
        return [
            OperationParameters(
                {"resourceType": "Parameters", "parameter": parameter.get("part") or []},
                self.operation,
            )
            for parameter in self._values.get(name, [])
        ]
