"""The SIP service's FHIR API: the app factory wires the routers (services/sip/routes) to
the plans, their index and the consent gate, kept in app.state."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from services.common.capability import (
    ACCESS_LOG_CAPABILITIES,
    capability_statement,
    subscription_capabilities,
)
from services.common.capability import resource_capability as capability
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.resource_routes import AggregateResource, ResourceAccess
from services.common.service import add_audit_routes, build_service_app, refusing_cleanly
from services.common.settings import ServiceSettings
from services.common.subscriptions import routes as subscription_routes
from services.common.subscriptions.judging import Published
from services.common.subscriptions.routes import Subscriptions
from services.common.subscriptions.service import subscription_service
from services.sip.application import SipPlans
from services.sip.consent_feed import ConsentFeedFollower
from services.sip.consent_gate import CachingConsentGate, HttpConsentGate
from services.sip.consent_health import ConsentReachability
from services.sip.discharge import admission, task_routes
from services.sip.discharge import routes as stay_routes
from services.sip.discharge.application import STAY_RESOURCE_TYPE, Stays, with_missed_deadlines
from services.sip.discharge.disclosure import StayDisclosure, redact_stay
from services.sip.discharge.fhir import stay_to_fhir
from services.sip.discharge.payment_report import payment_model_from_env
from services.sip.discharge.projections import StayIndex
from services.sip.discharge.stay import Stay
from services.sip.disclosure import PlanDisclosure
from services.sip.fhir_mapping import plan_to_fhir
from services.sip.meetings import routes as meeting_routes
from services.sip.messages import routes as message_routes
from services.sip.messages.disclosure import MESSAGE_RESOURCE_TYPE, MessageDisclosure
from services.sip.messages.fhir import message_to_fhir
from services.sip.messages.message import Message
from services.sip.messages.projections import MessageIndex
from services.sip.plan_views import PLAN_VIEWS, PlanViewResource
from services.sip.projections import PlanIndex
from services.sip.redaction import (
    custodians_of_entries,
    entry_kind_of_topic,
    redact,
    withheld_parts,
)
from services.sip.routes import careplan, operations, views
from services.sip.subscription_topics import TOPICS, OverdueFollowUps, occurrences

VERSIONS = ["read", "vread", "history-instance", "history-type"]
# The meeting invitations' searches, and the answer's create (services/sip/meetings).
MEETING_SEARCHES = {
    "Appointment": meeting_routes.APPOINTMENT_SEARCH,
    "AppointmentResponse": meeting_routes.RESPONSE_SEARCH,
}
MEETING_INTERACTIONS = {
    "Appointment": ["search-type"],
    "AppointmentResponse": ["create", "search-type"],
}
RESOURCES = [
    capability(
        "CarePlan",
        interactions=["create", *VERSIONS, "search-type"],
        search=careplan.SEARCH,
        conditional_create=True,
    ),
    *(
        capability(
            v.resource_type,
            interactions=[*VERSIONS, *MEETING_INTERACTIONS.get(v.resource_type, ())],
            search=MEETING_SEARCHES.get(v.resource_type),
        )
        for v in PLAN_VIEWS
    ),
    capability(
        STAY_RESOURCE_TYPE, interactions=[*VERSIONS, "search-type"], search=stay_routes.SEARCH
    ),
    capability(
        MESSAGE_RESOURCE_TYPE,
        interactions=["create", *VERSIONS, "search-type"],
        search=message_routes.SEARCH,
        conditional_create=True,
    ),
    capability(
        task_routes.TASK_RESOURCE_TYPE,
        interactions=[*VERSIONS, "search-type"],
        search=task_routes.SEARCH,
    ),
    *ACCESS_LOG_CAPABILITIES,
    *subscription_capabilities(
        [topic.canonical for topic in TOPICS], subscription_routes.SUBSCRIPTION_SEARCH
    ),
]


def sip_capability_statement(base: str) -> dict[str, Any]:
    return capability_statement(
        base,
        name="SipPlanService",
        title="SIP plan service",
        resources=RESOURCES,
        operations=operations.DEFINED_OPERATIONS,
    )


def plan_access(plans: SipPlans, consent_gate: CachingConsentGate) -> ResourceAccess:
    """The plans' one way out: their disclosure rule and redaction."""
    return ResourceAccess(
        plans, PlanDisclosure(consent_gate), redact, withheld_parts, custodians_of_entries
    )


def stay_access(plans: SipPlans, consent_gate: CachingConsentGate) -> ResourceAccess:
    """The stays' one way out: their disclosure rule and redaction (docs/disclosure.md)."""
    return ResourceAccess(
        plans,
        StayDisclosure(consent_gate),
        redact_stay,
        custodians_shown=lambda seen: (seen.custodian,),
        other=(STAY_RESOURCE_TYPE, Stay),
    )


def message_access(plans: SipPlans, consent_gate: CachingConsentGate) -> ResourceAccess:
    """The messages' one way out: their disclosure rule (a message is read whole or not)."""
    return ResourceAccess(
        plans, MessageDisclosure(consent_gate), other=(MESSAGE_RESOURCE_TYPE, Message)
    )


def sip_subscriptions(
    access: ResourceAccess,
    index: PlanIndex,
    engine: Engine,
    settings: ServiceSettings,
    stays: Stays | None = None,
) -> Subscriptions:
    """The plans' subscription topics, told through the plans' one way out (`access`). Given
    the stays' commands, the stays' legal clock records what it finds missed in the same
    timed round."""
    timed = OverdueFollowUps(index)
    published = Published(
        access,
        plan_to_fhir,
        TOPICS,
        occurrences,
        timed if stays is None else with_missed_deadlines(stays, timed),
        entry_kind_of_topic,
    )
    return subscription_service(published, engine, settings, "sip")


def consent_following(
    settings: ServiceSettings, plans: SipPlans, index: PlanIndex, engine: Engine
) -> tuple[HttpConsentGate, CachingConsentGate, ConsentFeedFollower]:
    """The consent service asked (each time, and through the permit cache) and followed (its
    feed, which keeps the cache and the plans' withdrawals current)."""
    tokens = settings.service_tokens()
    asked_each_time = HttpConsentGate(
        settings.consent_service_url, settings.consent_timeout_seconds, token_source=tokens
    )
    consent_gate = CachingConsentGate(asked_each_time)
    follower = ConsentFeedFollower(
        consent_url=settings.consent_service_url,
        token_source=tokens,
        plans=plans,
        index=index,
        engine=engine,
        cache=consent_gate,
    )
    return asked_each_time, consent_gate, follower


ROUTERS = (
    careplan.router, operations.router, views.router, subscription_routes.router,
    stay_routes.router, task_routes.router, meeting_routes.router, message_routes.router,
    admission.router,
)  # fmt: skip


def fhir_resources(
    plans: SipPlans, access: ResourceAccess, consent_gate: CachingConsentGate
) -> dict[str, Any]:
    """The resource types read, vread and `_history` serve, each with its access rule."""
    stays = stay_access(plans, consent_gate)
    return {
        "CarePlan": AggregateResource(access, plan_to_fhir),
        **{view.resource_type: PlanViewResource(access, view) for view in PLAN_VIEWS},
        STAY_RESOURCE_TYPE: AggregateResource(stays, stay_to_fhir),
        task_routes.TASK_RESOURCE_TYPE: PlanViewResource(stays, task_routes.TASK_VIEW),
        MESSAGE_RESOURCE_TYPE: AggregateResource(
            message_access(plans, consent_gate), message_to_fhir
        ),
    }


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env("SIP_DATABASE_URL").checked("sip")
    storage = storage_for("sip", settings.database_url, settings.data_dir)
    engine = read_model_engine(storage)
    keys = PersonalDataKeys(engine, settings.master_keys())
    plans = SipPlans(env=storage.event_store_env, personal_data=keys)
    index = PlanIndex(plans, engine)
    stay_index = StayIndex(plans, engine)
    message_index = MessageIndex(plans, engine)
    asked_each_time, consent_gate, follower = consent_following(settings, plans, index, engine)
    access = plan_access(plans, consent_gate)
    stays = Stays(plans, consent_gate, stay_index)
    subscriptions = sip_subscriptions(access, index, engine, settings, stays)
    app = build_service_app(
        title="SIP plan service",
        application=plans,
        capability_statement=sip_capability_statement,
        token_verifier=settings.token_verifier(),
        starters=[follower.start, subscriptions.worker.start],
        closers=[subscriptions.worker.stop, follower.stop, consent_gate.close, engine.dispose],
    )
    app.state.plans, app.state.index, app.state.settings = plans, index, settings
    app.state.stay_index, app.state.message_index = stay_index, message_index
    app.state.payment_model = payment_model_from_env()  # the county's figures: configuration
    app.state.subscriptions = subscriptions
    app.state.consent_feed, app.state.consent_gate_uncached = follower, asked_each_time
    consent_health = ConsentReachability(settings.consent_service_url, follower.reaching)
    app.state.readiness_checks = [consent_health.problem]
    app.state.resources = fhir_resources(plans, access, consent_gate)
    for router in ROUTERS:
        app.include_router(router)
    add_audit_routes(
        app,
        access,
        engine,
        checkpoint_key=(settings.keys_dir, "sip"),
        peer_extract_url=settings.consent_service_url,
        entry_kind=entry_kind_of_topic,
        other_disclosers={
            STAY_RESOURCE_TYPE: StayDisclosure(consent_gate),
            MESSAGE_RESOURCE_TYPE: MessageDisclosure(consent_gate),
        },
    )
    app.include_router(operations.definitions_router)
    return app


def create_served_app() -> FastAPI:
    """`create_app` for a server process: a refusal to start is one line (exit status 1)."""
    return refusing_cleanly(create_app)
