"""Signing keys live in one key directory given by configuration (`SIP_KEY_DIR`): created
readable by the service's user only, shared by every replica pointed at it, and rotated so
that checkpoints signed before the rotation still verify (deploy/README.md, "Keys")."""

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from services.cli import main as sip
from services.common.audit.checkpoints import CheckpointSigner
from services.common.auth.tokens import DEV_KEY_FILE, DevIssuer
from services.common.settings import ServiceSettings
from services.ops.keys import main as keys_command
from tests.conftest import running_system
from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer
from tests.servers import http_client, serve


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_made_in_the_key_directory_readable_by_the_service_user_only(tmp_path):
    keys = tmp_path / "keys"
    settings = ServiceSettings(data_dir=tmp_path / "data", key_dir=keys, dev_issuer=True)
    settings.token_verifier()
    CheckpointSigner(settings.keys_dir, "sip")
    assert mode(keys) == 0o700
    assert mode(keys / DEV_KEY_FILE) == 0o600
    assert mode(keys / "sip-checkpoint-key.json") == 0o600
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").glob("*.json"))


def test_replicas_started_at_once_on_one_key_directory_sign_with_one_key(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        signers = list(pool.map(lambda _: CheckpointSigner(tmp_path, "sip"), range(8)))
    kids = {key["kid"] for signer in signers for key in signer.public_keys()["keys"]}
    assert len(kids) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_two_sip_replicas_serve_the_same_checkpoint_key(backend, tmp_path):
    from services.sip.api import create_app as sip_app

    keys = tmp_path / "shared-keys"
    settings = replace(backend.settings("sip"), key_dir=keys)
    with serve(sip_app(settings)) as first, serve(sip_app(settings)) as second:
        token = DevIssuer(keys).mint(subject="a-1", role="auditor", organization="SE2321000032-1",
                                     scopes=("user/*.rs",))  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        signed = []
        for url in (first, second):
            with http_client(url, headers=headers) as client:
                signed.append(client.get("/events/checkpoint").json()["jws"])
                published = client.get("/events/checkpoint-keys").json()["keys"]
                assert [key["kid"] for key in published] == [published[0]["kid"]]
        kids = {json.loads(_header(jws))["kid"] for jws in signed}
        assert kids == {published[0]["kid"]}


def _header(jws):
    import base64

    segment = jws.split(".")[0]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_checkpoints_signed_before_a_rotation_still_verify_after_it(
    backend, tmp_path, monkeypatch, capsys
):
    keys = tmp_path / "keys"
    monkeypatch.setenv("SIP_KEY_DIR", str(keys))  # what `sip audit verify` reads offline
    with running_system(backend, key_dir=keys) as system:
        system.issuer = DevIssuer(keys)
        coordinator = system.as_caller()
        coordinator.sip.post(
            "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
        )
        auditor = system.as_caller("auditor")
        before = auditor.sip.get("/events/checkpoint").json()
        old_kid = json.loads(_header(before["jws"]))["kid"]

        assert keys_command(["rotate", "sip", "--key-dir", str(keys)]) == 0
        assert (keys / "retired" / f"sip-checkpoint-{old_kid}.json").exists()
        assert "d" not in json.loads(
            (keys / "retired" / f"sip-checkpoint-{old_kid}.json").read_text()
        )

        after = auditor.sip.get("/events/checkpoint").json()  # no restart: a new key at once
        new_kid = json.loads(_header(after["jws"]))["kid"]
        assert new_kid != old_kid
        published = {
            key["kid"] for key in auditor.sip.get("/events/checkpoint-keys").json()["keys"]
        }
        assert published == {old_kid, new_kid}

        storage = ["--data-dir", str(backend.data_dir)]
        if backend.database_urls["sip"]:
            storage += ["--sip-database-url", backend.database_urls["sip"]]
        over_http = ["--url", system.sip_url, "--token", system.token("auditor")]
        for checkpoint in (before, after):
            saved = tmp_path / "checkpoint.json"
            saved.write_text(json.dumps(checkpoint))
            verify = ["audit", "verify", "--service", "sip", "--checkpoint", str(saved)]
            assert sip([*verify, *storage]) == 0, capsys.readouterr()
            assert sip(["audit", "verify", "--checkpoint", str(saved), *over_http]) == 0
        assert "refused" not in capsys.readouterr().err


def test_a_checkpoint_signed_by_a_key_the_directory_never_held_is_refused(
    backend, tmp_path, monkeypatch, capsys
):
    keys = tmp_path / "keys"
    monkeypatch.setenv("SIP_KEY_DIR", str(keys))
    with running_system(backend, key_dir=keys) as system:
        system.issuer = DevIssuer(keys)
        genuine = system.as_caller("auditor").sip.get("/events/checkpoint").json()
    stranger = CheckpointSigner(tmp_path / "elsewhere", "sip")
    from services.common.audit.checkpoints import Checkpoint

    forged = Checkpoint("SIP plan service", genuine["position"], genuine["head"], genuine["time"])
    saved = tmp_path / "forged.json"
    saved.write_text(json.dumps({**genuine, "jws": stranger.sign(forged)}))
    storage = ["--data-dir", str(backend.data_dir)]
    if backend.database_urls["sip"]:
        storage += ["--sip-database-url", backend.database_urls["sip"]]
    assert sip(["audit", "verify", "--service", "sip", "--checkpoint", str(saved), *storage]) == 1
    assert "checkpoint refused" in capsys.readouterr().err
