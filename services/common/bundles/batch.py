"""A batch: each entry runs by itself, through the single request's own route, and is
answered by itself; one refused entry does not stop the others."""

from __future__ import annotations

from fastapi import Request

from services.common.bundles.dispatch import dispatch
from services.common.bundles.entries import BundleEntry
from services.common.bundles.references import refuse_references
from services.common.bundles.responses import refused_entry, response_bundle, response_entry
from services.common.fhir_api import FhirError, FhirResponse


async def run_batch(request: Request, entries: list[BundleEntry | FhirError]) -> FhirResponse:
    answered = []
    for entry in entries:
        try:
            if isinstance(entry, FhirError):
                raise entry
            refuse_references(entry)
        except FhirError as refused:
            answered.append(refused_entry(refused))
            continue
        answered.append(response_entry(await dispatch(request, entry)))
    return response_bundle("batch", answered)
