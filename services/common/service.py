"""What every service's HTTP app has: FHIR errors, health and readiness, the metadata
endpoint, and the storage it was started on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from eventsourcing.application import Application
from fastapi import FastAPI, Request

from services.common.auth.tokens import TokenVerifier
from services.common.fhir_api import (
    FhirResponse,
    install_error_handlers,
    operation_outcome,
    unexpected_error_response,
)


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

    app = FastAPI(title=title, docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.token_verifier = token_verifier
    install_error_handlers(app)

    @app.middleware("http")
    async def contain_unexpected_errors(request: Request, call_next: Any) -> Any:
        # Without this, Starlette re-raises after answering and the server prints the
        # traceback, whose message may quote request data such as a personnummer.
        try:
            return await call_next(request)
        except Exception as error:
            return unexpected_error_response(error)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> FhirResponse:
        try:
            application.recorder.max_notification_id()
        except Exception as error:  # any failure to reach the store means "not ready"
            return FhirResponse(
                operation_outcome("transient", f"event store unreachable: {type(error).__name__}"),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return FhirResponse({"status": "ready"})

    @app.get("/fhir/metadata")
    def metadata(request: Request) -> FhirResponse:
        base = str(request.base_url).rstrip("/") + "/fhir"
        return FhirResponse(capability_statement(base))

    return app
