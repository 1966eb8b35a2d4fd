"""Routes made from operation declarations: one per operation, and the OperationDefinitions
(read by id, searched by `url`) that the CapabilityStatement names."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from contracts.actor import Actor
from services.common.access_log_search import OPERATION_DEFINITION_SEARCH
from services.common.auth.dependency import authorize
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_base,
    resource_response,
    searchset,
)
from services.common.operations.declaration import Operation
from services.common.operations.definition import (
    operation_definition,
    operation_request_body,
    query_parameters,
    returned_type,
)
from services.common.operations.pipeline import operation_body, query_as_parameters, run_operation
from services.common.paging import keyset_page, opened_query, page_links
from services.common.resource_routes import add_search_routes
from services.common.result_parameters import MAX_COUNT, ResultParameters

_KIND = "search:OperationDefinition"

IfMatch = Annotated[str | None, Header()]
Body = Annotated[dict[str, Any], Depends(operation_body)]


def operation_router(operations: list[Operation[Any]]) -> APIRouter:
    router = APIRouter(prefix="/fhir")
    for operation in operations:
        if operation.command is not None:
            _add_route(router, operation)
    return router


def _add_route(router: APIRouter, operation: Operation[Any]) -> None:
    interaction = "u" if operation.changes_state else "r"
    caller = Depends(authorize(operation.resource_type, interaction))
    route = {"name": operation.name, "description": operation.documentation}
    # What the answer is, for the OpenAPI's response schema (services/common/openapi_fhir.py).
    returns = {"x-fhir-returns": returned_type(operation)}
    if operation.method == "GET" and not operation.instance:

        @router.get(operation.path, openapi_extra=query_parameters(operation) | returns, **route)
        def read_type(request: Request, actor: Actor = caller) -> FhirResponse:
            body = query_as_parameters(operation, request)
            return run_operation(operation, request, actor, body)

        @router.post(
            operation.path, openapi_extra=operation_request_body(operation) | returns, **route
        )
        def read_type_by_post(request: Request, body: Body, actor: Actor = caller) -> FhirResponse:
            return run_operation(operation, request, actor, body)

    elif operation.method == "GET":

        @router.get(operation.path, openapi_extra=query_parameters(operation) | returns, **route)
        def read(id: str, request: Request, actor: Actor = caller) -> FhirResponse:
            body = query_as_parameters(operation, request)
            return run_operation(operation, request, actor, body, id)

        # R4 (operations.html): every operation is invoked by POST, GET only besides.
        @router.post(
            operation.path, openapi_extra=operation_request_body(operation) | returns, **route
        )
        def read_by_post(
            id: str, request: Request, body: Body, actor: Actor = caller
        ) -> FhirResponse:
            return run_operation(operation, request, actor, body, id)

    elif operation.instance:

        @router.post(
            operation.path, openapi_extra=operation_request_body(operation) | returns, **route
        )
        def run(
            id: str, request: Request, body: Body, actor: Actor = caller, if_match: IfMatch = None
        ) -> FhirResponse:
            return run_operation(operation, request, actor, body, id, if_match)

    else:

        @router.post(
            operation.path, openapi_extra=operation_request_body(operation) | returns, **route
        )
        def run_on_type(request: Request, body: Body, actor: Actor = caller) -> FhirResponse:
            return run_operation(operation, request, actor, body)


def operation_definition_router(operations: list[Operation[Any]]) -> APIRouter:
    """GET /fhir/OperationDefinition/{id} and GET /fhir/OperationDefinition?url=..."""
    router = APIRouter(prefix="/fhir")
    definitions = {operation.id: operation_definition(operation) for operation in operations}
    by_operation = {operation.id: operation for operation in operations}
    reader = Depends(authorize("OperationDefinition", "r"))

    def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
        query, position = opened_query(request, _KIND, query)
        result = ResultParameters.of(query, MAX_COUNT)
        result.check_elements("OperationDefinition")
        asked = OPERATION_DEFINITION_SEARCH.asked(query)
        base = fhir_base(request)

        def matches(id: str) -> bool:
            urls = {definitions[id]["url"], by_operation[id].served_at(base)}
            return all(
                any(a.arguments["url"] in urls for a in condition.alternatives)
                for condition in asked.conditions
            )

        found = [definitions[id] for id in sorted(definitions) if matches(id)]
        page = keyset_page(found, lambda definition: definition["id"], position, result.count)
        links = page_links(request, _KIND, "OperationDefinition", asked.used, page, result.count)
        bundle = searchset(base, page.items, "", total=page.total, links=links)
        return FhirResponse(result.finish(bundle))

    add_search_routes(router, search, OPERATION_DEFINITION_SEARCH, interaction="r")

    @router.get("/OperationDefinition/{id}", name="read OperationDefinition")
    def read(id: str, actor: Actor = reader) -> FhirResponse:
        if id not in definitions:
            raise FhirError(404, "not-found", f"no OperationDefinition with id '{id}'")
        return resource_response(definitions[id])

    return router
