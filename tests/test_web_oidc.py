"""Signing in to the web client in production: OpenID Connect authorization code flow with
PKCE against the trusted issuer, here an identity provider on loopback that checks the PKCE
verifier as a real one does. The services trust the same issuer, so the access token it
hands out is what the pages call the API with."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from services.common.demo_identities import REGION
from tests.conftest import running_system
from tests.servers import free_port, serve
from tests.web_client import WebUser, serving_web, text_of

CLIENT_ID, CLIENT_SECRET = "sip-web", "web-secret"


class OpenIdProvider:
    """Just enough of an OpenID provider: discovery, authorize (it signs in whoever asks,
    as a coordinator at the region), token (checking the PKCE verifier), JWKS."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})
        self.pending: dict[str, dict[str, Any]] = {}
        self.challenge_methods: list[str] = []
        self.app = FastAPI()
        self.app.get("/.well-known/openid-configuration")(self.discovery)
        self.app.get("/authorize")(self.authorize)
        self.app.post("/token")(self.token)
        self.app.get("/jwks")(lambda: KeySet([self.key]).as_dict(private=False))

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, request: Request) -> RedirectResponse:
        query = request.query_params
        self.challenge_methods.append(query.get("code_challenge_method", ""))
        code = secrets.token_urlsafe(16)
        self.pending[code] = dict(query)
        back = urlencode({"code": code, "state": query["state"]})
        return RedirectResponse(f"{query['redirect_uri']}?{back}", status_code=302)

    def token(
        self,
        request: Request,
        code: str = Form(),
        code_verifier: str = Form(""),
        redirect_uri: str = Form(),
    ) -> JSONResponse:
        asked = self.pending.pop(code, None)
        digest = hashlib.sha256(code_verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if asked is None or asked.get("code_challenge") != expected:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if redirect_uri != asked["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {
                "access_token": self.signed(
                    aud="sip-case-service",
                    sub="hsa-user-7",
                    role="coordinator",
                    org=REGION,
                    unit=REGION,
                    scope="user/CarePlan.cruds user/Consent.crus user/*.rs",
                ),
                "id_token": self.signed(
                    aud=CLIENT_ID, sub="hsa-user-7", nonce=asked["nonce"], name="Maja Vårdsson"
                ),
                "token_type": "Bearer",
                "expires_in": 300,
            }
        )

    def signed(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "iat": now, "exp": now + 300, **claims}
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, payload, self.key)


@pytest.fixture
def provider():
    port = free_port()
    idp = OpenIdProvider(f"http://127.0.0.1:{port}")
    with serve(idp.app, port):
        yield idp


@pytest.fixture
def production_web(provider, backend):
    trusted = {provider.issuer: f"{provider.issuer}/jwks"}
    with running_system(backend, trusted_issuers=trusted) as system:
        settings = dict(
            dev_issuer=False,
            session_secret="s" * 48,
            oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_scope="openid",
        )
        port = free_port()
        with serving_web(system, public_url=f"http://127.0.0.1:{port}", port=port, **settings):
            yield f"http://127.0.0.1:{port}"


def test_a_coordinator_signs_in_with_openid_connect_and_pkce(provider, production_web):
    user = WebUser(production_web)
    page = user.get("/signin")
    assert "data-user=" not in page.text  # no demo users in production
    page = user.get("/signin/oidc")
    assert provider.challenge_methods == ["S256"]
    assert page.url.path == "/worklist", text_of(page)
    assert "Maja Vårdsson" in text_of(page)  # the name from the verified ID token
    signed_out = user.submit("/signout")
    assert signed_out.url.path == "/signin"
    assert user.get("/worklist").url.path == "/signin"
    user.close()


def test_a_callback_without_the_flow_it_belongs_to_is_refused(provider, production_web):
    user = WebUser(production_web)
    page = user.get("/signin/callback?code=stolen&state=forged")
    assert page.status_code == 400
    assert "Inloggningen misslyckades" in text_of(page)
    assert user.get("/worklist").url.path == "/signin"
    user.close()


def test_an_identity_provider_that_is_down_gives_a_clear_page(backend):
    down = f"http://127.0.0.1:{free_port()}"
    with running_system(backend, trusted_issuers={down: f"{down}/jwks"}) as system:
        settings = dict(
            dev_issuer=False,
            session_secret="s" * 48,
            oidc_issuer=down,
            oidc_client_id=CLIENT_ID,
        )
        with serving_web(system, **settings) as url:
            user = WebUser(url)
            page = user.get("/signin/oidc")
            assert page.status_code == 503
            assert "Inloggningstjänsten svarar inte just nu" in text_of(page)
            user.close()
