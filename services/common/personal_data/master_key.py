"""The master key that wraps every data key, kept outside the database: `SIP_MASTER_KEY`
(32 bytes, base64url), or the file `SIP_MASTER_KEY_FILE` holding it, or on the embedded
default a file made once in the key directory. During a rotation the key being replaced is
given as `SIP_MASTER_KEY_PREVIOUS`, so rows not yet re-wrapped still unwrap."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.data_dir import PRIVATE_FILE, make_private_directory, warn_if_others_may_read

MASTER_KEY_FILE = "personal-data-master-key"
KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKeyProblem(ValueError):
    """No usable master key, or a wrapped key that none of the known master keys opens."""


@dataclass(frozen=True)
class MasterKey:
    secret: bytes = field(repr=False)
    # Names the key in each row it wrapped, without revealing it.
    key_id: str = field(init=False, compare=False)
    # Made once, not for each data key made or unwrapped (a rebuild unwraps every person's).
    cipher: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise MasterKeyProblem(f"a master key is {KEY_BYTES} bytes (base64url encoded)")
        key_id = hashlib.sha256(b"sip master key id\x00" + self.secret).hexdigest()[:16]
        object.__setattr__(self, "key_id", key_id)
        object.__setattr__(self, "cipher", AESGCM(self.secret))

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        text = text.strip()
        try:
            secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raise MasterKeyProblem("a master key is base64url text") from None
        return cls(secret)

    def as_text(self) -> str:
        return base64.urlsafe_b64encode(self.secret).decode().rstrip("=")

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """`nonce || AES-GCM(data_key)`; `context` (the row's key id and purpose) is bound
        in, so a wrapped key copied onto another row does not unwrap."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self.cipher.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self.cipher.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag:
            raise MasterKeyProblem(
                "a wrapped data key does not open: changed or misplaced"
            ) from None


@dataclass(frozen=True)
class MasterKeys:
    """The key new data keys are wrapped with, and those being rotated away from."""

    current: MasterKey
    previous: tuple[MasterKey, ...] = ()

    def by_id(self, key_id: str) -> MasterKey:
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        raise MasterKeyProblem(
            f"a data key is wrapped by master key {key_id}, which is neither SIP_MASTER_KEY "
            "nor SIP_MASTER_KEY_PREVIOUS"
        )


def master_keys_from_env(key_dir: Path, environ: Mapping[str, str] = os.environ) -> MasterKeys:
    """The master keys the environment names; without one, the key directory's own file,
    made the first time (the embedded default's way, as for the signing keys)."""
    previous = tuple(
        MasterKey.from_text(text) for text in environ.get("SIP_MASTER_KEY_PREVIOUS", "").split()
    )
    if environ.get("SIP_MASTER_KEY"):
        return MasterKeys(MasterKey.from_text(environ["SIP_MASTER_KEY"]), previous)
    path = Path(environ.get("SIP_MASTER_KEY_FILE") or key_dir / MASTER_KEY_FILE)
    return MasterKeys(load_or_create_master_key(path), previous)


def load_or_create_master_key(path: Path) -> MasterKey:
    """The key in `path`, made 0600 the first time; replicas starting at once: the first
    link wins and the others read it."""
    if not path.exists():
        make_private_directory(path.parent)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.touch(mode=PRIVATE_FILE)
        temporary.write_text(MasterKey.generate().as_text())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        temporary.unlink()
    warn_if_others_may_read(path)
    return MasterKey.from_text(path.read_text())
