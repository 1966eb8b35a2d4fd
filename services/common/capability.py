"""CapabilityStatements built from what a service's routers really serve."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from contracts.canonical import CANONICAL_BASE

SOFTWARE_VERSION = "0.1.0"


def resource_capability(
    resource_type: str,
    *,
    interactions: list[str],
    search_parameters: dict[str, str],
    operations: dict[str, str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned" if "vread" in interactions else "no-version",
        "readHistory": "vread" in interactions,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {
                "name": name,
                "type": "date" if name == "date" else "token",
                "documentation": documentation,
            }
            for name, documentation in search_parameters.items()
        ],
    }
    if operations:
        resource["operation"] = [
            {
                "name": name,
                "definition": f"{CANONICAL_BASE}/OperationDefinition/{resource_type}-{name}",
                "documentation": documentation,
            }
            for name, documentation in operations.items()
        ]
    return resource


def capability_statement(
    base: str, *, name: str, title: str, resources: list[dict[str, Any]]
) -> dict[str, Any]:
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
                "documentation": "Only application/fhir+json; unknown search parameters are "
                "refused with 400. Every version is an event-sourced version.",
                "resource": resources,
            }
        ],
    }
    # Validated on every build, so the statement cannot drift into invalid FHIR.
    CapabilityStatement.model_validate(statement)
    return statement


# Both services keep an access log of their own.
ACCESS_LOG_CAPABILITIES = [
    resource_capability(
        "AuditEvent",
        interactions=["read", "search-type"],
        search_parameters={
            "patient": "whose data (patient:identifier=system|personnummer)",
            "agent": "the user or system id",
            "organization": "HSA-id the access was made from",
            "action": "C | R | U | D | E",
            "date": "ge/gt/le/lt prefixed, repeatable",
        },
    ),
    resource_capability(
        "Provenance",
        interactions=["search-type"],
        search_parameters={"target": "the resource whose versions' provenance is wanted"},
    ),
    resource_capability(
        "Patient",
        interactions=[],
        search_parameters={},
        operations={"access-log": "The person's log extract (loggutdrag), JSON or HTML"},
    ),
]
