"""Each request's id (`X-Request-ID`): taken from the caller when it is a plain token, made up
otherwise, echoed on every answer, and quoted in a 500 and its log line so that the two can
be matched."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller's id may be: it is echoed in a header and written to the log, so nothing that
# could split a header or a log line, and short.
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_STATE_KEY = "request_id"


class RequestIds:
    """A plain ASGI middleware (not BaseHTTPMiddleware, which costs each request a task and a
    stream). It must wrap ContainUnexpectedErrors so that a 500 carries the header too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _chosen_id(scope)
        scope.setdefault("state", {})[_STATE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def _chosen_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            offered = value.decode("latin-1")
            if _SANE_ID.fullmatch(offered):
                return offered
            break
    return uuid.uuid4().hex


def request_id_of(scope: Scope) -> str:
    """The id RequestIds gave this request ("unknown" in an app built without it)."""
    return str(scope.get("state", {}).get(_STATE_KEY, "unknown"))


def route_template_of(scope: Scope) -> str:
    """The route that served the request as declared (`/fhir/CarePlan/{id}`), never the
    concrete path, which may hold an id or a personnummer."""
    route = scope.get("route")
    return str(getattr(route, "path", "(no route)"))
