"""What every service's HTTP app has: FHIR errors, health and readiness, the metadata
endpoint, transactions and batches at the base, and the storage it was started on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import access_log_routes, landing
from services.common.access_log_views import AccessLogIndex
from services.common.audit import feed as event_feed
from services.common.audit.checkpoints import CheckpointSigner
from services.common.audit.feed_access import EntryKind, no_entry_kind
from services.common.auth import smart
from services.common.auth.tokens import TokenVerifier
from services.common.bundles.routes import add_bundle_routes
from services.common.capability import with_security
from services.common.configuration_check import ConfigurationError
from services.common.disclosure import Discloser
from services.common.fhir_api import (
    FhirResponse,
    install_error_handlers,
    install_request_checks,
    unexpected_error_response,
)
from services.common.http_conventions import FhirHttpConventions
from services.common.migrations.schema_version import SchemaNotCurrent
from services.common.openapi_fhir import declare_fhir_answers
from services.common.openapi_security import declare_bearer_security
from services.common.readiness import readiness
from services.common.request_ids import RequestIds
from services.common.resource_routes import ResourceAccess


class ContainUnexpectedErrors:
    """Answers an unexpected failure with a 500 OperationOutcome and swallows it.

    Without this, Starlette re-raises after answering and the server prints the traceback,
    whose message may quote request data such as a personnummer. A plain ASGI middleware, not
    Starlette's BaseHTTPMiddleware, which costs every request a task and a stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as error:
            response = unexpected_error_response(error, scope)  # never logs the message
            if not started:  # once an answer has begun, it cannot be replaced
                await response(scope, receive, send)


def refusing_cleanly(create_app: Callable[[], FastAPI]) -> FastAPI:
    """An app factory as a server process runs it (`uvicorn --factory`): a configuration or a
    schema the service cannot work with ends the process with its one-line reason and exit
    status 1, not a traceback, so an operator reads the reason in the journal."""
    try:
        return create_app()
    except (ConfigurationError, SchemaNotCurrent) as refusal:
        raise SystemExit(f"not started: {refusal}") from None


def build_service_app(
    *,
    title: str,
    application: Application[Any],
    capability_statement: Callable[[str], dict[str, Any]],
    token_verifier: TokenVerifier,
    starters: list[Callable[[], None]] | None = None,
    closers: list[Callable[[], None]] | None = None,
) -> FastAPI:
    """`starters` run when the server starts (background followers); `closers` release
    connections and pools when it shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for start in starters or []:
            start()
        yield
        for close in [*(closers or []), application.close]:
            close()

    # The API documentation at /docs with Swagger UI's assets from the installed package:
    # a CDN would leave it blank offline and send every reader's address elsewhere.
    app = FastAPIOffline(title=title, docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.token_verifier = token_verifier
    install_error_handlers(app)
    install_request_checks(app)

    app.add_middleware(FhirHttpConventions)  # inside the two below: its answers get an id
    app.add_middleware(ContainUnexpectedErrors)
    app.add_middleware(RequestIds)  # added last, so outermost: every answer carries the id

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> FhirResponse:
        """503 naming each reason this replica cannot answer now (services/common/readiness.py)."""
        return readiness(application, request.app.state)

    @app.get("/fhir/metadata")
    def metadata(request: Request) -> FhirResponse:
        base = str(request.base_url).rstrip("/") + "/fhir"
        security = smart.rest_security(smart.endpoints_of_app(request))
        return FhirResponse(with_security(capability_statement(base), security))

    app.include_router(landing.router)
    app.include_router(smart.router)
    add_bundle_routes(app, application)  # POST /fhir: each entry runs through its own route
    declare_fhir_answers(app)
    declare_bearer_security(app, open_paths={"/fhir/metadata", *smart.PATHS})
    return app


def add_audit_routes(
    app: FastAPI,
    access: ResourceAccess,
    engine: Engine,
    *,
    checkpoint_key: tuple[Path, str],
    peer_extract_url: str | None,
    entry_kind: EntryKind = no_entry_kind,
    other_disclosers: Mapping[str, Discloser] | None = None,
) -> None:
    """What auditors read on every service: the event feed, each caller's share of it, with
    its hash chain and signed checkpoints (`/events`), and the access log as AuditEvent,
    Provenance and the person's extract. Who reads the whole log comes from the app's
    settings (`app.state.settings`, set before this is called)."""
    application = access.application
    settings = getattr(app.state, "settings", None)
    app.state.event_feed = event_feed.EventFeed(
        application,
        engine,
        CheckpointSigner(*checkpoint_key),
        access.disclose,
        whole_log_readers=settings.whole_log_reader_subjects if settings else frozenset(),
        entry_kind=entry_kind,
        other_disclosers=other_disclosers,
    )
    app.state.access_log_reading = access_log_routes.AccessLogReading(
        access,
        AccessLogIndex(application, engine),
        observer=app.title,
        peer_extract_url=peer_extract_url,
    )
    app.include_router(event_feed.router)
    app.include_router(access_log_routes.router, prefix="/fhir")
