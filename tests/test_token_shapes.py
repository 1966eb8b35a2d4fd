"""Finding 3 of issue 11: a malformed token, signed or not, is a 401 with WWW-Authenticate
on every route, never a 500 (and never a 403 by accident)."""

import pytest

from services.common.auth.tokens import DEV_ISSUER, DevIssuer, InvalidToken, TokenVerifier
from tests.malformed_tokens import dev_key, good_claims, malformed_tokens, sign


@pytest.fixture(scope="module")
def dev_tokens(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("issuer")
    issuer = DevIssuer(data_dir)
    key = dev_key(data_dir)
    return TokenVerifier({DEV_ISSUER: issuer.public_keys()}), key


def test_the_well_formed_token_these_are_made_from_verifies(dev_tokens):
    verifier, key = dev_tokens
    actor = verifier.verify(sign(key, good_claims()))
    assert (actor.role, actor.organization) == ("coordinator", "SE2321000032-R0001")


def test_every_malformed_token_is_refused_as_invalid(dev_tokens):
    verifier, key = dev_tokens
    for name, token in malformed_tokens(key).items():
        with pytest.raises(InvalidToken) as refusal:
            verifier.verify(token)
        description = str(refusal.value)
        assert description.isascii() and "\x00" not in description, name
        assert "197007077071" not in description


def test_the_hand_signed_tokens_carry_a_signature_that_verifies(dev_tokens):
    verifier, key = dev_tokens
    assert verifier.verify(sign(key, good_claims(), {"alg": "ES256"})).subject == "x"
