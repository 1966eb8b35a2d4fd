"""An operation's parameters, declared once as a pydantic model whose fields carry their FHIR
type (`String`, `Date`, `HsaId`, ... below) and cardinality (required, `| None`, `list[...]`).

From that model come the reading of a `Parameters` body (a 400 naming the parameter that is
wrong), its OpenAPI schema and the parameters of its OperationDefinition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.identifiers import InvalidIdentifier, parse_hsa_id
from services.common.fhir_api import FhirError
from services.common.fhir_time import InvalidDateTime, parse_fhir_date, parse_fhir_datetime


class OperationParameters(BaseModel):
    """The base of every operation's parameters (and of their parts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class FhirType:
    """A FHIR data type of a parameter: the `value[x]` keys read (the declared one first,
    then those accepted as well) and how a value is checked and converted."""

    name: str
    accepts: tuple[str, ...]
    convert: Callable[[str, Any], Any]


# Longer than any need, goal or note a plan holds; keeps one parameter from filling the log.
MAX_TEXT_LENGTH = 10_000


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FhirError(400, "invalid", f"'{name}' must be non-empty text")
    if len(value) > MAX_TEXT_LENGTH:
        raise FhirError(400, "too-long", f"'{name}' is longer than {MAX_TEXT_LENGTH} characters")
    return value.strip()


def _parameter_path(name: str) -> str:
    """The FHIRPath of a parameter (within its part, for a part)."""
    return f"Parameters.parameter.where(name='{name}')"


def _path_of(name: str, kind: str) -> str:
    """The FHIRPath of a parameter's value."""
    return f"{_parameter_path(name)}.{kind}"


def _identifier_value(name: str, value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        raise FhirError(400, "invalid", f"'{name}' needs an identifier value")
    return value


def _hsa_id(name: str, value: Any) -> str:
    try:
        return parse_hsa_id(_identifier_value(name, value))
    except InvalidIdentifier as error:
        raise FhirError(400, "invalid", f"'{name}': {error}") from None


def _identifier(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(value.get(key, ""), str) for key in ("system", "value")
    ):
        raise FhirError(400, "invalid", f"'{name}' is a valueIdentifier with text system, value")
    return value


def _json_object(kind: str) -> Callable[[str, Any], dict[str, Any]]:
    def convert(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise FhirError(400, "invalid", f"'{name}' is a {kind}")
        return value

    return convert


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FhirError(400, "invalid", f"'{name}' is a valueBoolean")
    return value


def _date(name: str, value: Any) -> date:
    try:
        return parse_fhir_date(value)
    except InvalidDateTime as error:
        raise FhirError(400, "invalid", f"'{name}' is a date like 2026-12-01: {error}") from None


def _date_time(name: str, value: Any) -> datetime:
    try:
        return parse_fhir_datetime(value)
    except (InvalidDateTime, TypeError) as error:
        raise FhirError(400, "invalid", f"'{name}': {error}") from None


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FhirError(400, "invalid", f"'{name}' is a number")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FhirError(400, "invalid", f"'{name}' is an integer")
    return value


_TEXT = ("valueString", "valueCode", "valueMarkdown")
String = Annotated[str, FhirType("string", _TEXT, _text)]
Code = Annotated[str, FhirType("code", ("valueCode", "valueString"), _text)]
Date = Annotated[date, FhirType("date", ("valueDate",), _date)]
DateTime = Annotated[datetime, FhirType("dateTime", ("valueDateTime", "valueInstant"), _date_time)]
Instant = Annotated[datetime, FhirType("instant", ("valueInstant", "valueDateTime"), _date_time)]
Boolean = Annotated[bool, FhirType("boolean", ("valueBoolean",), _boolean)]
Decimal = Annotated[float, FhirType("decimal", ("valueDecimal", "valueInteger"), _number)]
Integer = Annotated[int, FhirType("integer", ("valueInteger",), _integer)]
# An HSA-id or other identifier of which only the value is used.
HsaId = Annotated[str, FhirType("Identifier", ("valueIdentifier", "valueString"), _hsa_id)]
Identifier = Annotated[dict[str, Any], FhirType("Identifier", ("valueIdentifier",), _identifier)]
Reference = Annotated[
    dict[str, Any], FhirType("Reference", ("valueReference",), _json_object("valueReference"))
]


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter as its model declares it."""

    name: str
    min: int
    max: str  # "1" or "*"
    fhir_type: FhirType | None  # None for a parameter made of parts
    parts: type[OperationParameters] | None
    documentation: str | None


@cache  # read for every operation call: the type hints are resolved once per model
def parameter_specs(model: type[OperationParameters]) -> tuple[ParameterSpec, ...]:
    hints = get_type_hints(model, include_extras=True)
    specs = []
    for name, field in model.model_fields.items():
        annotation = _without_none(hints[name])
        many = get_origin(annotation) is list
        if many:
            (annotation,) = get_args(annotation)
        parts = annotation if _is_parts(annotation) else None
        fhir_type = None if parts else _fhir_type(name, annotation)
        specs.append(
            ParameterSpec(
                name=name,
                min=1 if field.is_required() else 0,
                max="*" if many else "1",
                fhir_type=fhir_type,
                parts=parts,
                documentation=field.description,
            )
        )
    return tuple(specs)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not NoneType]
    return annotation


def _is_parts(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, OperationParameters)


def _fhir_type(name: str, annotation: Any) -> FhirType:
    for metadata in get_args(annotation)[1:] if get_origin(annotation) is Annotated else ():
        if isinstance(metadata, FhirType):
            return metadata
    raise TypeError(f"parameter '{name}' is declared without a FHIR type")


Refusal = Callable[[str], FhirError]


def missing_parameter(operation: str) -> Refusal:
    return lambda name: FhirError(400, "required", f"${operation} needs the parameter '{name}'")


def parse_parameters(
    model: type[OperationParameters],
    body: dict[str, Any],
    operation: str,
    missing: Refusal | None = None,
) -> Any:
    """The body read into `model`, or a 400 OperationOutcome naming what is wrong."""
    if body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", f"${operation} takes a Parameters resource")
    return _read(model, body.get("parameter"), operation, missing or missing_parameter(operation))


def _read(
    model: type[OperationParameters], given: Any, operation: str, missing: Refusal
) -> OperationParameters:
    if given is None:
        given = []
    if not isinstance(given, list):
        raise FhirError(400, "structure", "parameter (and part) is a list")
    specs = {spec.name: spec for spec in parameter_specs(model)}
    found: dict[str, list[dict[str, Any]]] = {}
    for parameter in given:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise FhirError(400, "invalid", "every parameter has a name")
        name = parameter["name"]
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise FhirError(
                400, "invalid", f"${operation} has no parameter '{name}' (it takes: {known})"
            )
        found.setdefault(name, []).append(parameter)
    values: dict[str, Any] = {}
    for spec in specs.values():  # what is given is checked first: a wrong value is named
        given_values = found.get(spec.name, [])
        if not given_values:
            continue
        if spec.max == "1" and len(given_values) > 1:
            raise FhirError(400, "invalid", f"'{spec.name}' is given more than once")
        read = [_value(spec, parameter, operation, missing) for parameter in given_values]
        values[spec.name] = read if spec.max == "*" else read[0]
    for spec in specs.values():
        if spec.min and spec.name not in values:
            refusal = missing(spec.name)
            if spec.fhir_type is not None:  # what to give, so the caller can fix it at once
                refusal.diagnostics += f", a {spec.fhir_type.name} ({spec.fhir_type.accepts[0]})"
            refusal.expression = refusal.expression or _parameter_path(spec.name)
            raise refusal
    try:
        return model.model_validate(values)
    except ValidationError as error:  # a declaration that its FHIR type does not match
        raise FhirError(400, "invalid", f"${operation}: {error.errors()[0]['msg']}") from None


def _value(spec: ParameterSpec, parameter: dict[str, Any], operation: str, missing: Refusal) -> Any:
    if spec.parts is not None:
        return _read(spec.parts, parameter.get("part"), operation, missing)
    assert spec.fhir_type is not None
    for kind in spec.fhir_type.accepts:
        if kind in parameter:
            if parameter[kind] is None:
                # JSON null is no FHIR value: refused rather than read as "not given".
                raise FhirError(
                    400,
                    "invalid",
                    f"'{spec.name}' is null; give a value or leave it out",
                    expression=_path_of(spec.name, kind),
                )
            try:
                return spec.fhir_type.convert(spec.name, parameter[kind])
            except FhirError as error:
                error.expression = error.expression or _path_of(spec.name, kind)
                raise
    given = sorted(key for key in parameter if key.startswith("value")) or ["no value"]
    raise FhirError(
        400,
        "invalid",
        f"'{spec.name}' is a {spec.fhir_type.name}: give it as "
        f"{' or '.join(spec.fhir_type.accepts)}, not {', '.join(given)}",
        expression=_parameter_path(spec.name),
    )
