"""`/readyz`: whether this replica can answer now, and if not, why (503 with one issue per
reason, so the balancer takes it out of rotation and the operator reads the cause).

Checked: the event store answers; the read model the API's searches use is within
`LAG_BOUND_EVENTS` of the log
after the probe has applied up to that many pending events itself (what the next query would
do anyway: read models catch up on query, so an idle replica's lag is not a fault, a backlog
the probe cannot work off is); and whatever the service adds (`app.state.readiness_checks`:
for the SIP service, the consent service and its feed). Events a read model passed over are
listed but keep it ready: every replica reads the same log, so answering 503 for them would
take the whole service out of rotation for one event, which is what passing it over avoids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.application import Application

from services.common.fhir_api import FhirResponse
from services.common.projection import Projection, failed_events

# A query catches up at most this many events before answering (a few hundred ms).
LAG_BOUND_EVENTS = 1000
ReadinessCheck = Callable[[], "str | None"]


def read_models(state: Any) -> list[Projection]:
    """The read models a replica needs to answer record systems and coordinators. The access
    log's index is not among them: every request writes an access record, and that index
    catches up only when an auditor queries it, so under load it is always thousands of
    records behind (a replica restarted under load stayed 503 for seconds on it alone, and
    as the index is shared, every replica would go out of rotation together). An auditor's
    query catches it up first, as any read model's does."""
    index = getattr(state, "index", None)
    return [index] if isinstance(index, Projection) else []


def lag_problem(model: Projection, head: int) -> str | None:
    if head - model.position() <= LAG_BOUND_EVENTS:
        return None
    model.catch_up(stop=model.position() + LAG_BOUND_EVENTS)
    behind = head - model.position()
    if behind <= LAG_BOUND_EVENTS:
        return None
    return (
        f"read model {model.name} is {behind} events behind the log (ready within "
        f"{LAG_BOUND_EVENTS}); each probe applies {LAG_BOUND_EVENTS} more"
    )


def not_ready(reasons: list[str]) -> FhirResponse:
    issues = [{"severity": "error", "code": "transient", "diagnostics": r} for r in reasons]
    return FhirResponse(
        {"resourceType": "OperationOutcome", "issue": issues},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def readiness(application: Application[Any], state: Any) -> FhirResponse:
    try:
        head = application.recorder.max_notification_id() or 0
        models = read_models(state)
        reasons = [reason for model in models if (reason := lag_problem(model, head))]
        index = getattr(state, "index", None)
        failed = failed_events(index.engine) if index is not None else []
    except Exception as error:  # any failure to reach the store means "not ready"
        return not_ready([f"event store unreachable: {type(error).__name__}"])
    checks: list[ReadinessCheck] = getattr(state, "readiness_checks", [])
    reasons += [reason for check in checks if (reason := check())]
    if reasons:
        return not_ready(reasons)
    if failed:
        return FhirResponse({"status": "ready", "failedEvents": [e.as_json() for e in failed]})
    return FhirResponse({"status": "ready"})
