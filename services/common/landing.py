"""What a newcomer finds at a service's root: `/` says what the service is and where to go
(the CapabilityStatement, the API documentation, the web client), and the FHIR base itself
(`/fhir`, `/fhir/`) leads to the CapabilityStatement, which is what a FHIR client reads there
first. No personal data, no token needed."""

from __future__ import annotations

import html
from importlib import metadata

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

router = APIRouter(include_in_schema=False)
VERSION = metadata.version("sip-case-service")


def links(request: Request) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {
        "service": request.app.title,
        "version": VERSION,
        "capabilityStatement": f"{base}/fhir/metadata",
        "documentation": f"{base}/docs",
        "openapi": f"{base}/openapi.json",
        "readiness": f"{base}/readyz",
        "webClient": "http://127.0.0.1:8002 (the embedded default; see deploy/README.md)",
    }


@router.get("/")
def landing(request: Request) -> Response:
    if "html" not in request.headers.get("accept", "") and "json" in request.headers.get(
        "accept", ""
    ):
        return JSONResponse(links(request))
    title = html.escape(f"{request.app.title} {VERSION}")
    base = html.escape(str(request.base_url).rstrip("/"))
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main>
<h1>{title}</h1>
<p>A FHIR R4 API. Every call but the CapabilityStatement and the health checks needs a
bearer token (on the embedded default: <code>sip token</code>, printed by <code>sip up</code>).</p>
<ul>
<li><a href="{base}/fhir/metadata">CapabilityStatement</a> ({base}/fhir/metadata)</li>
<li><a href="{base}/docs">API documentation</a> (OpenAPI)</li>
<li><a href="{base}/readyz">Readiness</a></li>
</ul>
<p>Care coordinators and the person use the web client, by default on port 8002.</p>
</main></body></html>"""
    )


@router.get("/fhir")
@router.get("/fhir/")
def fhir_base() -> RedirectResponse:
    return RedirectResponse("/fhir/metadata", status_code=303)
