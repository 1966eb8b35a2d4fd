"""Bearer tokens of every malformed shape, for tests that every route answers them 401.

`signed` tokens carry a valid signature of the development issuer, so only the shape of their
header or claims is wrong; the rest are broken before any signature can be checked."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

from services.common.auth.tokens import DEFAULT_AUDIENCE, DEV_ISSUER, DEV_KEY_FILE

PERSONNUMMER_LIKE = "197007077071"
WRONG_TYPES: dict[str, Any] = {
    "list": ["a", "b"], "object": {"a": 1}, "number": 5, "null": None, "bool": True,
}  # fmt: skip
# Every claim the services read, each with every JSON type it must not have.
CHECKED_CLAIMS = ("iss", "aud", "sub", "exp", "role", "org", "unit", "scope", "patient")
ODD_VALUES: dict[str, dict[str, Any]] = {
    "exp": {"huge": 10**30, "negative": -1, "float-string": "1700000000.5", "float": 1e10},
    "iat": {"string": "now", "huge": 10**30},
    "nbf": {"list": [1]},
    "sub": {"empty": "", "nul": "user\x00", "lone-surrogate": "\ud800", "long": "x" * 10_000},
    "org": {"nul": "SE2321000032-R\x00", "empty": ""},
    "patient": {"control": "1970\x0707"},
    "aud": {"empty-list": [], "list-of-numbers": [1]},
}


def dev_key(data_dir: Path) -> ECKey:
    return ECKey.import_key(json.loads((data_dir / DEV_KEY_FILE).read_text()))


def good_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": DEV_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": "x", "iat": now,
            "exp": now + 600, "role": "coordinator", "org": "SE2321000032-R0001",
            "scope": "user/*.cruds"}  # fmt: skip


_KEYS_OWN = object()


def sign(key: ECKey, payload: Any, header: Any = _KEYS_OWN) -> str:
    """An ES256 compact JWS over any JSON header and payload, signed by hand: libraries
    refuse to sign a header that is not an object or a `kid` that is not a string."""
    protected = {"alg": "ES256", "kid": key.kid} if header is _KEYS_OWN else header
    signing_input = f"{_segment(_json(protected))}.{_segment(_json(payload))}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{_segment(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def malformed_tokens(key: ECKey) -> dict[str, str]:
    """Each malformed shape's name and token."""
    tokens = {
        f"claim-{claim}-{kind}": sign(key, good_claims() | {claim: value})
        for claim in CHECKED_CLAIMS
        for kind, value in WRONG_TYPES.items()
        if not (claim == "exp" and kind == "number")
    }
    tokens |= {
        f"claim-{claim}-{kind}": sign(key, good_claims() | {claim: value})
        for claim, odd in ODD_VALUES.items()
        for kind, value in odd.items()
    }
    missing = {f"claim-{claim}-missing": sign(key, _without(good_claims(), claim))
               for claim in ("iss", "aud", "sub", "exp", "role")}  # fmt: skip
    payloads = {"array": [good_claims()], "string": "claims", "number": 5, "null": None}
    headers = {"array": [{"alg": "ES256"}], "string": "ES256", "number": 1, "null": None}
    kids = {"list": ["a"], "object": {"kid": "a"}, "number": 1, "null": None, "empty": ""}
    return tokens | missing | {
        **{f"payload-{kind}": sign(key, value) for kind, value in payloads.items()},
        **{f"header-{kind}": sign(key, good_claims(), value) for kind, value in headers.items()},
        **{f"kid-{kind}": sign(key, good_claims(), {"alg": "ES256", "kid": value})
           for kind, value in kids.items()},
        "alg-number": _unsigned({"alg": 256}, good_claims()),
        "alg-none": _unsigned({"alg": "none"}, good_claims()),
        "payload-nested": _raw(b"{}", b"[" * 5000 + b"]" * 5000),
        "payload-not-json": _raw(b"{}", b"not json"),
        "payload-not-utf8": _raw(b"{}", bytes([0xFF, 0xFE])),
        "payload-not-base64": _segment(b"{}") + ".!!!.c2ln",
        "two-segments": "eyJhbGciOiJFUzI1NiJ9.e30",
        "four-segments": sign(key, good_claims()) + ".extra",
        "non-ascii": "ÿÿÿ.ÿÿÿ.ÿÿÿ",
        "one-megabyte": sign(key, good_claims() | {"pad": "x" * 1_000_000}),
    }  # fmt: skip


def _unsigned(header: Any, payload: Any) -> str:
    return _raw(_json(header), _json(payload))


def _raw(header: bytes, payload: bytes) -> str:
    return f"{_segment(header)}.{_segment(payload)}.c2lnbmF0dXJl"


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
