"""`/readyz` tells the truth: 503 naming the reason when this replica cannot answer (the
consent service down for the SIP service, a read model too far behind), 200 again once it
can; and a failure that repeats every poll is warned about once, then every 30 s."""

import logging
import re
from dataclasses import replace

from sqlalchemy import delete

from services.common import readiness
from services.common.projection import projection_tracking
from services.common.repeated_failure import RepeatedFailure
from tests.conftest import running_system
from tests.fhir_data import FHIR_JSON, care_plan, new_personnummer
from tests.servers import free_port, http_client, serve, wait_until


def reasons(answer):
    return " | ".join(issue["diagnostics"] for issue in answer.json()["issue"])


def test_sip_is_not_ready_while_the_consent_service_is_down_and_ready_once_it_is_back(
    backend, caplog
):
    from services.consent.api import create_app as consent_app
    from services.sip.api import create_app as sip_app

    port = free_port()
    consent_url = f"http://127.0.0.1:{port}"
    sip = sip_app(backend.settings("sip", consent_service_url=consent_url))
    with serve(sip) as sip_url, http_client(sip_url) as probe:
        with serve(consent_app(backend.settings("consent")), port=port):
            reaching = sip.state.consent_feed.reaching
            assert wait_until(lambda: reaching.last_success is not None, 5)
            # Ready once the consent service answers its probe (under load, a first probe
            # may time out while that service is still starting).
            assert wait_until(lambda: probe.get("/readyz").status_code == 200, 5)
            assert probe.get("/readyz").json() == {"status": "ready"}
            caplog.clear()  # the consent service stops now
        with caplog.at_level(logging.WARNING, logger="sip.consent_feed"):
            assert wait_until(lambda: probe.get("/readyz").status_code == 503, 5)
            down = probe.get("/readyz")
            assert down.status_code == 503 and down.headers["Retry-After"]
            assert f"consent service unreachable at {consent_url}" in reasons(down)
            assert down.json()["resourceType"] == "OperationOutcome"
            assert wait_until(lambda: "consent feed stalled" in reasons(probe.get("/readyz")), 8)
            # About 30 failed polls by now (five a second): one warning.
            warned = [r for r in caplog.records if r.name == "sip.consent_feed"]
            assert len(warned) == 1 and "ConnectError" in warned[0].getMessage()
            with serve(consent_app(backend.settings("consent")), port=port):
                assert wait_until(lambda: probe.get("/readyz").status_code == 200, 5)
                recovered = [
                    r.getMessage() for r in caplog.records if "recovered" in r.getMessage()
                ]
                assert len(recovered) == 1


def test_a_read_model_far_behind_the_log_is_not_ready_until_the_probes_work_it_off(
    backend, monkeypatch
):
    monkeypatch.setattr(readiness, "LAG_BOUND_EVENTS", 3)
    with running_system(backend) as system:
        for _ in range(4):
            posted = system.sip.post(
                "/fhir/CarePlan", json=care_plan(new_personnummer()), headers=FHIR_JSON
            )
            assert posted.status_code == 201, posted.text
        index = system.sip_app.state.index
        index.catch_up()  # this process remembers the position it applied up to
        # A replica whose read model starts over (restored, or a new version of it): empty,
        # at position zero, with the log ahead of it; what this process remembers is stale.
        with index.engine.begin() as connection:
            index.metadata.drop_all(connection)
            index.metadata.create_all(connection)
            connection.execute(
                delete(projection_tracking).where(projection_tracking.c.name == index.name)
            )
        behind = system.sip.get("/readyz")
        assert behind.status_code == 503
        assert "read model plan_index is" in reasons(behind) and "events behind" in reasons(behind)
        ready = wait_until(lambda: system.sip.get("/readyz").status_code == 200, 10, 0.05)
        assert ready, reasons(system.sip.get("/readyz"))  # what kept it out, if anything
        found = system.sip.get("/fhir/CarePlan", params={"_count": 50})
        assert found.json()["total"] >= 4


def test_the_consent_service_is_ready_on_its_own(backend):
    from services.consent.api import create_app as consent_app

    with serve(consent_app(replace(backend.settings("consent")))) as url, http_client(url) as c:
        assert c.get("/readyz").json() == {"status": "ready"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_repeated_failure_is_warned_once_then_every_30_seconds_with_a_count(caplog):
    clock = Clock()
    failure = RepeatedFailure(logging.getLogger("test.feed"), "consent feed", clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.feed"):
        for _ in range(325):  # 65 s of polls five times a second
            failure.failed(ConnectionError())
            clock.now += 0.2
        messages = [record.getMessage() for record in caplog.records]
        assert len(messages) == 3, messages
        assert messages[0] == "consent feed: ConnectionError"
        assert (
            re.search(r"(149|150) more failures", messages[1]) and "failing for 30 s" in messages[1]
        )
        assert failure.seconds_since_success() > 60
        failure.succeeded()
        assert caplog.records[-1].getMessage() == "consent feed: recovered after 65 s"
        assert failure.seconds_since_success() == 0
        failure.succeeded()
        failure.failed(ConnectionError())  # a new outage is warned at once
        assert len(caplog.records) == 5


def test_two_replicas_racing_to_note_a_withdrawal_is_no_warning(system, monkeypatch, caplog):
    """The replica that notes a withdrawal second meets the first one's write: it reads the
    page again at once and says nothing; a real failure is still a warning."""
    from eventsourcing.persistence import IntegrityError
    from sqlalchemy.exc import OperationalError

    follower = system.sip_app.state.consent_feed
    before = follower.reaching.last_error

    def raises(error):
        def follow_once(page=500):
            raise error

        return follow_once

    monkeypatch.setattr(follower, "follow_once", raises(IntegrityError("duplicate version")))
    with caplog.at_level("WARNING", logger="sip.consent_feed"):
        assert follower.poll() is False
    assert caplog.records == [] and follower.reaching.last_error == before

    monkeypatch.setattr(follower, "follow_once", raises(OperationalError("x", {}, Exception())))
    with caplog.at_level("WARNING", logger="sip.consent_feed"):
        assert follower.poll() is True
    assert follower.reaching.last_error == "OperationalError"
    monkeypatch.undo()
    assert follower.poll() is True  # and it recovers
