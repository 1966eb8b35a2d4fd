"""Fuzzing every route: schemathesis generates requests from each service's own OpenAPI
(data that fits it and data that does not), sends them over real HTTP with a valid token, and
checks that no answer is a 5xx and that answers match the schema they declare. Afterwards the
log still verifies and the read models still equal a rebuild: no generated request may leave
a poison event behind.

Deterministic and bounded, so it runs in CI on both backends: a fixed derandomised seed and
a few examples per operation (SIP_FUZZ_EXAMPLES raises it for a longer local run; the
failures found are printed grouped by operation, status and the server's exception)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.cli import main as sip
from tests.fhir_data import FHIR_JSON, care_plan, consent, new_personnummer
from tests.test_audit import storage_arguments

EXAMPLES_PER_OPERATION = int(os.environ.get("SIP_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, response_schema_conformance]

# The input classes of issue 11 that schema-driven generation rarely hits: JSON of the wrong
# type or null, NUL, a lone surrogate, digits that are not ASCII, numbers past any column,
# dates at the ends of the calendar, search prefixes on those dates.
EDGE_TEXT = [
    "\x00",
    "\ud800",
    "١٩٧٠٠٧٠٧٧٠٧١",
    "²",
    "99999999999999999999",
    "-1",
    "",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59Z",
    "le9999-12-31",
    "lt0001-01-01",
]
EDGE_VALUES: list[Any] = [None, 5, True, [5], {"value": 5}, *EDGE_TEXT]


def _with_edge(drawn: tuple[Any, int, Any]) -> Any:
    """The case with one of its values (a parameter's value[x] or part, a resource element,
    a query or path parameter) replaced by `value`."""
    case, index, value = drawn
    slots = _slots(case)
    if not slots:
        return case
    container, key = slots[index % len(slots)]
    # A query, path or form value is text on the wire.
    textual = container is not case.body or case.media_type == "application/x-www-form-urlencoded"
    if textual and not isinstance(value, str):
        value = str(value)
    if textual and "\ud800" in value:
        value = "\x00"  # a lone surrogate cannot be put in a URL or a form
    container[key] = value
    return case


def _slots(case: Any) -> list[tuple[Any, str]]:
    slots: list[tuple[Any, str]] = []
    for container in (case.query, case.path_parameters):
        if isinstance(container, dict):
            slots += [(container, key) for key in container]
    body = case.body
    if isinstance(body, dict):
        slots += [(body, key) for key in body]
        for parameter in body.get("parameter") or []:
            if isinstance(parameter, dict):
                slots += [(parameter, key) for key in parameter if key != "name"]
                for part in parameter.get("part") or []:
                    if isinstance(part, dict):
                        slots += [(part, key) for key in part if key != "name"]
    return slots


class ServerErrors(logging.Handler):
    """What the services log while one request is served: the error and where it was raised
    (the server threads log from inside the `except` that caught it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.causes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if error is None:
            self.causes.append(record.getMessage())
            return
        frames = [
            f for f in traceback.extract_tb(error.__traceback__) if "/services/" in f.filename
        ]
        where = (
            f"{frames[-1].filename.split('/services/')[-1]}:{frames[-1].name}" if frames else "?"
        )
        self.causes.append(f"{type(error).__name__} in services/{where}")


@dataclass
class Findings:
    examples: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)

    def note(self, kind: str, case: Any, detail: str) -> None:
        key = f"{case.operation.label}: {kind}"
        self.failures[key] += 1
        self.samples.setdefault(key, f"{detail}\n    e.g. {_describe(case)}")

    def report(self) -> str:
        return "\n".join(
            f"{n}x {key}\n    {self.samples[key]}" for key, n in sorted(self.failures.items())
        )


def _describe(case: Any) -> str:
    return f"{case.as_curl_command()!s:.400}"


def fuzz(
    schema: Any, base_url: str, token: str, targets: dict[str, str], only: str = ""
) -> Findings:
    """Every operation of the schema (or those whose label contains `only`), its examples
    each sent once; failures are collected rather than raised so that one run reports all."""
    findings = Findings()
    handler = ServerErrors()
    logging.getLogger().addHandler(handler)
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if only in operation.label:
                _fuzz_operation(operation, base_url, token, targets, findings, handler)
    finally:
        logging.getLogger().removeHandler(handler)
    return findings


def _fuzz_operation(operation, base_url, token, targets, findings, handler) -> None:
    findings.operations.add(operation.label)
    known = {name: value for name, value in targets.items() if "{" + name + "}" in operation.path}
    strategies = [operation.as_strategy(mode) for mode in GenerationMode]
    valid = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known or None)
    if known:  # some examples reach an existing plan or consent as they are
        strategies.append(valid)
    # and some have one value replaced by one of the input classes
    strategies.append(
        st.tuples(valid, st.integers(0, 99), st.sampled_from(EDGE_VALUES)).map(_with_edge)
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def send(case: Any) -> None:
        findings.examples += 1
        handler.causes.clear()
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
        findings.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as failure:  # one failure, or a group
            if response.status_code >= 500:
                cause = "; ".join(dict.fromkeys(handler.causes)) or "no server log"
                findings.note(f"{response.status_code} {cause}", case, "")
            else:
                findings.note("schema", case, f"{failure!s:.300}".replace("\n", " "))

    send()


@pytest.fixture(scope="module")
def targets(system) -> dict[str, dict[str, str]]:
    """A plan and a consent of one person, for the generated requests to reach."""
    personnummer = new_personnummer()
    plan = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    given_consent = system.consent.post(
        "/fhir/Consent", json=consent(personnummer), headers=FHIR_JSON
    )
    assert plan.status_code == given_consent.status_code == 201
    return {
        "sip": {"id": plan.json()["id"], "personnummer": personnummer},
        "consent": {"id": given_consent.json()["id"], "personnummer": personnummer},
    }


def service_schema(url: str) -> Any:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_route_answers_a_server_error_or_off_its_schema(system, targets, capsys):
    coordinator = system.token()
    integration = system.token("integration")
    runs = {
        "sip": fuzz(service_schema(system.sip_url), system.sip_url, coordinator, targets["sip"]),
        "consent": fuzz(
            service_schema(system.consent_url), system.consent_url, coordinator, targets["consent"]
        ),
        "consent $check as integration": fuzz(
            service_schema(system.consent_url),
            system.consent_url,
            integration,
            targets["consent"],
            only="$check",
        ),
    }
    system.settle()
    with capsys.disabled():
        for name, findings in runs.items():
            print(
                f"\n[{system.backend.name}] {name}: {len(findings.operations)} operations, "
                f"{findings.examples} examples, {sum(findings.failures.values())} failures, "
                f"answers {dict(sorted(findings.statuses.items()))}"
            )
            if findings.failures:
                print(findings.report())
    storage = storage_arguments(system.backend)
    verified = sip(["audit", "verify", *storage])
    rebuilt = sip(["projections", "rebuild", "--check", *storage])
    assert not any(findings.failures for findings in runs.values()), "\n".join(
        findings.report() for findings in runs.values()
    )
    assert verified == 0
    assert rebuilt == 0
