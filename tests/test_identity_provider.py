"""Tokens from an organisation's identity provider: verified against its JWKS over HTTP,
keys cached, and a rotated key picked up without a restart."""

import time

import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from services.common.auth.tokens import InvalidToken, JwksCache, TokenVerifier
from tests.servers import serve

ISSUER = "https://idp.region.example"


class IdentityProvider:
    """A JWKS endpoint on loopback whose keys the test rotates."""

    def __init__(self) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": "key-1"})]
        self.fetches = 0
        self.app = FastAPI()

        @self.app.get("/jwks")
        def jwks() -> dict:
            self.fetches += 1
            return KeySet(self.keys).as_dict(private=False)

    def rotate(self) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": f"key-{len(self.keys) + 1}"})]

    def token(self, **claims) -> str:
        key = self.keys[-1]
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": "sip-case-service", "sub": "hsa-user-1", "iat": now,
                   "exp": now + 300, "role": "coordinator", "org": "SE2321000032-R0001",
                   "unit": "SE2321000032-U1", "scope": "user/CarePlan.rs"} | claims  # fmt: skip
        return jwt.encode({"alg": "ES256", "kid": key.kid}, payload, key)


@pytest.fixture
def provider():
    idp = IdentityProvider()
    with serve(idp.app) as url:
        idp.jwks_url = f"{url}/jwks"
        yield idp


def test_a_token_from_a_trusted_issuer_is_verified_against_its_jwks(provider):
    verifier = TokenVerifier({ISSUER: JwksCache(provider.jwks_url)})
    actor = verifier.verify(provider.token())
    assert (actor.subject, actor.role, actor.organization, actor.unit) == (
        "hsa-user-1", "coordinator", "SE2321000032-R0001", "SE2321000032-U1"
    )  # fmt: skip
    assert actor.scopes == ("user/CarePlan.rs",)
    verifier.verify(provider.token(sub="hsa-user-2"))
    assert provider.fetches == 1  # cached


def test_a_rotated_key_is_fetched_once_and_old_tokens_stop_verifying(provider):
    cache = JwksCache(provider.jwks_url, min_refetch_seconds=0)
    verifier = TokenVerifier({ISSUER: cache})
    old_token = provider.token()
    verifier.verify(old_token)
    provider.rotate()
    verifier.verify(provider.token())
    assert provider.fetches == 2
    with pytest.raises(InvalidToken):
        verifier.verify(old_token)


def test_claims_the_services_rely_on_are_required(provider):
    verifier = TokenVerifier({ISSUER: JwksCache(provider.jwks_url)})
    for claims, problem in (
        ({"role": "chief"}, "role"),
        ({"org": None}, "organisation"),
        ({"aud": "other"}, "claims"),
        ({"exp": int(time.time()) - 120}, "expired"),
    ):
        token = provider.token(**{k: v for k, v in claims.items() if v is not None})
        if claims.get("org", "") is None:
            token = provider.token(org="")
        with pytest.raises(InvalidToken, match=problem):
            verifier.verify(token)


def test_an_unreachable_jwks_refuses_tokens():
    verifier = TokenVerifier({ISSUER: JwksCache("http://127.0.0.1:9/jwks")})
    with pytest.raises(InvalidToken, match="keys could not be fetched"):
        verifier.verify(IdentityProvider().token())
