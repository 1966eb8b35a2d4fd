"""SMART on FHIR discovery on both services: `/.well-known/smart-configuration` (at the FHIR
base, where SMART clients look, and at the root) and the CapabilityStatement's
`rest.security` name the issuer the services trust and its endpoints, from the settings
(services/common/auth/smart.py)."""

from __future__ import annotations

import httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from services.common.auth.scopes import permits
from services.common.auth.smart import OAUTH_URIS
from services.common.auth.tokens import DEV_ISSUER, default_scopes
from services.common.configuration_check import ConfigurationError
from services.common.settings import ServiceSettings
from tests.conftest import running_system
from tests.servers import http_client

IDP = "https://idp.region.example"
CONFIGURED = {
    "trusted_issuers": {IDP: f"{IDP}/jwks"},
    "token_endpoint": f"{IDP}/token",
    "authorization_endpoint": f"{IDP}/authorize",
}
ROLES = ("coordinator", "professional", "integration", "auditor", "patient")


def discovered(url: str) -> list[dict]:
    """The document at both addresses, asked as a SMART client asks: no token."""
    documents = []
    with http_client(url, headers={}) as client:
        for path in ("/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"):
            answer = client.get(path, headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/json")
            documents.append(answer.json())
    assert documents[0] == documents[1]
    return documents


def security_of(url: str) -> dict:
    with http_client(url, headers={}) as client:
        statement = client.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(statement)
    return statement["rest"][0]["security"]


def test_the_embedded_default_names_its_development_issuer_and_no_invented_endpoint(system):
    for url in (system.sip_url, system.consent_url):
        document = discovered(url)[0]
        assert document["issuer"] == DEV_ISSUER
        # `sip token` mints its tokens: there is no token endpoint to name, so none is.
        assert "token_endpoint" not in document
        assert "authorization_endpoint" not in document
        assert document["grant_types_supported"] == ["client_credentials"]
        assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert "permission-v2" in document["capabilities"]
        security = security_of(url)
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        assert "extension" not in security  # oauth-uris needs a token endpoint
        assert DEV_ISSUER in security["description"]


def test_the_scopes_listed_are_the_ones_the_roles_tokens_carry_and_are_honoured(system):
    listed = discovered(system.sip_url)[0]["scopes_supported"]
    assert set(listed) == {scope for role in ROLES for scope in default_scopes(role)}
    for scope in listed:  # each one is a scope the services read, granting what it names
        context, rest = scope.split("/")
        resource_type = rest.split(".")[0].replace("*", "AuditEvent")
        assert permits((scope,), context, resource_type, "r"), scope


@pytest.fixture(scope="module")
def configured_system(module_backend):
    with running_system(module_backend, **CONFIGURED) as system:
        yield system


def test_a_configured_identity_provider_is_named_everywhere(configured_system):
    for url in (configured_system.sip_url, configured_system.consent_url):
        document = discovered(url)[0]
        assert document["issuer"] == IDP
        assert document["jwks_uri"] == f"{IDP}/jwks"
        assert document["token_endpoint"] == f"{IDP}/token"
        assert document["authorization_endpoint"] == f"{IDP}/authorize"
        assert document["grant_types_supported"] == ["client_credentials", "authorization_code"]
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert "launch-standalone" in document["capabilities"]
        (oauth_uris,) = security_of(url)["extension"]
        assert oauth_uris["url"] == OAUTH_URIS
        assert {e["url"]: e["valueUri"] for e in oauth_uris["extension"]} == {
            "token": f"{IDP}/token",
            "authorize": f"{IDP}/authorize",
        }


def test_discovery_needs_no_token_and_discloses_nothing_with_one(configured_system):
    """The same document for anyone; a bad token does not make it a 401."""
    url = configured_system.sip_url
    (anonymous, _) = discovered(url)
    with httpx.Client(base_url=url) as client:
        answer = client.get(
            "/fhir/.well-known/smart-configuration", headers={"Authorization": "Bearer x.y.z"}
        )
    assert answer.status_code == 200
    assert answer.json() == anonymous


def test_the_token_endpoint_defaults_to_the_one_the_sip_service_uses(monkeypatch, tmp_path):
    monkeypatch.setenv("SIP_CLIENT_TOKEN_URL", f"{IDP}/oauth2/token")
    monkeypatch.delenv("SIP_TOKEN_ENDPOINT", raising=False)
    monkeypatch.setenv("SIP_AUTHORIZATION_ENDPOINT", "")
    settings = ServiceSettings.from_env("SIP_DATABASE_URL")
    from services.common.auth.smart import SmartEndpoints

    endpoints = SmartEndpoints.of(settings)
    assert endpoints.token_endpoint == f"{IDP}/oauth2/token"
    assert endpoints.authorization_endpoint is None
    monkeypatch.setenv("SIP_TOKEN_ENDPOINT", f"{IDP}/token")
    assert SmartEndpoints.of(ServiceSettings.from_env("SIP_DATABASE_URL")).token_endpoint == (
        f"{IDP}/token"
    )


@pytest.mark.parametrize("variable", ["SIP_TOKEN_ENDPOINT", "SIP_AUTHORIZATION_ENDPOINT"])
def test_an_endpoint_that_is_not_a_url_is_refused_at_start(monkeypatch, tmp_path, variable):
    monkeypatch.setenv("SIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, "idp.region.example/token")
    with pytest.raises(ConfigurationError, match=variable):
        ServiceSettings.from_env("SIP_DATABASE_URL").checked("sip")
