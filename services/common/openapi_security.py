"""The OpenAPI says how to authenticate: a bearer JWT on every operation but the open ones,
so generated clients send it and the documentation's "Authorize" takes a `sip token`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A token of a trusted issuer (README, Tokens); on the embedded default "
    "`sip token --role coordinator --org <HSA-id>` prints one.",
}


def declare_bearer_security(app: FastAPI, open_paths: Iterable[str]) -> None:
    generate = app.openapi
    unauthenticated = set(open_paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation["security"] = [] if path in unauthenticated else [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
