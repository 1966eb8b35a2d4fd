"""The data folder of the embedded default: `SIP_DATA_DIR`, or `.sip-data` where the system
is started. Apart from the storage code, so that what only needs the folder (the key
directory, the web client) does not import a database driver.

What the folder holds is personal data and private keys, so what this creates is readable by
the service's user only: folders 0700, files 0600. The modes are given at creation (not by a
process-wide umask, which would change what every other library in the process writes).
SQLite makes a database's `-wal` and `-shm` files with the database file's own mode, so a
database file created 0600 keeps its journal 0600 too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

DEFAULT_DATA_DIR = ".sip-data"
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600

log = logging.getLogger("sip.data")
_warned: set[Path] = set()  # a file opened at every start warns once per process


def data_dir_from_env() -> Path:
    return Path(os.environ.get("SIP_DATA_DIR") or DEFAULT_DATA_DIR)


def make_private_directory(folder: Path) -> None:
    """Creates `folder` (and missing parents) 0700; a folder that exists is left as it is: it
    may be one the operator chose and shares on purpose."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=PRIVATE_DIRECTORY, exist_ok=True)


def private_file(path: Path) -> Path:
    """`path`, created empty and 0600 when missing (before a database driver would create it
    with the umask's mode, 0644 by default); an existing file open to others is left but
    warned about once, as an operator may have loosened it for a reason (a backup user)."""
    make_private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    except FileExistsError:
        warn_if_others_may_read(path)
    return path


def warn_if_others_may_read(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and path not in _warned:
        _warned.add(path)
        log.warning("%s may be read by others (mode %o): chmod 600 it", path, mode & 0o777)
