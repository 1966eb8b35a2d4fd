"""The consent service's FHIR API: the app factory wires the routers
(services/consent/routes) to the registry and its index, kept in app.state."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.common.capability import (
    ACCESS_LOG_CAPABILITIES,
    capability_statement,
    resource_capability,
)
from services.common.persistence import read_model_engine, storage_for
from services.common.personal_data.keys import PersonalDataKeys
from services.common.resource_routes import AggregateResource, ResourceAccess
from services.common.service import add_audit_routes, build_service_app, refusing_cleanly
from services.common.settings import ServiceSettings
from services.consent.application import ConsentRegistry
from services.consent.disclosure import disclose_consent
from services.consent.fhir_mapping import consent_to_fhir
from services.consent.projections import ConsentIndex
from services.consent.routes import consent, operations

RESOURCES = [
    resource_capability(
        "Consent",
        interactions=["create", "read", "vread", "history-instance", "history-type", "search-type"],
        search=consent.SEARCH,
        conditional_create=True,
    ),
    *ACCESS_LOG_CAPABILITIES,
]


def consent_capability_statement(base: str) -> dict[str, Any]:
    return capability_statement(
        base,
        name="SipConsentService",
        title="SIP consent service",
        resources=RESOURCES,
        operations=operations.DEFINED_OPERATIONS,
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env("CONSENT_DATABASE_URL").checked("consent")
    storage = storage_for("consent", settings.database_url, settings.data_dir)
    engine = read_model_engine(storage)
    keys = PersonalDataKeys(engine, settings.master_keys())
    registry = ConsentRegistry(env=storage.event_store_env, personal_data=keys)
    access = ResourceAccess(registry, disclose_consent)
    app = build_service_app(
        title="SIP consent service",
        application=registry,
        capability_statement=consent_capability_statement,
        token_verifier=settings.token_verifier(),
        closers=[engine.dispose],
    )
    app.state.registry, app.state.settings = registry, settings
    app.state.index = ConsentIndex(registry, engine)
    app.state.resources = {"Consent": AggregateResource(access, consent_to_fhir)}
    for router in (consent.router, operations.router):
        app.include_router(router)
    add_audit_routes(
        app, access, engine, checkpoint_key=(settings.keys_dir, "consent"), peer_extract_url=None
    )
    app.include_router(operations.definitions_router)
    return app


def create_served_app() -> FastAPI:
    """`create_app` for a server process: a refusal to start is one line (exit status 1)."""
    return refusing_cleanly(create_app)
