"""Private keys kept as JWK files in the data folder, created once."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_or_create_jwk(path: Path, generate: Callable[[], Any]) -> dict[str, Any]:
    """The private JWK in `path`; `generate()` makes one the first time, readable by the owner
    only. Both services may start at once: the first link wins and the other reads it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.touch(mode=0o600)
        temporary.write_text(json.dumps(generate().as_dict(private=True)))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        temporary.unlink()
    return json.loads(path.read_text())
