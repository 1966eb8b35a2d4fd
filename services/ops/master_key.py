"""`sip master-key rotate`: re-wraps every data key of both services with the master key now
given as SIP_MASTER_KEY (or SIP_MASTER_KEY_FILE), unwrapping those not yet re-wrapped with
SIP_MASTER_KEY_PREVIOUS (docs/decisions/0007, "Rotation re-wraps, never re-encrypts").

The order, with the services running: restart every replica with the new key as
SIP_MASTER_KEY and the old one as SIP_MASTER_KEY_PREVIOUS; run this command with the same
two settings; then restart the replicas without SIP_MASTER_KEY_PREVIOUS. Each service's keys
are re-wrapped in one transaction (all or none); events are not touched; a second run
re-wraps only what an old replica made meanwhile."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from services.common.personal_data.master_key import MasterKeyProblem, master_keys_from_env
from services.ops.offline import open_service


def add_master_key_commands(commands: Any, add_storage_arguments: Any, explained: Any) -> None:
    master_key = commands.add_parser(
        "master-key",
        **explained(
            "the master key of personal data: re-wrap every data key with a new one",
            "SIP_MASTER_KEY=<new> SIP_MASTER_KEY_PREVIOUS=<old> sip master-key rotate",
        ),
    )
    master_key_commands = master_key.add_subparsers(dest="master_key_command", required=True)
    rotate = master_key_commands.add_parser(
        "rotate",
        **explained(
            "re-wrap every data key with SIP_MASTER_KEY, opening the rest with "
            "SIP_MASTER_KEY_PREVIOUS (after every replica runs with both)",
            "SIP_MASTER_KEY=<new> SIP_MASTER_KEY_PREVIOUS=<old> sip master-key rotate",
        ),
    )
    add_storage_arguments(rotate)
    rotate.set_defaults(run=run_rotate)


def run_rotate(arguments: argparse.Namespace) -> int:
    key_dir = Path(os.environ.get("SIP_KEY_DIR") or arguments.data_dir)
    try:
        current = master_keys_from_env(key_dir).current
        for name in ("sip", "consent"):
            url = getattr(arguments, f"{name}_database_url")
            with open_service(name, arguments.data_dir, url) as service:
                keys = service.application.personal_data
                assert keys is not None
                count = keys.rotate_master_key(current)
            print(f"{name}: {count} key(s) re-wrapped with master key {current.key_id}")
    except MasterKeyProblem as problem:
        print(f"nothing re-wrapped in that service: {problem}", file=sys.stderr)
        return 1
    return 0
