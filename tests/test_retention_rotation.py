"""Rotating the master key of personal data with the services running (issue 16,
docs/decisions/0007): replicas restarted onto the new key with the old one as previous,
`sip master-key rotate`, then the old key dropped, while a coordinator keeps writing. Every
acknowledged write reads back afterwards, under the new key alone."""

import threading
from contextlib import ExitStack

import pytest
from sqlalchemy import text

from services.cli import main as sip
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.master_key import MasterKey
from tests.conftest import new_backend, running_system
from tests.fhir_data import active_plan, run


class Writer(threading.Thread):
    """Records needs on a plan, one after another, through whichever service `target` holds;
    remembers those acknowledged."""

    def __init__(self, plan_id):
        super().__init__(daemon=True)
        self.plan_id, self.target, self.acknowledged, self.failures = plan_id, None, [], []
        self.stopping = threading.Event()

    def run(self):
        number = 0
        while not self.stopping.is_set():
            number += 1
            need = f"Behov nummer {number} under rotationen"
            try:
                answer = run(self.target, self.plan_id, "record-need", text=need)
            except Exception as error:  # a server stopping mid-request: not acknowledged
                self.failures.append(repr(error))
                continue
            if answer.status_code < 300:
                self.acknowledged.append(need)
            else:
                self.failures.append(answer.status_code)


def master_key_ids(backend):
    ids = {}
    for service in ("sip", "consent"):
        engine = read_model_engine(storage_for(service, None, backend.data_dir))
        with engine.connect() as connection:
            ids[service] = {
                row[0]
                for row in connection.execute(
                    text(
                        "SELECT master_key_id FROM personal_data_keys WHERE wrapped_key IS NOT NULL"
                    )
                )
            }
        engine.dispose()
    return ids


@pytest.fixture
def sqlite_backend(request, tmp_path):
    with new_backend("sqlite", tmp_path / "data", request) as backend:
        yield backend


def test_rotating_the_master_key_while_the_services_run_loses_nothing(sqlite_backend, monkeypatch):
    backend = sqlite_backend
    old, new = MasterKey.generate(), MasterKey.generate()
    with ExitStack() as old_replicas, ExitStack() as new_replicas:
        before = old_replicas.enter_context(running_system(backend, master_key=old.as_text()))
        plan_id, personnummer = active_plan(before)
        writer = Writer(plan_id)
        writer.target = before.sip
        writer.start()
        # 1. The replicas restart onto the new key, the old one as previous.
        during = new_replicas.enter_context(
            running_system(backend, master_key=new.as_text(), master_key_previous=(old.as_text(),))
        )
        writer.target = during.sip
        old_replicas.close()
        made_during = active_plan(during)  # a new person: keys wrapped with the new key
        # 2. The rotation, with the same two settings, while the writes go on.
        monkeypatch.setenv("SIP_MASTER_KEY", new.as_text())
        monkeypatch.setenv("SIP_MASTER_KEY_PREVIOUS", old.as_text())
        written_before = len(writer.acknowledged)
        assert sip(["master-key", "rotate", "--data-dir", str(backend.data_dir)]) == 0
        assert sip(["master-key", "rotate", "--data-dir", str(backend.data_dir)]) == 0  # again
        while len(writer.acknowledged) < written_before + 5:  # writes go on after it
            writer.join(0.1)
        writer.stopping.set()
        writer.join()
    assert master_key_ids(backend) == {"sip": {new.key_id}, "consent": {new.key_id}}

    # 3. The old key dropped: everything acknowledged reads back under the new key alone.
    monkeypatch.delenv("SIP_MASTER_KEY_PREVIOUS")
    with running_system(backend, master_key=new.as_text()) as after:
        plan = after.sip.get(f"/fhir/CarePlan/{plan_id}")
        assert plan.status_code == 200
        assert plan.json()["subject"]["identifier"]["value"] == personnummer
        missing = [need for need in writer.acknowledged if need not in plan.text]
        assert missing == [] and writer.acknowledged
        other = after.sip.get(f"/fhir/CarePlan/{made_during[0]}")
        assert other.json()["subject"]["identifier"]["value"] == made_during[1]
    assert sip(["audit", "verify", "--data-dir", str(backend.data_dir)]) == 0
