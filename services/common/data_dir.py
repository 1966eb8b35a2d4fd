"""The data folder of the embedded default: `SIP_DATA_DIR`, or `.sip-data` where the system
is started. Apart from the storage code, so that what only needs the folder (the key
directory, the web client) does not import a database driver."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = ".sip-data"


def data_dir_from_env() -> Path:
    return Path(os.environ.get("SIP_DATA_DIR") or DEFAULT_DATA_DIR)
