"""A service's subscriptions put together: store, signer, sender, worker, for its app
factory to wire (`app.state.subscriptions`, the router, the worker's start and stop)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.common.audit.checkpoints import CheckpointSigner
from services.common.settings import ServiceSettings
from services.common.subscriptions.delivery import Sender
from services.common.subscriptions.judging import Published
from services.common.subscriptions.person_filter import index_person_filters
from services.common.subscriptions.routes import Subscriptions
from services.common.subscriptions.signing import NotificationSigner
from services.common.subscriptions.store import SubscriptionStore
from services.common.subscriptions.worker import DeliveryWorker


def subscription_service(
    published: Published, engine: Engine, settings: ServiceSettings, service: str
) -> Subscriptions:
    store = SubscriptionStore(engine)
    # Person filters stored in clear before the read models kept blind indexes (sip_0007).
    index_person_filters(store, getattr(published.access.application, "personal_data", None))
    signer = NotificationSigner(CheckpointSigner(settings.keys_dir, service))
    sender = Sender(signer, settings.subscription_endpoints)
    worker = DeliveryWorker(
        store, published, sender, timed_check_seconds=settings.subscription_check_seconds
    )
    return Subscriptions(store, published, worker, frozenset(settings.subscription_endpoints))
