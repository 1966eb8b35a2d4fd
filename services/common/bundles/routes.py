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
from services.common.bundles.entries import MAX_ENTRIES, BundleEntry, bundle_entries, bundle_kind
from services.common.bundles.transaction import run_transaction
from services.common.fhir_api import FhirError, FhirResponse, fhir_base, fhir_body
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


def transaction_entries(entries: list[BundleEntry | FhirError]) -> list[BundleEntry]:
    """A transaction's entries, or the refusal of the first that is malformed or reads (a
    read would answer from what is committed, not from what the earlier entries hold)."""
    checked = []
    for entry in entries:
        if isinstance(entry, FhirError):
            raise entry
        if entry.method in ("GET", "HEAD") or entry.path.endswith("/_search"):
            raise FhirError(
                400,
                "not-supported",
                f"{entry.expression}.request.method: a transaction writes; "
                "read in a batch, or after the transaction",
                expression=f"{entry.expression}.request.method",
            )
        checked.append(entry)
    return checked


def add_bundle_routes(app: FastAPI, application: Application[Any]) -> None:
    """Transactions and batches over `application`, the store every write of the app goes to."""

    @app.post(
        "/fhir",
        name="transaction or batch",
        openapi_extra=request_body(BUNDLE_SCHEMA),
        tags=["system"],
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
