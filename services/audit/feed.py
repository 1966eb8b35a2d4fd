"""`GET /events`: every stored event in commit order, with its chain hashes, paged by a
cursor, so a whole history can be replayed from position 0; and `GET /events/checkpoint`,
the signed head of the log."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from sqlalchemy import text
from sqlalchemy.engine import Engine

from contracts.actor import Actor
from services.audit.checkpoints import Checkpoint, CheckpointSigner
from services.common.application import VersionedApplication
from services.common.auth.dependency import authorize
from services.common.fhir_time import fhir_instant, now

# The raw log holds every organisation's data: only a scope naming it, never `*`, opens it.
EventReader = Annotated[Actor, Depends(authorize("Event", "r", explicit_scope=True))]


def add_event_feed(
    app: FastAPI, application: VersionedApplication, engine: Engine, signer: CheckpointSigner
) -> None:
    router = APIRouter(prefix="/events", tags=["audit"])
    chain_table = application.recorder.chain_table  # type: ignore[attr-defined]

    def chain_rows(first: int, last: int) -> dict[int, tuple[str, str]]:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    f"SELECT notification_id, stream_hash, log_hash FROM {chain_table} "
                    "WHERE notification_id BETWEEN :first AND :last"
                ),
                {"first": first, "last": last},
            )
            return {row[0]: (row[1], row[2]) for row in rows}

    @router.get("")
    def events(
        actor: EventReader,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        notifications = application.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        links = chain_rows(notifications[0].id, notifications[-1].id) if notifications else {}
        items = []
        for notification in notifications:
            payload = json.loads(notification.state)
            stream_hash, log_hash = links.get(notification.id, (None, None))
            items.append(
                {
                    "position": notification.id,
                    "aggregate_id": str(notification.originator_id),
                    "version": notification.originator_version,
                    "type": notification.topic,
                    "time": _transcoded(payload.get("timestamp")),
                    "author": _author(payload),
                    "payload": payload,
                    "stored_state": base64.b64encode(notification.state).decode(),
                    "stream_hash": stream_hash,
                    "log_hash": log_hash,
                }
            )
        return {
            "events": items,
            "next": items[-1]["position"] if items else after,
            "head": application.recorder.max_notification_id() or 0,
        }

    @router.get("/checkpoint")
    def checkpoint(actor: EventReader) -> dict[str, Any]:
        position = application.recorder.max_notification_id() or 0
        head = chain_rows(position, position).get(position, (None, "0" * 64))[1]
        signed = Checkpoint(app.title, position, head, fhir_instant(now()))
        return {**signed.as_dict(), "jws": signer.sign(signed)}

    @router.get("/checkpoint-keys")
    def checkpoint_keys() -> dict[str, Any]:
        return signer.public_keys()

    app.include_router(router)


def _author(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Whoever the event names as its author, whatever the event calls the field."""
    for value in payload.values():
        if isinstance(value, dict) and {"subject", "role"} <= set(value):
            return value
    return None


def _transcoded(value: Any) -> Any:
    """A value as the library's JSON transcoder wrote it ({"_type_": ..., "_data_": ...})."""
    return value.get("_data_") if isinstance(value, dict) and "_data_" in value else value
