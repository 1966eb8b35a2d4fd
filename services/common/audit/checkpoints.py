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

from services.common.key_files import load_or_create_jwk

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
    def __init__(self, data_dir: Path, service: str) -> None:
        self._key = OKPKey.import_key(
            load_or_create_jwk(
                data_dir / f"{service}-checkpoint-key.json",
                lambda: OKPKey.generate_key(
                    "Ed25519", parameters={"kid": f"{service}-{uuid.uuid4().hex[:8]}"}
                ),
            )
        )

    def sign(self, checkpoint: Checkpoint) -> str:
        payload = json.dumps(checkpoint.as_dict(), sort_keys=True).encode()
        return jws.serialize_compact(
            {"alg": ALGORITHM, "kid": self._key.kid}, payload, self._key, algorithms=[ALGORITHM]
        )

    def public_keys(self) -> dict[str, Any]:
        return KeySet([OKPKey.import_key(self._key.as_dict(private=False))]).as_dict()


def read_signed_checkpoint(signed: str, public_keys: dict[str, Any]) -> Checkpoint:
    try:
        verified = jws.deserialize_compact(
            signed, KeySet.import_key_set(public_keys), algorithms=[ALGORITHM]
        )
        return Checkpoint(**json.loads(verified.payload))
    except (JoseError, ValueError, TypeError) as error:
        raise InvalidCheckpoint(f"the checkpoint's signature does not verify ({error})") from None
