"""What the embedded default writes holds personal data and private keys: the data folder is
created readable by the service's user only (0700), and every file in it (the SQLite
databases with their -wal and -shm journals, the keys) 0600 (issue 16, "Files at rest")."""

import os
import stat
from contextlib import contextmanager

from tests.conftest import Backend, migrated, running_system
from tests.servers import http_client


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value):
    # The modes must not depend on the operator's umask: under 0 every file would be 0666.
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_fresh_data_folder_and_everything_in_it_are_readable_by_the_service_user_only(
    tmp_path,
):
    data_dir = tmp_path / "fresh" / "data"
    with umask(0o000):
        backend = migrated(Backend("sqlite", data_dir, {"sip": None, "consent": None}))
        with running_system(backend) as system:
            token = system.issuer.mint(
                subject="a-1", role="auditor", organization="SE2321000032-1", scopes=("user/*.rs",)
            )
            with http_client(system.sip_url, headers={"Authorization": f"Bearer {token}"}) as c:
                assert c.get("/events/checkpoint").status_code == 200
            written = sorted(data_dir.rglob("*"))
            names = {path.name for path in written}
            for expected in ("sip.sqlite", "sip.sqlite-wal", "sip.sqlite-shm", "consent.sqlite"):
                assert expected in names
            assert mode(data_dir) == 0o700
            for path in written:
                assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_a_database_file_another_process_made_open_to_others_is_left_but_warned_about(
    tmp_path, caplog
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "sip.sqlite").touch(mode=0o644)
    os.chmod(data_dir / "sip.sqlite", 0o644)
    migrated(Backend("sqlite", data_dir, {"sip": None, "consent": None}))
    assert mode(data_dir / "sip.sqlite") == 0o644
    assert "chmod 600" in caplog.text and "sip.sqlite" in caplog.text
    assert mode(data_dir / "consent.sqlite") == 0o600
