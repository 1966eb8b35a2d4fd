"""Signed checkpoints: (service, position, head hash, time), signed with the service's Ed25519
key, so that an auditor who kept one can later prove the log still holds everything up to it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from services.common.key_files import (
    load_or_create_jwk,
    read_jwk,
    retire,
    retired_public_jwks,
)

ALGORITHM = "Ed25519"


class InvalidCheckpoint(Exception):
    pass


@dataclass(frozen=True)
class Checkpoint:
    service: str
    position: int
    head: str
    time: str

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "position": self.position, "head": self.head,
                "time": self.time}  # fmt: skip


class CheckpointSigner:
    """Signs with the service's active key in the key directory (shared by its replicas).
    The key is read at each signing, so a rotation reaches every replica without a restart;
    the public keys served are the active one and every retired one (`retired/`), so
    checkpoints signed before a rotation still verify."""

    def __init__(self, key_dir: Path, service: str) -> None:
        self._key_dir, self._service = key_dir, service
        self._active_key()  # created at start, not at an auditor's first request

    @property
    def _path(self) -> Path:
        return self._key_dir / f"{self._service}-checkpoint-key.json"

    def _active_key(self) -> OKPKey:
        return OKPKey.import_key(
            load_or_create_jwk(
                self._path,
                lambda: OKPKey.generate_key(
                    "Ed25519", parameters={"kid": f"{self._service}-{uuid.uuid4().hex[:8]}"}
                ),
            )
        )

    def active_key(self) -> OKPKey:
        """The key that signs now (also the subscriptions' notifications, so a receiver
        verifies them with the keys published at `/events/checkpoint-keys`)."""
        return self._active_key()

    def sign(self, checkpoint: Checkpoint) -> str:
        key = self._active_key()
        payload = json.dumps(checkpoint.as_dict(), sort_keys=True).encode()
        return jws.serialize_compact(
            {"alg": ALGORITHM, "kid": key.kid}, payload, key, algorithms=[ALGORITHM]
        )

    def public_keys(self) -> dict[str, Any]:
        return checkpoint_public_keys(self._key_dir, self._service)


def checkpoint_public_keys(key_dir: Path, service: str) -> dict[str, Any]:
    """The public keys a service's checkpoints verify with: its active key's and its retired
    keys'. Reads only; a folder without keys gives none."""
    public = retired_public_jwks(key_dir, f"{service}-checkpoint-")
    active = read_jwk(key_dir / f"{service}-checkpoint-key.json")
    if active is not None:
        public.append(OKPKey.import_key(active).as_dict(private=False))
    return {"keys": public}


def rotate_checkpoint_key(key_dir: Path, service: str) -> str | None:
    """Retires the service's active checkpoint key (its public half is kept); the next
    signing makes a new key with a new key id. Returns the retired key id, or None."""
    path = key_dir / f"{service}-checkpoint-key.json"
    active = read_jwk(path)
    if active is None:
        return None
    public = OKPKey.import_key(active).as_dict(private=False)
    retire(path, public, f"{service}-checkpoint-")
    return str(public["kid"])


def read_signed_checkpoint(signed: str, public_keys: dict[str, Any]) -> Checkpoint:
    try:
        verified = jws.deserialize_compact(
            signed, KeySet.import_key_set(public_keys), algorithms=[ALGORITHM]
        )
        return Checkpoint(**json.loads(verified.payload))
    except (JoseError, ValueError, TypeError) as error:
        raise InvalidCheckpoint(f"the checkpoint's signature does not verify ({error})") from None
