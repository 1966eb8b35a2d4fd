"""Issue 11, finding 8: each request has an id (`X-Request-ID`), echoed on every answer, named
in a 500's OperationOutcome and in the log line, which carries the method, the route template
and the traceback but never the exception's message, the query or a personnummer."""

import logging
import re

from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer


def test_a_sane_request_id_is_echoed_and_any_other_replaced(system):
    assert (
        system.sip.get("/fhir/metadata", headers={"X-Request-ID": "abc-1.2_3"}).headers[
            "X-Request-ID"
        ]
        == "abc-1.2_3"
    )
    for offered in (None, "", "a b", "x" * 129, "id;drop", "a/b", "ü"):
        headers = {} if offered is None else {"X-Request-ID": offered.encode("latin-1")}
        answered = system.sip.get("/fhir/metadata", headers=headers).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered), (offered, answered)
    first, second = (system.consent.get("/fhir/metadata").headers["X-Request-ID"] for _ in "12")
    assert first != second


def test_refusals_carry_the_request_id_too(system):
    for response in (
        system.without_token.sip.get("/fhir/CarePlan", headers={"X-Request-ID": "r-401"}),
        system.sip.get("/fhir/NoSuchType", headers={"X-Request-ID": "r-404"}),
        system.sip.post(
            "/fhir/CarePlan", content="{", headers={**FHIR_JSON, "X-Request-ID": "r-400"}
        ),
    ):
        assert response.headers["X-Request-ID"] == f"r-{response.status_code}"


def failing_with(personnummer):
    def fail(*_, **__):
        raise AssertionError(f"broken for {personnummer}")

    return fail


def the_log_line(caplog, request_id):
    (line,) = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    return line


def test_an_unexpected_failure_names_its_request_and_route_but_no_personnummer(
    system, caplog, monkeypatch
):
    personnummer = new_personnummer()
    subject = f"http://electronichealth.se/identifier/personnummer|{personnummer}"
    monkeypatch.setattr(system.sip_app.state.index, "search", failing_with(personnummer))
    caplog.set_level(logging.ERROR, logger="sip.api")
    response = system.sip.get(
        "/fhir/CarePlan",
        params={"subject:identifier": subject},
        headers={"X-Request-ID": "trace-me-1"},
    )
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-me-1"
    assert response.json()["issue"][0]["diagnostics"] == (
        "internal error; nothing was written (request trace-me-1)"
    )
    line = the_log_line(caplog, "trace-me-1")
    assert line.startswith("unexpected AssertionError in GET /fhir/CarePlan (request trace-me-1)")
    assert "in fail" in line and "test_request_ids.py" in line  # the frames
    assert "careplan.py" in line and "in search" in line
    # The message (which names the personnummer) and the query are not in the log; the
    # frames quote source lines only.
    assert personnummer not in caplog.text and "subject:identifier" not in line


def test_the_log_line_names_the_route_template_not_the_path(system, caplog, monkeypatch):
    personnummer = new_personnummer()
    plan_id = system.sip.post(
        "/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON
    ).json()["id"]
    monkeypatch.setattr(system.sip_app.state.plans, "version_at", failing_with(personnummer))
    caplog.set_level(logging.ERROR, logger="sip.api")
    response = system.sip.get(
        f"/fhir/CarePlan/{plan_id}/$as-of",
        params={"instant": "2030-01-01"},
        headers={"X-Request-ID": "trace-me-2"},
    )
    assert response.status_code == 500
    line = the_log_line(caplog, "trace-me-2")
    assert "in GET /fhir/CarePlan/{id}/$as-of (request trace-me-2)" in line
    assert plan_id not in line and "2030" not in line and personnummer not in caplog.text


def test_a_generated_request_id_is_the_one_in_the_500(system, monkeypatch):
    def fail(**_):
        raise RuntimeError("no")

    monkeypatch.setattr(system.sip_app.state.plans, "start", fail)
    response = system.sip.post(
        "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert f"(request {request_id})" in response.json()["issue"][0]["diagnostics"]
