"""What a page gets through `Depends`: the signed-in user, and a FHIR client acting with that
user's token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.web.erased_texts import with_erasures_shown
from services.web.fhir_client import FhirClient
from services.web.session import SignedInUser, signed_in_user


def current_user(request: Request) -> SignedInUser:
    user = signed_in_user(request)
    request.state.user = user  # for the page's header
    return user


User = Annotated[SignedInUser, Depends(current_user)]


def fhir_client(request: Request, user: User) -> FhirClient:
    settings = request.app.state.settings
    return FhirClient(
        request.app.state.http,
        {"sip": settings.sip_url, "consent": settings.consent_url},
        user.token,
        request.headers.get("X-Request-ID"),
        shown=with_erasures_shown,
    )


Fhir = Annotated[FhirClient, Depends(fhir_client)]
