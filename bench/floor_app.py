"""The least an HTTP write can cost on this stack: a bare FastAPI app, served by uvicorn as the
services are, whose two routes do the bare library's work (`bench/http_vs_library.py`'s
library side: start a plan, or read one and record a need) and nothing else: no token, no
access check, no access log, no chain, no FHIR parsing. `http_vs_library.py` runs it as a
third side, so its ratio to the library is the ceiling any amount of work on the services'
own code could reach with FastAPI and uvicorn.

    uvicorn floor_app:create_app --factory --app-dir bench   (the library's env variables set)
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Annotated

from eventsourcing.application import Application
from fastapi import Body, FastAPI

from services.sip.domain import Plan

PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"
ACTOR = {"subject": "bench", "role": "coordinator", "organization": "SE2321000032-R1", "unit": None}


def create_app() -> FastAPI:
    library = Application(env={k: v for k, v in os.environ.items() if k.isupper()})
    app = FastAPI()

    # Plain `def` routes, as the services' are: FastAPI runs them in its thread pool.
    @app.post("/plans", status_code=201)
    def start(body: Annotated[dict, Body()]) -> dict:
        plan = Plan(
            subject={"system": PERSONNUMMER, "value": body["personnummer"]},
            starting_organization=ACTOR["organization"], starting_organization_kind="region",
            initiative="region", title="SIP", description=None,
            started_at=datetime.now(UTC), started_by=ACTOR,
        )  # fmt: skip
        library.save(plan)
        return {"id": str(plan.id)}

    @app.post("/plans/{plan_id}/need")
    def record_need(plan_id: uuid.UUID, body: Annotated[dict, Body()]) -> dict:
        plan = library.repository.get(plan_id)
        plan.record_need(text=body["text"], wishes=None, at=datetime.now(UTC), by=ACTOR)
        library.save(plan)
        return {"version": plan.version}

    return app
