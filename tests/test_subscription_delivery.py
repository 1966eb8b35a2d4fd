"""The sender's own rules, below the worker: the endpoint rule holds for the addresses a
delivery connects to, not only for those the name had when it was checked (DNS rebinding);
a receiver that refuses or is gone is an error to retry, not an exception."""

from __future__ import annotations

from dataclasses import fields

import pytest

from services.common.audit.checkpoints import CheckpointSigner
from services.common.subscriptions import delivery
from services.common.subscriptions.delivery import Sender
from services.common.subscriptions.notification import HEARTBEAT, notification_bundle
from services.common.subscriptions.signing import NotificationSigner
from services.common.subscriptions.store import SubscriptionRow
from tests.record_system import RecordSystem


def row(endpoint: str, id: str = "s1") -> SubscriptionRow:
    values = {field.name: None for field in fields(SubscriptionRow)}
    values.update(
        id=id, owner="o", owner_subject="rs", topic="plan-changed", source="events",
        endpoint=endpoint, payload="id-only", timeout_seconds=5, reason="test",
        status="active", cursor=0, events_count=0, delivered_through=0, attempts=0,
        version=1, last_updated="2026-01-01T00:00:00Z",
    )  # fmt: skip
    return SubscriptionRow(**values)


def heartbeat(subscription: SubscriptionRow) -> tuple[SubscriptionRow, dict]:
    return subscription, notification_bundle(subscription, HEARTBEAT, [])


@pytest.fixture
def receiver():
    record_system = RecordSystem()
    yield record_system
    record_system.close()


@pytest.fixture
def signer(tmp_path):
    return NotificationSigner(CheckpointSigner(tmp_path, "sip"))


def test_a_name_that_points_inside_when_connected_to_is_refused(receiver, signer, monkeypatch):
    """The name passed the check (it pointed outside then) and resolves to loopback when the
    connection is made: nothing is sent there."""
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    monkeypatch.setattr(delivery, "check_endpoint", lambda endpoint, allowances: None)
    sender = Sender(signer, allowances=())
    try:
        error = sender.post_all([heartbeat(row(by_name))])["s1"]
    finally:
        sender.close()
    assert error is not None and "endpoint refused" in error, error
    assert not receiver.received


def test_the_same_name_is_delivered_to_where_the_rule_allows_it(receiver, signer):
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    sender = Sender(signer, allowances=("loopback",))
    try:
        results = sender.post_all([heartbeat(row(by_name, f"s{n}")) for n in range(20)])
    finally:
        sender.close()
    assert results == {f"s{n}": None for n in range(20)}
    assert len(receiver.received) == 20


def test_an_endpoint_refused_before_posting_says_why(signer):
    sender = Sender(signer, allowances=())
    try:
        error = sender.post_all([heartbeat(row("http://10.0.0.1/notify"))])["s1"]
    finally:
        sender.close()
    assert error is not None and error.startswith("endpoint refused:"), error


def test_a_receiver_that_is_down_is_an_error_not_an_exception(receiver, signer):
    receiver.down = True
    url = receiver.url
    sender = Sender(signer, allowances=("loopback",))
    try:
        assert sender.post_all([heartbeat(row(url))]) == {"s1": "the endpoint answered HTTP 503"}
        receiver.close()  # and then not there at all
        error = sender.post_all([heartbeat(row(url))])["s1"]
    finally:
        sender.close()
    assert error is not None and "posting to the endpoint" in error, error
