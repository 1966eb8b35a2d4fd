"""CapabilityStatements built from what a service's routers really serve."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from contracts.subscription_topics import CAPABILITY_TOPIC_EXTENSION
from services.common.access_log_search import (
    AUDIT_SEARCH,
    OPERATION_DEFINITION_SEARCH,
    PROVENANCE_SEARCH,
)
from services.common.operations.declaration import NoParameters, Operation
from services.common.result_parameters import RESULT_PARAMETER_FIELDS
from services.common.search_declarations import SearchDeclarations

SOFTWARE_VERSION = "0.1.0"


# What each interaction takes, told where R4 has no structured place for it.
SEARCH_DOCUMENTATION = (
    "GET [type]?... and POST [type]/_search with the same parameters as a form body "
    "(application/x-www-form-urlencoded; keeps a personnummer out of URLs). Comma is OR, a "
    "repeated parameter AND. Result parameters: "
    + "; ".join(f"{name}: {text}" for name, text in RESULT_PARAMETER_FIELDS.items())
    + ". Pages link self, next and previous with opaque cursors (_cursor)."
)
HISTORY_DOCUMENTATION = (
    "_since (versions from this instant), _at (as it stood at this instant and after), "
    "_count, _summary, _elements, _total; newest first (_sort=-_lastUpdated)"
)
# A type's history is paged from the event log: counting what the caller may see would ask
# the disclosure rule of every resource, so the total is left out unless asked for
# (docs/decisions/0009-paged-type-history.md).
TYPE_HISTORY_DOCUMENTATION = (
    HISTORY_DOCUMENTATION
    + ". Newest first by commit; Bundle.total is given only when asked: _total=accurate "
    "(estimate is answered exactly), _summary=count or _count=0"
)
_INTERACTION_DOCUMENTATION = {
    "search-type": SEARCH_DOCUMENTATION,
    "history-type": TYPE_HISTORY_DOCUMENTATION,
    "history-instance": HISTORY_DOCUMENTATION,
    "read": "_at: the resource as it stood at an instant",
}


def resource_capability(
    resource_type: str,
    *,
    interactions: list[str],
    search: SearchDeclarations | None = None,
    conditional_create: bool = False,
) -> dict[str, Any]:
    """A resource's entry; its search parameters (and includes) from the same declarations
    the search reads, so it lists exactly what is served."""
    resource: dict[str, Any] = {
        "type": resource_type,
        "interaction": [
            {"code": code, "documentation": _INTERACTION_DOCUMENTATION[code]}
            if code in _INTERACTION_DOCUMENTATION
            else {"code": code}
            for code in interactions
        ],
        "versioning": "versioned" if "vread" in interactions else "no-version",
        # If-None-Match and If-Modified-Since on versioned reads (http_conventions.py).
        "conditionalRead": "full-support" if "vread" in interactions else "not-supported",
        "readHistory": "vread" in interactions,
        "updateCreate": False,
        # If-None-Exist: identifier=system|value (services/common/business_identifiers.py)
        "conditionalCreate": conditional_create,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    if search is not None:
        resource |= search.capability()
        sortable = ", ".join(search.sort_keys) or "nothing"
        for interaction in resource["interaction"]:
            if interaction["code"] == "search-type":
                interaction["documentation"] += f" _sort takes {sortable}."
    return resource


def with_operations(
    resources: list[dict[str, Any]], operations: list[Operation[Any]], base: str
) -> list[dict[str, Any]]:
    """The resources, each with its operations' entries. An entry's definition is this
    server's own address of the OperationDefinition (see Operation.served_at)."""
    resources = [dict(resource) for resource in resources]
    for resource in resources:
        entries = [
            {
                "name": operation.name,
                "definition": operation.served_at(base),
                "documentation": operation.documentation,
            }
            for operation in operations
            if operation.resource_type == resource["type"]
        ]
        if entries:
            resource["operation"] = entries
    return resources


def capability_statement(
    base: str,
    *,
    name: str,
    title: str,
    resources: list[dict[str, Any]],
    operations: list[Operation[Any]],
) -> dict[str, Any]:
    resources = with_operations([*resources, OPERATION_DEFINITION_CAPABILITY], operations, base)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "name": name,
        "title": title,
        "kind": "instance",
        "software": {"name": "sip-case-service", "version": SOFTWARE_VERSION},
        "implementation": {"description": title, "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Only application/fhir+json. Unknown search parameters are "
                "refused with 400 (Prefer: handling=strict, the default), or ignored and left "
                "out of the self link with Prefer: handling=lenient. Every version is an "
                "event-sourced version.",
                "resource": resources,
                "interaction": SYSTEM_INTERACTIONS,
            }
        ],
    }
    # Validated on every build, so the statement cannot drift into invalid FHIR.
    CapabilityStatement.model_validate(statement)
    return statement


# POST /fhir (services/common/bundles/): each entry checked as its single request.
SYSTEM_INTERACTIONS = [
    {"code": "transaction", "documentation": "all or nothing; urn:uuid fullUrls resolved"},
    {"code": "batch", "documentation": "each entry answered by itself"},
]


def with_security(statement: dict[str, Any], security: dict[str, Any]) -> dict[str, Any]:
    """The statement with `rest.security` (services/common/auth/smart.py), validated again."""
    rest = [{**statement["rest"][0], "security": security}, *statement["rest"][1:]]
    secured = {**statement, "rest": rest}
    CapabilityStatement.model_validate(secured)
    return secured


# Both services keep an access log of their own.
ACCESS_LOG_CAPABILITIES = [
    resource_capability("AuditEvent", interactions=["read", "search-type"], search=AUDIT_SEARCH),
    resource_capability("Provenance", interactions=["search-type"], search=PROVENANCE_SEARCH),
    resource_capability("Patient", interactions=[]),
]
# Routed by services/common/access_log_routes.py; declared here for its definition.
ACCESS_LOG_OPERATIONS: list[Operation[Any]] = [
    Operation(
        "access-log",
        "Patient",
        "The person's log extract (loggutdrag), JSON or HTML",
        NoParameters,
        None,
        changes_state=False,
        patient_may=True,
        method="GET",
        returns="Binary",
    )
]
OPERATION_DEFINITION_CAPABILITY = resource_capability(
    "OperationDefinition", interactions=["read", "search-type"], search=OPERATION_DEFINITION_SEARCH
)


def subscription_capabilities(
    topic_canonicals: list[str], search: SearchDeclarations
) -> list[dict[str, Any]]:
    """Subscription (Backport IG, rest-hook) with the topics offered, and SubscriptionTopic
    (services/common/subscriptions/)."""
    subscription = resource_capability(
        "Subscription",
        interactions=["create", "read", "update", "delete", "search-type"],
        search=search,
    )
    subscription["extension"] = [
        {"url": CAPABILITY_TOPIC_EXTENSION, "valueCanonical": canonical}
        for canonical in topic_canonicals
    ]
    subscription["documentation"] = (
        "Topic-based rest-hook subscriptions of a record system's own organisation; "
        "notifications signed (X-Signature, detached JWS, keys at /events/checkpoint-keys); "
        "GET Subscription/{id}/$status and $events?eventsSinceNumber=&eventsUntilNumber="
    )
    topic = resource_capability("SubscriptionTopic", interactions=["read", "search-type"])
    return [subscription, topic]
