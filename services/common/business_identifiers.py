"""Business identifiers a client gives a resource it creates (`CarePlan.identifier`,
`Consent.identifier`), and the claims that make a retried create safe.

A record system names what it creates in its own namespace (`system`, an absolute URI, and
`value`), so that a create it retries after a lost answer finds the resource it made before
instead of making a second one (`If-None-Exist: identifier=system|value`). An identifier is
unique per creating organisation: two organisations may use the same one without colliding,
so a create never tells one organisation what another has named (docs/disclosure.md).

Uniqueness is not a read-then-write check: each identifier is a row of `business_identifiers`
(resource type, organisation, system, value → resource id), inserted by the event store's
recorder in the same transaction as the creation event (services/common/audit/chain.py). Of two
concurrent creates one commits; the other's transaction fails on the primary key, writes
nothing, and its caller gets the resource the first one made."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from fastapi import Request
from sqlalchemy import Column, Index, MetaData, String, Table, bindparam, select
from sqlalchemy.engine import Engine

from contracts.actor import Actor
from contracts.identifiers import PERSON_ID_SYSTEMS
from services.common.access_log import WriteContext, writing
from services.common.audit.chain import CLAIMS_KEYWORD
from services.common.bundles.unit_of_work import unit_of
from services.common.fhir_api import FhirError, FhirResponse, resource_response
from services.common.fhir_time import now

# Written with the events, never rebuilt: not a read model (a rebuild leaves it alone).
claims_metadata = MetaData()
business_identifiers = Table(
    "business_identifiers",
    claims_metadata,
    Column("resource_type", String(40), primary_key=True),
    Column("organization", String(200), primary_key=True),
    Column("system", String(255), primary_key=True),
    Column("value", String(128), primary_key=True),
    Column("resource_id", String(36), nullable=False, index=True),
    Index("ix_business_identifiers_system_value", "system", "value"),
)

# Built once: building a statement costs more than running it (asked by each create, issue 15).
_CLAIMED = select(business_identifiers.c.resource_id).where(
    *(business_identifiers.c[name] == bindparam(name)
      for name in ("resource_type", "organization", "system", "value"))
)  # fmt: skip

MAX_IDENTIFIERS = 5
MAX_SYSTEM = 255
MAX_VALUE = 128
_ABSOLUTE_URI = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*):[!-~]+$")
_PRINTABLE = re.compile(r"^[!-~](?:[ -~]*[!-~])?$")  # printable ASCII, no edge spaces


@dataclass(frozen=True)
class BusinessIdentifier:
    system: str
    value: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "value": self.value}


def _invalid(expression: str, message: str) -> FhirError:
    return FhirError(400, "invalid", f"{expression}: {message}", expression=expression)


def parse_identifier(system: Any, value: Any, expression: str) -> BusinessIdentifier:
    """One identifier, or a 400 naming `expression`."""
    if not isinstance(system, str) or not _ABSOLUTE_URI.match(system):
        raise _invalid(expression, "system is the source system's namespace, an absolute URI")
    if len(system) > MAX_SYSTEM:
        raise _invalid(expression, f"system is at most {MAX_SYSTEM} characters")
    if system in PERSON_ID_SYSTEMS:
        # A person's number names a person, not a plan: it would be one more place it is kept.
        raise _invalid(expression, "a personal identity number is not a business identifier")
    if not isinstance(value, str) or not _PRINTABLE.match(value) or len(value) > MAX_VALUE:
        raise _invalid(expression, f"value is 1-{MAX_VALUE} printable ASCII characters")
    return BusinessIdentifier(system, value)


def identifiers_from_fhir(body: dict[str, Any], resource_type: str) -> list[BusinessIdentifier]:
    """A posted resource's `identifier` list (possibly empty), validated; 400 naming it."""
    raw = body.get("identifier")
    if raw is None:
        return []
    expression = f"{resource_type}.identifier"
    if not isinstance(raw, list) or len(raw) > MAX_IDENTIFIERS:
        raise _invalid(expression, f"a list of at most {MAX_IDENTIFIERS} identifiers")
    parsed: list[BusinessIdentifier] = []
    for index, element in enumerate(raw):
        if not isinstance(element, dict) or set(element) - {"system", "value"}:
            raise _invalid(f"{expression}[{index}]", "an identifier has system and value only")
        identifier = parse_identifier(
            element.get("system"), element.get("value"), f"{expression}[{index}]"
        )
        if identifier in parsed:
            raise _invalid(f"{expression}[{index}]", "the same identifier twice")
        parsed.append(identifier)
    return parsed


def identifier_token(token: str, expression: str) -> BusinessIdentifier:
    """`system|value`, as a search parameter or an If-None-Exist condition gives it."""
    system, bar, value = token.partition("|")
    if not bar:
        raise _invalid(expression, "identifier=system|value")
    return parse_identifier(system, value, expression)


# Query parameters that shape the answer, not the condition, on a POST.
_ANSWER_SHAPING = {"_format", "_pretty"}


def if_none_exist(
    request: Request, identifiers: list[BusinessIdentifier], resource_type: str
) -> BusinessIdentifier | None:
    """The identifier a conditional create names (None for a plain create): FHIR's
    `If-None-Exist` header, or the POST's own query string (`POST /CarePlan?identifier=...`),
    as fhirpy's `get_or_create` and HAPI-style clients send it. Ignoring that query would
    turn their get-or-create into a duplicate (or a 409 on the retry).

    Only `identifier=system|value` is a condition here, and it must be one of the posted
    resource's own identifiers: a condition the new resource would not meet could never stop
    the next retry from creating another."""
    header = request.headers.get("If-None-Exist")
    query = [(k, v) for k, v in parse_qsl(request.url.query, True) if k not in _ANSWER_SHAPING]
    if header is not None and query:
        raise _invalid("If-None-Exist", "give the condition once: the header or the query")
    if header is not None:  # a search's query string, so percent-encoding is read as such
        name, equals, token = header.strip().partition("=")
        where, condition = "If-None-Exist", [(name, unquote(token))] if equals else []
        if "&" in token:
            condition = []
    elif query:
        where, condition = query[0][0], query
    else:
        return None
    if len(condition) != 1 or condition[0][0] != "identifier":
        raise _invalid(where, "a conditional create supports identifier=system|value only")
    identifier = identifier_token(condition[0][1], where)
    if identifier not in identifiers:
        raise _invalid(where, f"names an identifier the posted {resource_type} does not have")
    return identifier


def creator_scope(actor: Actor) -> str:
    """Whose identifiers these are: the caller's organisation (a person's own, where the
    caller acts for no organisation)."""
    return actor.organization or f"subject:{actor.subject}"[:200]


class IdentifierTaken(Exception):
    """A create lost to an earlier one with the same creator and identifier."""

    def __init__(self, resource_id: UUID) -> None:
        super().__init__(f"identifier claimed by {resource_id}")
        self.resource_id = resource_id


@dataclass(frozen=True)
class IdentifierClaims:
    """The identifiers one creator gives one new resource, and the resource that has them."""

    resource_type: str
    creator: str
    identifiers: list[BusinessIdentifier]
    engine: Engine  # the service's database, where the recorder writes the claims
    application: Any = None  # whose unit of work may hold claims not yet written

    def existing(self) -> UUID | None:
        """The resource this creator made before with any of these identifiers (in an
        earlier entry of the same transaction too)."""
        if not self.identifiers:
            return None
        unit = unit_of(self.application) if self.application is not None else None
        if unit is not None:
            for identifier in self.identifiers:
                key = (self.resource_type, self.creator, identifier.system, identifier.value)
                held = unit.claimed(key)
                if held is not None:
                    return held
        with self.engine.connect() as connection:
            for identifier in self.identifiers:
                found = connection.execute(
                    _CLAIMED,
                    {
                        "resource_type": self.resource_type,
                        "organization": self.creator,
                        "system": identifier.system,
                        "value": identifier.value,
                    },
                ).scalar_one_or_none()
                if found:
                    return UUID(found)
        return None

    def save(self, application: Any, aggregate: Any) -> None:
        """Saves the new aggregate with its claims; raises IdentifierTaken, having written
        nothing, where one of them was claimed first."""
        rows = [
            {
                "resource_type": self.resource_type,
                "organization": self.creator,
                "system": identifier.system,
                "value": identifier.value,
                "resource_id": str(aggregate.id),
            }
            for identifier in self.identifiers
        ]
        try:
            application.save(aggregate, **{CLAIMS_KEYWORD: rows})
        except IntegrityError:
            existing = self.existing()
            if existing is None:
                raise  # not a claimed identifier: a real failure
            raise IdentifierTaken(existing) from None


def identified_ids(resource_type: str, identifier: BusinessIdentifier) -> Any:
    """A subquery of the ids of every resource with this identifier, whoever created it (a
    search shows each only as its disclosure rule allows)."""
    return select(business_identifiers.c.resource_id).where(
        business_identifiers.c.resource_type == resource_type,
        business_identifiers.c.system == identifier.system,
        business_identifiers.c.value == identifier.value,
    )


def created_before(
    access: Any,
    actor: Actor,
    existing: UUID,
    conditional: bool,
    to_fhir: Callable[[Any], dict[str, Any]],
) -> FhirResponse:
    """The answer to a create whose identifier the caller's organisation used before.

    A conditional create (`If-None-Exist`) gets the resource made before, 200 with its
    Location and ETag, as the caller may see it (`ResourceAccess.open`: disclosure-checked,
    redacted and logged like a read). A plain create is a 409 naming the identifier, never
    the resource: a client that retries is told how to find it, not handed a second one."""
    resource_type = access.resource_type
    if not conditional:
        raise FhirError(
            409,
            "duplicate",
            f"{resource_type}.identifier: this organisation has created a {resource_type} "
            "with this identifier already; search by identifier, or create with "
            "If-None-Exist to get it",
            rule="identifier-unique-per-organization",
            expression=f"{resource_type}.identifier",
        )
    entity = f"{resource_type}/{existing}"
    resource = to_fhir(access.open(actor, existing, "read", entity))
    response = resource_response(resource, status=200)
    response.headers["Location"] = f"{entity}/_history/{resource['meta']['versionId']}"
    return response


def create_once(
    access: Any,
    actor: Actor,
    engine: Engine,
    identifiers: list[BusinessIdentifier],
    conditional: bool,
    create: Callable[[IdentifierClaims, list[dict[str, str]]], Any],
    to_fhir: Callable[[Any], dict[str, Any]],
) -> FhirResponse:
    """A create at most once per creating organisation and identifier: `create(claims,
    identifiers)` saves the new aggregate inside the create's write context (its claims
    written in the same transaction), 201; an identifier used before, by an earlier call or a
    concurrent retry that committed first, gets `created_before`."""
    resource_type = access.resource_type
    claims = IdentifierClaims(
        resource_type, creator_scope(actor), identifiers, engine, access.application
    )
    existing = claims.existing()
    if existing is None:
        try:
            with writing(WriteContext(actor.as_event_data(), "create", resource_type, now())):
                created = create(claims, [i.as_fhir() for i in identifiers])
            return resource_response(to_fhir(created), status=201)
        except IdentifierTaken as taken:  # a concurrent retry committed first
            existing = taken.resource_id
    return created_before(access, actor, existing, conditional, to_fhir)
