"""Notifications are signed with the service's checkpoint key: a detached JWS (RFC 7515,
appendix F) of the exact body bytes in the `X-Signature` header. The receiver verifies it
with the public keys at `/events/checkpoint-keys` (the key id is in the JWS header), so a
notification cannot be forged by whoever reaches the receiver's endpoint."""

from __future__ import annotations

import time
from typing import Any

from joserfc import jws
from joserfc.jwk import KeySet, OKPKey
from joserfc.util import urlsafe_b64encode

from services.common.audit.checkpoints import ALGORITHM, CheckpointSigner

SIGNATURE_HEADER = "X-Signature"


class NotificationSigner:
    """The key is read again at most every KEY_SECONDS, not for each of a hundred
    notifications of one event; a rotation reaches the notifications within that time, and
    the retired key stays published, so what it signed still verifies."""

    KEY_SECONDS = 5.0

    def __init__(self, signer: CheckpointSigner) -> None:
        self._signer = signer
        self._key: tuple[float, OKPKey] | None = None

    def _active_key(self) -> OKPKey:
        if self._key is None or time.monotonic() - self._key[0] > self.KEY_SECONDS:
            self._key = (time.monotonic(), self._signer.active_key())
        return self._key[1]

    def sign(self, body: bytes) -> str:
        key = self._active_key()
        compact = jws.serialize_compact(
            {"alg": ALGORITHM, "kid": key.kid}, body, key, algorithms=[ALGORITHM]
        )
        protected, _, signature = compact.split(".")
        return f"{protected}..{signature}"


def verify_detached(signature: str, body: bytes, public_keys: dict[str, Any]) -> bool:
    """What a receiver does: True when `signature` is the service's over `body`."""
    protected, empty, sig = signature.split(".")
    if empty:
        return False
    try:
        jws.deserialize_compact(
            f"{protected}.{jws_payload(body)}.{sig}",
            KeySet.import_key_set(public_keys),
            algorithms=[ALGORITHM],
        )
    except Exception:
        return False
    return True


def jws_payload(body: bytes) -> str:
    return urlsafe_b64encode(body).decode()
