"""`POST /fhir`: a Bundle of type `transaction` or `batch`, for an app that serves its
resources' routes under /fhir. Who calls is authenticated here; what each entry may do is
decided by the entry's own route."""

from __future__ import annotations

from typing import Annotated, Any

from eventsourcing.application import Application
from fastapi import Depends, FastAPI, Request

from contracts.actor import Actor
from services.common.auth.dependency import authenticate
from services.common.bundles.batch import run_batch
from services.common.bundles.entries import MAX_ENTRIES, bundle_entries, bundle_kind
from services.common.bundles.transaction import run_transaction, transaction_entries
from services.common.fhir_api import FhirResponse, fhir_base, fhir_body
from services.common.operations.definition import request_body

BUNDLE_SCHEMA = {
    "type": "object",
    "description": f"A FHIR Bundle of type transaction or batch, at most {MAX_ENTRIES} entries",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string", "enum": ["transaction", "batch"]},
        "entry": {"type": "array", "maxItems": MAX_ENTRIES, "items": {"type": "object"}},
    },
}


def add_bundle_routes(app: FastAPI, application: Application[Any]) -> None:
    """Transactions and batches over `application`, the store every write of the app goes to."""

    @app.post(
        "/fhir",
        name="transaction or batch",
        openapi_extra=request_body(BUNDLE_SCHEMA),
    )
    async def transaction_or_batch(
        request: Request,
        body: Annotated[dict[str, Any], Depends(fhir_body)],
        actor: Annotated[Actor, Depends(authenticate)],
    ) -> FhirResponse:
        kind = bundle_kind(body)
        entries = bundle_entries(body, fhir_base(request))
        if kind == "batch":
            return await run_batch(request, entries)
        return await run_transaction(request, application, transaction_entries(entries))
