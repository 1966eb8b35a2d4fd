"""The delivery worker costs a write nothing while no subscription is on (issue 15): a commit
does not wake it, and its tick asks one question of the database; once a subscription is
on, commits wake it again and a tick looks at the log."""

from __future__ import annotations

from types import SimpleNamespace

from services.common.persistence import read_model_engine, storage_for
from services.common.subscriptions.store import SubscriptionStore
from services.common.subscriptions.worker import DeliveryWorker
from services.sip.application import SipPlans
from tests.conftest import Backend, migrated
from tests.fhir_data import new_personnummer
from tests.test_personal_data_in_write import start
from tests.test_subscription_delivery import row


class CountingStore(SubscriptionStore):
    def __init__(self, engine):
        super().__init__(engine)
        self.asked: list[str] = []

    def any_live(self):
        self.asked.append("any_live")
        return super().any_live()

    def has_work(self, *args):
        self.asked.append("has_work")
        return super().has_work(*args)

    def timed_head(self):
        self.asked.append("timed_head")
        return super().timed_head()


def test_no_subscription_no_wake_and_one_query_then_a_subscription_wakes_it(tmp_path):
    backend = migrated(Backend("sqlite", tmp_path / "data", {"sip": None, "consent": None}))
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    engine = read_model_engine(storage)
    app = SipPlans(env=storage.event_store_env)
    store = CountingStore(engine)
    published = SimpleNamespace(access=SimpleNamespace(application=app), timed_check=None)
    worker = DeliveryWorker(store, published, sender=None)  # never started: ticks by hand
    try:
        assert worker.tick() is False
        assert store.asked == ["any_live"]
        worker._woken.clear()
        start(app, new_personnummer())
        assert not worker._woken.is_set()  # the commit was no one's concern

        # The owner's subscription, active, and told everything there is so far.
        store.add(row("https://receiver.example/hook").with_(cursor=10**9))
        store.asked.clear()
        worker.tick()  # found within the interval; it now looks at the log
        assert store.asked == ["any_live", "timed_head", "has_work"]
        start(app, new_personnummer())
        assert worker._woken.is_set()  # this process's writes are delivered at once again
    finally:
        app.close()
        engine.dispose()
