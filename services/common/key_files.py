"""Private keys kept as JWK files in one key directory, created once and shared by replicas.

The key directory is `SIP_KEY_DIR`, or the data folder when unset (the embedded default's
layout, which earlier releases wrote). Every replica of a service pointed at the same directory
signs with the same key. Keys are created readable by the service's user only: the directory
0700 when this creates it, each file 0600. A retired key keeps only its public half, under
`retired/`, so what it signed still verifies (deploy/README.md, "Keys").
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common.data_dir import make_private_directory, warn_if_others_may_read

RETIRED = "retired"


def key_dir_from_env(data_dir: Path) -> Path:
    """Where the signing keys are: `SIP_KEY_DIR`, or the data folder."""
    return Path(os.environ.get("SIP_KEY_DIR") or data_dir)


def load_or_create_jwk(path: Path, generate: Callable[[], Any]) -> dict[str, Any]:
    """The private JWK in `path`; `generate()` makes one the first time, readable by the owner
    only. Replicas may start at once: the first link wins and the others read it."""
    if not path.exists():
        make_private_directory(path.parent)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.touch(mode=0o600)
        temporary.write_text(json.dumps(generate().as_dict(private=True)))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        temporary.unlink()
    warn_if_others_may_read(path)
    return json.loads(path.read_text())


def read_jwk(path: Path) -> dict[str, Any] | None:
    """The JWK in `path`, or None when there is none (never creates one)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def retired_public_jwks(key_dir: Path, prefix: str) -> list[dict[str, Any]]:
    """The public halves of the retired keys whose file names start with `prefix`."""
    folder = key_dir / RETIRED
    if not folder.is_dir():
        return []
    return [json.loads(file.read_text()) for file in sorted(folder.glob(f"{prefix}*.json"))]


def retire(path: Path, public_jwk: dict[str, Any], prefix: str) -> Path:
    """Keeps the key's public half under `retired/` (named by its key id) and removes the
    private key, so the next use makes a new key with a new id."""
    folder = path.parent / RETIRED
    make_private_directory(folder)
    kept = folder / f"{prefix}{public_jwk['kid']}.json"
    kept.write_text(json.dumps(public_jwk))
    path.unlink(missing_ok=True)
    return kept
