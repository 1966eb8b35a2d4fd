"""What the user sees when something goes wrong outside a form: a service that is down, a
session that has ended, a refused page. Never a traceback, never the service's raw answer."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from services.web.fhir_client import Refused, ServiceUnavailable, SessionEnded
from services.web.pages import error_page
from services.web.session import CsrfRefused, NotSignedIn, sign_out
from services.web.texts import refusal_in_swedish

log = logging.getLogger("sip.web")
SERVICE_NAME = {"sip": "SIP-tjänsten (planerna)", "consent": "samtyckestjänsten"}


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _: NotSignedIn) -> Response:
        return RedirectResponse("/signin", status_code=303)

    @app.exception_handler(SessionEnded)
    async def session_ended(request: Request, _: SessionEnded) -> Response:
        sign_out(request)
        return RedirectResponse("/signin?ended=1", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _: CsrfRefused) -> Response:
        return error_page(
            request,
            403,
            "Formuläret kunde inte tas emot",
            [
                "Formuläret kom inte från den här sessionen (det kan vara för gammalt). "
                "Ladda om sidan och försök igen."
            ],
        )

    @app.exception_handler(ServiceUnavailable)
    async def service_down(request: Request, error: ServiceUnavailable) -> Response:
        return error_page(
            request,
            503,
            "Tjänsten svarar inte just nu",
            [
                f"{SERVICE_NAME[error.service].capitalize()} svarar inte. Inget av det du "
                "gjorde har sparats om du inte fått en bekräftelse.",
                "Försök igen om en stund. Om felet består, kontakta systemförvaltningen.",
            ],
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return error_page(
            request, error.status, refusal_heading(error.status), refusal_in_swedish(error)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return error_page(
            request,
            error.status_code,
            "Sidan finns inte" if error.status_code == 404 else "Det gick inte",
            ["Kontrollera adressen, eller gå tillbaka till arbetslistan."],
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        # The type and route only: a message may quote what the user typed.
        log.error("unexpected %s on %s (ref %s)", type(error).__name__, request.url.path, reference)
        return error_page(
            request,
            500,
            "Något gick fel",
            [
                "Sidan kunde inte visas. Inget har sparats om du inte fått en bekräftelse.",
                f"Ange referensen {reference} om du kontaktar systemförvaltningen.",
            ],
        )


def refusal_heading(status: int) -> str:
    return {403: "Ingen behörighet", 404: "Hittades inte"}.get(status, "Det gick inte")
