"""`sip retention run` while a service is running (issue 16): two application instances over
one database, one playing the running replica, its keys and aggregates remembered from before
the erasure, the other the run. The interleavings are driven one step at a time, so what a
race would do one run in several is done every time."""

from __future__ import annotations

from services.cli import main as sip
from services.ops import retention
from tests.conftest import running_system
from tests.test_retention import (  # noqa: F401 (the fixture keeps the access log 50 years)
    access_log_kept_long,
    due_date_of,
    opened,
    people,
    rules,
    where,
)


def _warm_behind(service):
    """The replica's read models, caught up to just before their newest event: its keys are
    remembered, and it has an event of its own to apply when next asked."""
    recorder = service.application.recorder
    notifications = recorder.select_notifications(start=0, limit=100_000)
    serving = service.projections()
    for projection in serving:
        own = [n.id for n in notifications if n.topic.startswith(projection._topic_prefix)]
        projection.catch_up(stop=own[-1] - 1 if own else None)
    return serving


def _plan_ids(projection):
    with projection.engine.connect() as connection:
        return {str(row[0]) for row in connection.execute(projection.newest_first())}


def test_a_replica_catching_up_inside_the_runs_rebuild_puts_nothing_erased_back(backend):
    with running_system(backend) as system:
        (erased_plan, number, _), (kept_plan, _, _) = people(system, 2)
    on, _ = due_date_of(backend, number)
    with opened(backend, "sip") as replica, opened(backend, "sip") as run_service:
        serving = {p.name: p for p in _warm_behind(replica)}
        built = run_service.projections

        def rebuilt_with_the_replica_first():
            # The run's rebuild has emptied the read model and let go of the write lock; the
            # replica's catch-up takes the tracking row first and applies from position zero.
            projections = built()
            for projection in projections:
                theirs = projection.catch_up

                def replica_first(stop=None, theirs=theirs, name=projection.name):
                    serving[name].catch_up()
                    return theirs(stop)

                projection.catch_up = replica_first
            return projections

        run_service.projections = rebuilt_with_the_replica_first
        lines = retention.run(run_service, rules(), on)
        assert any("read models rebuilt" in line for line in lines), lines
        plans = next(p for p in serving.values() if hasattr(p, "newest_first"))
        found = _plan_ids(plans)
        assert erased_plan not in found
        assert kept_plan in found
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0


def test_a_replica_catching_up_after_the_run_opens_nothing_with_a_remembered_key(backend):
    with running_system(backend) as system:
        (erased_plan, number, _), (kept_plan, _, _) = people(system, 2)
    on, _ = due_date_of(backend, number)
    with opened(backend, "sip") as replica, opened(backend, "sip") as run_service:
        serving = _warm_behind(replica)
        retention.run(run_service, rules(), on)
        for projection in serving:  # its next catch-up, keys still remembered
            projection.catch_up()
        erased = {
            row.key_id
            for row in run_service.application.personal_data.person_keys()
            if row.erased_at
        }
        assert erased, "the run erased the person's keys"
        assert not erased & set(replica.application.personal_data._kept), "all forgotten"
        plans = next(p for p in serving if hasattr(p, "newest_first"))
        assert erased_plan not in _plan_ids(plans)
        assert kept_plan in _plan_ids(plans)
    assert sip(["projections", "rebuild", "--check", *where(backend)]) == 0
