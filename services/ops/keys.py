"""Rotating a service's checkpoint-signing key: `python -m services.ops.keys rotate sip`.

The active key's public half is kept under `<key dir>/retired/`, named by its key id, and the
private key is removed; the next checkpoint any replica signs makes a new key with a new id
(replicas read the key at each signing). Checkpoints signed before still verify, offline
(`sip audit verify --checkpoint`) and over HTTP (`/events/checkpoint-keys` lists retired keys).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.common.audit.checkpoints import rotate_checkpoint_key
from services.common.key_files import key_dir_from_env
from services.common.persistence import data_dir_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.ops.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser("rotate", help="retire a service's checkpoint-signing key")
    rotate.add_argument("service", choices=["sip", "consent"])
    rotate.add_argument(
        "--key-dir", type=Path, default=None, help="SIP_KEY_DIR, or the data folder, by default"
    )
    arguments = parser.parse_args(argv)
    key_dir = arguments.key_dir or key_dir_from_env(data_dir_from_env())
    retired = rotate_checkpoint_key(key_dir, arguments.service)
    if retired is None:
        print(f"no active {arguments.service} checkpoint key in {key_dir}", file=sys.stderr)
        return 1
    print(f"retired {retired}; the next checkpoint is signed with a new key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
