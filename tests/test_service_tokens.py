"""The token the SIP service presents to the consent service is minted once and reused until
shortly before it expires (issue 15): the consent feed asks for it five times a second."""

from __future__ import annotations

from services.common.auth import service_tokens
from services.common.auth.service_tokens import DevServiceTokens
from services.common.auth.tokens import DevIssuer


def test_the_dev_token_is_reused_until_30_seconds_before_it_expires(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(service_tokens.time, "monotonic", lambda: clock[0])
    issuer = DevIssuer(tmp_path)
    minted = []
    mint = issuer.mint
    issuer.mint = lambda **claims: minted.append(claims) or mint(**claims)
    tokens = DevServiceTokens(issuer, subject="sip-service", organization="SE162321000255-O1")
    first = tokens()
    clock[0] += DevServiceTokens.LIFETIME - 31
    assert tokens() == first and len(minted) == 1
    clock[0] += 2  # within 30 s of its expiry: a new one, before a call could be refused
    second = tokens()
    assert len(minted) == 2 and second != first
    assert minted[0]["lifetime_seconds"] == DevServiceTokens.LIFETIME
    assert minted[0]["role"] == "integration"
