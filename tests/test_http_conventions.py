"""The HTTP conventions off-the-shelf FHIR clients rely on, on both services over real HTTP:
Last-Modified, an absolute Location, conditional reads (304), Prefer, content negotiation
(406), Allow on 405, HEAD and lenient search handling; careless inputs too."""

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.fhir_data import (
    FHIR_JSON,
    OTHER_REGION,
    care_plan,
    consent,
    new_personnummer,
    withdrawal,
)

SERVICES = ["CarePlan", "Consent"]


def client_of(system, resource_type, caller=None):
    caller = caller or system
    return caller.consent if resource_type == "Consent" else caller.sip


def url_of(system, resource_type):
    return system.consent_url if resource_type == "Consent" else system.sip_url


def create(system, resource_type, headers=None):
    make = consent if resource_type == "Consent" else care_plan
    return client_of(system, resource_type).post(
        f"/fhir/{resource_type}",
        json=make(new_personnummer()),
        headers={**FHIR_JSON, **(headers or {})},
    )


def created(system, resource_type):
    response = create(system, resource_type)
    assert response.status_code == 201, response.text
    return response.json()


def outcome(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    OperationOutcome.model_validate(response.json())
    return response.json()["issue"][0]


def http_date(moment):
    return format_datetime(moment.astimezone(UTC), usegmt=True)


# ---- Last-Modified and Location ----------------------------------------------------------


@pytest.mark.parametrize("resource_type", SERVICES)
def test_last_modified_is_an_http_date_of_last_updated(system, resource_type):
    answer = create(system, resource_type)
    resource = answer.json()
    updated = datetime.fromisoformat(resource["meta"]["lastUpdated"]).replace(microsecond=0)
    client = client_of(system, resource_type)
    path = f"/fhir/{resource_type}/{resource['id']}"
    for response in (answer, client.get(path), client.get(f"{path}/_history/1")):
        header = response.headers["Last-Modified"]
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", header), header
        assert parsedate_to_datetime(header) == updated


@pytest.mark.parametrize("resource_type", SERVICES)
def test_location_is_absolute_and_names_the_version(system, resource_type):
    answer = create(system, resource_type)
    location = answer.headers["Location"]
    base = url_of(system, resource_type)
    assert location == f"{base}/fhir/{resource_type}/{answer.json()['id']}/_history/1"
    assert httpx.get(location, headers=client_of(system, resource_type).headers).json() == (
        answer.json()
    )


def test_location_follows_the_host_and_scheme_a_proxy_forwards(system):
    proxied = {"Host": "sip.region.example", "X-Forwarded-Proto": "https"}
    answer = create(system, "CarePlan", headers=proxied)
    assert answer.headers["Location"].startswith("https://sip.region.example/fhir/CarePlan/")


# ---- conditional reads -------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", SERVICES)
def test_if_none_match_answers_304_without_a_body(system, resource_type):
    resource = created(system, resource_type)
    client = client_of(system, resource_type)
    path = f"/fhir/{resource_type}/{resource['id']}"
    for tag in ('W/"1"', '"1"', "*", 'W/"7", W/"1"'):
        response = client.get(path, headers={"If-None-Match": tag})
        assert response.status_code == 304, tag
        assert response.content == b""
        assert response.headers["ETag"] == 'W/"1"'
        assert "Last-Modified" in response.headers
    for tag in ('W/"2"', "garbage", ""):
        response = client.get(path, headers={"If-None-Match": tag})
        assert response.status_code == 200, tag
        assert response.json() == resource
    vread = client.get(f"{path}/_history/1", headers={"If-None-Match": 'W/"1"'})
    assert vread.status_code == 304


@pytest.mark.parametrize("resource_type", SERVICES)
def test_a_304_never_tells_one_who_may_not_read_the_resource_that_it_exists(system, resource_type):
    resource = created(system, resource_type)
    stranger = client_of(system, resource_type, system.as_caller(organization=OTHER_REGION))
    path = f"/fhir/{resource_type}/{resource['id']}"
    for headers in ({"If-None-Match": "*"}, {"If-Modified-Since": http_date(datetime.now(UTC))}):
        assert outcome(stranger.get(path, headers=headers), 404)["code"] == "not-found"


@pytest.mark.parametrize("resource_type", SERVICES)
def test_if_modified_since(system, resource_type):
    resource = created(system, resource_type)
    client = client_of(system, resource_type)
    path = f"/fhir/{resource_type}/{resource['id']}"
    updated = datetime.fromisoformat(resource["meta"]["lastUpdated"])
    answers = {
        http_date(updated + timedelta(hours=1)): 304,
        http_date(updated): 304,  # the same second: HTTP dates have no fraction
        http_date(updated - timedelta(seconds=1)): 200,
        "yesterday": 200,  # not a date: ignored (RFC 7232)
        "Wed, 99 Foo 2026 25:61:61 GMT": 200,
        "": 200,
    }
    for since, status in answers.items():
        response = client.get(path, headers={"If-Modified-Since": since})
        assert response.status_code == status, since
        assert (response.content == b"") == (status == 304)
    # If-None-Match decides when both are given (RFC 7232 §3.3).
    both = {"If-None-Match": 'W/"9"', "If-Modified-Since": http_date(updated + timedelta(1))}
    assert client.get(path, headers=both).status_code == 200


def test_searches_are_not_answered_304(system):
    created(system, "CarePlan")
    response = system.sip.get("/fhir/CarePlan", headers={"If-None-Match": "*"})
    assert response.status_code == 200


# ---- Prefer: return ----------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", SERVICES)
def test_prefer_return_minimal_answers_without_a_body(system, resource_type):
    answer = create(system, resource_type, headers={"Prefer": "return=minimal"})
    assert answer.status_code == 201
    assert answer.content == b""
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.headers["Preference-Applied"] == "return=minimal"
    read = httpx.get(answer.headers["Location"], headers=client_of(system, resource_type).headers)
    assert read.status_code == 200
    assert read.json()["resourceType"] == resource_type


@pytest.mark.parametrize("resource_type", SERVICES)
def test_prefer_return_operation_outcome(system, resource_type):
    answer = create(system, resource_type, headers={"Prefer": "return=OperationOutcome"})
    issue = outcome(answer, 201)
    assert (issue["severity"], issue["code"]) == ("information", "informational")
    assert answer.headers["Location"].startswith("http")


@pytest.mark.parametrize("resource_type", SERVICES)
@pytest.mark.parametrize(
    "prefer", ["return=representation", "return=bogus", "bogus", "return", ",;=,", "x=y, z"]
)
def test_prefer_representation_or_unknown_preferences_get_the_resource(
    system, resource_type, prefer
):
    """RFC 7240: a preference the server does not know is ignored."""
    answer = create(system, resource_type, headers={"Prefer": prefer})
    assert answer.status_code == 201
    assert answer.json()["resourceType"] == resource_type


def test_prefer_return_on_an_operation(system):
    resource = created(system, "Consent")
    withdrawn = system.consent.post(
        f"/fhir/Consent/{resource['id']}/$withdraw",
        json=withdrawal("Flyttar"),
        headers={**FHIR_JSON, "Prefer": "return=minimal"},
    )
    assert withdrawn.status_code == 200
    assert withdrawn.content == b""
    assert withdrawn.headers["ETag"] == 'W/"2"'
    assert system.consent.get(f"/fhir/Consent/{resource['id']}").json()["status"] == "inactive"


def test_prefer_return_is_not_applied_to_a_search_by_post(system):
    created(system, "CarePlan")
    found = system.sip.post("/fhir/CarePlan/_search", data={}, headers={"Prefer": "return=minimal"})
    assert found.status_code == 200
    assert found.json()["resourceType"] == "Bundle"


# ---- _format and Accept ------------------------------------------------------------------


SERVED_ACCEPTS = [
    "application/fhir+json",
    "application/json",
    "application/fhir+json; fhirVersion=4.0",
    "application/fhir+json;fhirVersion=4.0.1;charset=utf-8",
    "*/*",
    "application/*",
    "application/fhir+xml, application/fhir+json;q=0.5",
    "application/fhir+xml;q=0.9, */*;q=0.1",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser's
    "garbage",  # no media range at all: read as no Accept header
    "application/fhir+json;q=abc",
]
REFUSED_ACCEPTS = [
    "application/fhir+xml",
    "application/xml",
    "text/html",
    "application/fhir+json;fhirVersion=3.0",
    "application/fhir+json;q=0, application/fhir+xml",
]


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_json_is_served_for_every_form_of_asking_for_it(system, service):
    client = getattr(system, service)
    for accept in SERVED_ACCEPTS:
        assert client.get("/fhir/metadata", headers={"Accept": accept}).status_code == 200, accept
    for format in ["json", "application/json", "application/fhir+json", "JSON"]:
        assert client.get("/fhir/metadata", params={"_format": format}).status_code == 200
    # `+` unencoded in a URL's query reads as a space.
    raw = client.get("/fhir/metadata?_format=application/fhir+json;fhirVersion=4.0")
    assert raw.status_code == 200


@pytest.mark.parametrize("service", ["sip", "consent"])
def test_what_is_not_served_is_406_naming_format_or_accept(system, service):
    client = getattr(system, service)
    for accept in REFUSED_ACCEPTS:
        issue = outcome(client.get("/fhir/metadata", headers={"Accept": accept}), 406)
        assert "Accept" in issue["diagnostics"], accept
    for format in ["xml", "application/fhir+xml", "text/html", "html", "turtle", ""]:
        issue = outcome(client.get("/fhir/metadata", params={"_format": format}), 406)
        assert issue["expression"] == ["_format"]
        assert issue["code"] == "not-supported"
    # _format overrides Accept, both ways.
    assert client.get("/fhir/metadata?_format=json", headers={"Accept": "text/html"}).is_success
    refused = client.get("/fhir/metadata?_format=xml", headers={"Accept": "*/*"})
    assert refused.status_code == 406


def test_a_refused_format_is_refused_before_anything_is_written(system):
    before = system.sip.get("/fhir/CarePlan").json()["total"]
    refused = system.sip.post(
        "/fhir/CarePlan?_format=xml", json=care_plan(new_personnummer()), headers=FHIR_JSON
    )
    assert refused.status_code == 406
    assert system.sip.get("/fhir/CarePlan").json()["total"] == before


def test_html_is_still_served_where_it_was(system):
    personnummer = new_personnummer()
    patient = system.as_caller("patient", organization=None, patient=personnummer)
    path = f"/fhir/Patient/{personnummer}/$access-log"
    page = patient.sip.get(path, params={"_format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    page = patient.sip.get(path, headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert outcome(patient.sip.get(path, params={"_format": "xml"}), 406)


# ---- Allow on 405, HEAD ------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", SERVICES)
def test_a_405_says_which_methods_the_path_serves(system, resource_type):
    resource = created(system, resource_type)
    client = client_of(system, resource_type)
    refused = client.delete(f"/fhir/{resource_type}")
    assert outcome(refused, 405)["code"] == "not-supported"
    assert refused.headers["Allow"] == "GET, HEAD, POST"
    refused = client.put(f"/fhir/{resource_type}/{resource['id']}", json=resource)
    assert outcome(refused, 405)
    assert refused.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("resource_type", SERVICES)
def test_head_wherever_get_is_served(system, resource_type):
    resource = created(system, resource_type)
    client = client_of(system, resource_type)
    path = f"/fhir/{resource_type}/{resource['id']}"
    for target in (path, f"{path}/_history/1", f"{path}/_history", f"/fhir/{resource_type}"):
        got, head = client.get(target), client.head(target)
        assert head.status_code == 200, target
        assert head.content == b""
        for header in ("ETag", "Last-Modified", "Content-Type"):
            assert head.headers.get(header) == got.headers.get(header), (target, header)
    assert client.head("/fhir/metadata").status_code == 200
    assert client.head(path, headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.head("/fhir/metadata?_format=xml").status_code == 406
    assert client.head(f"/fhir/{resource_type}/not-an-id").status_code == 404


def test_head_where_only_post_is_served_is_405(system):
    resource = created(system, "CarePlan")
    refused = system.sip.head(f"/fhir/CarePlan/{resource['id']}/$activate")
    assert refused.status_code == 405
    assert "POST" in refused.headers["Allow"]


# ---- Prefer: handling --------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", SERVICES)
def test_unknown_search_parameters_are_refused_unless_lenient_is_asked(system, resource_type):
    created(system, resource_type)
    client = client_of(system, resource_type)
    for prefer in ({}, {"Prefer": "handling=strict"}, {"Prefer": "handling=bogus"}):
        refused = client.get(f"/fhir/{resource_type}?bogus=1", headers=prefer)
        assert outcome(refused, 400)["code"] == "not-supported"
        assert "bogus" in refused.json()["issue"][0]["diagnostics"]
    everything = client.get(f"/fhir/{resource_type}").json()
    lenient = client.get(
        f"/fhir/{resource_type}?bogus=1&other=2", headers={"Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200
    bundle = lenient.json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert len(matches) >= everything["total"]
    (noted,) = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert noted["resource"]["resourceType"] == "OperationOutcome"
    assert "bogus, other" in noted["resource"]["issue"][0]["diagnostics"]
    # A malformed known parameter is still refused.
    refused = client.get(
        f"/fhir/{resource_type}?_count=abc", headers={"Prefer": "handling=lenient"}
    )
    assert refused.status_code == 400


def test_lenient_search_by_post_names_what_it_ignored(system):
    created(system, "CarePlan")
    lenient = system.sip.post(
        "/fhir/CarePlan/_search", data={"bogus": "1"}, headers={"Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200
    (noted,) = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert "bogus" in noted["resource"]["issue"][0]["diagnostics"]


def test_lenient_search_without_unknown_parameters_adds_nothing(system):
    created(system, "CarePlan")
    bundle = system.sip.get("/fhir/CarePlan", headers={"Prefer": "handling=lenient"}).json()
    assert all(e["search"]["mode"] == "match" for e in bundle["entry"])


@pytest.mark.parametrize("resource_type", SERVICES)
def test_the_capability_statement_declares_conditional_reads(system, resource_type):
    statement = client_of(system, resource_type).get("/fhir/metadata").json()
    (declared,) = [r for r in statement["rest"][0]["resource"] if r["type"] == resource_type]
    assert declared["conditionalRead"] == "full-support"
