"""The follow-up-overdue subscription topic counts days by the Swedish calendar, as a plan's
dates are: a follow-up is overdue from the day after its date in Sweden."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from services.common.persistence import read_model_engine, storage_for
from services.sip import subscription_topics
from services.sip.application import SipPlans
from services.sip.projections import PlanIndex
from services.sip.subscription_topics import OverdueFollowUps
from tests.fhir_data import new_personnummer
from tests.test_poisoned_log import BY, NOW, start_plan


@pytest.fixture
def overdue(backend: Any) -> Iterator[tuple[SipPlans, OverdueFollowUps]]:
    """The SIP application and the topic's check over its plan index."""
    storage = storage_for("sip", backend.database_urls["sip"], backend.data_dir)
    plans, engine = SipPlans(env=storage.event_store_env), read_model_engine(storage)
    try:
        yield plans, OverdueFollowUps(PlanIndex(plans, engine))
    finally:
        engine.dispose()
        plans.close()


def test_a_follow_up_is_told_overdue_the_day_after_its_date_in_sweden(overdue, monkeypatch):
    """Between midnight in Sweden and midnight UTC the machine's date is still the day before:
    the follow-up-overdue topic counts by the Swedish calendar, as the plans' dates are."""
    plans, told_overdue = overdue
    plan = start_plan(plans, new_personnummer())
    due = date(2026, 1, 15)
    plans.change(plan.id, lambda p: p.set_follow_up(follow_up_date=due, at=NOW, by=BY))
    for swedish_date, told in ((due, False), (due + timedelta(days=1), True)):
        monkeypatch.setattr(subscription_topics, "swedish_today", lambda day=swedish_date: day)
        assert (str(plan.id) in [focus for _, focus, _ in told_overdue()]) is told, swedish_date
