"""One personal value sealed under a person's data key (AES-256-GCM).

A sealed value is `{"k": key id, "n": nonce, "c": ciphertext}` (base64url), the plain value
JSON-encoded inside. GCM authenticates: a changed byte, a value moved to another event or
field (`context`, the caller's associated data) or another key fails to open, it never opens
to something else. A value whose key was erased opens to `Erased`, not to an exception: a
stream with erased parts still replays."""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


@dataclass(frozen=True)
class DataKey:
    key_id: str
    secret: bytes = field(repr=False)
    # Made once per key, not per value: a replay opens thousands of values under one key.
    cipher: AESGCM = field(init=False, repr=False, compare=False)
    # What each value's associated data starts with (`_bound`), made once per key too.
    bound: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cipher", AESGCM(self.secret))
        object.__setattr__(self, "bound", _bound(self.key_id, b""))


@dataclass(frozen=True)
class Erased:
    """What a value sealed under an erased key reads as: when and under which rule."""

    key_id: str
    erased_at: str
    rule: str


class ErasedText(str):
    """An erased free text as a record built of its events holds it (a plan's entry whose
    author's key was erased while the record is kept, docs/decisions/0007): a text saying when
    and under which rule, so the domain, the read models and the FHIR mapping carry it as any
    text and show what was erased."""

    erased: Erased
    # Whether this process has built one: until it has, no answer can hold one, and the FHIR
    # answers are sent without looking for them (fhir_extensions.with_erasures_marked).
    any_made = False

    def __new__(cls, erased: Erased) -> ErasedText:
        made = super().__new__(cls, erased_text(erased))
        made.erased = erased
        ErasedText.any_made = True
        return made

    def __deepcopy__(self, memo: dict[int, object]) -> ErasedText:
        return self  # immutable, as a str

    def __reduce__(self) -> tuple[type[ErasedText], tuple[Erased]]:
        return (ErasedText, (self.erased,))


def erased_text(erased: Erased) -> str:
    """How an erased value is named wherever it is shown (replay, the API)."""
    return f"erased on {erased.erased_at} under {erased.rule!r}"


class TamperedValue(ValueError):
    """A sealed value that does not open with its live key: changed, or moved from elsewhere.
    Corruption, never to be shown as an erasure."""


def seal(key: DataKey, value: Any, context: bytes) -> dict[str, str]:
    """Seals a JSON value."""
    return seal_bytes(
        key, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), context
    )


def open_sealed(
    sealed: Mapping[str, str], context: bytes, key_of: Callable[[str], DataKey | Erased]
) -> Any:
    """The JSON value sealed, or `Erased` when its key was erased; `key_of(key_id)` finds
    the key."""
    plain = open_bytes(sealed, context, key_of)
    return plain if isinstance(plain, Erased) else json.loads(plain)


def seal_bytes(key: DataKey, plain: bytes, context: bytes) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)  # as secrets.token_bytes makes it, one call fewer
    cipher = key.cipher.encrypt(nonce, plain, key.bound + context)
    return {"k": key.key_id, "n": _text(nonce), "c": _text(cipher)}


def open_bytes(
    sealed: Mapping[str, str], context: bytes, key_of: Callable[[str], DataKey | Erased]
) -> bytes | Erased:
    try:
        key_id, nonce, cipher = sealed["k"], _bytes(sealed["n"]), _bytes(sealed["c"])
    except (KeyError, TypeError, ValueError):
        raise TamperedValue("not a sealed value") from None
    key = key_of(key_id)
    if isinstance(key, Erased):
        return key
    try:
        return key.cipher.decrypt(nonce, cipher, key.bound + context)
    except (InvalidTag, ValueError):
        raise TamperedValue(f"a value sealed under key {key_id} does not open") from None


def _bound(key_id: str, context: bytes) -> bytes:
    # The key id is bound in as well: a value relabelled with another key's id fails.
    return key_id.encode() + b"\x00" + context


# base64url without padding, as base64.urlsafe_b64encode/decode spell it, on binascii
# directly: two of these per field sealed or opened (issue 16).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _text(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _bytes(text: str) -> bytes:
    padded = (text + "=" * (-len(text) % 4)).encode("ascii")
    return binascii.a2b_base64(padded.translate(_FROM_URLSAFE))
