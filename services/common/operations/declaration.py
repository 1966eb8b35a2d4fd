"""An operation declared once, as data: from this one declaration come the route, the reading
of its parameters, its OperationDefinition and its CapabilityStatement entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from fastapi import Request
from starlette.datastructures import State

from contracts.actor import Actor
from contracts.canonical import CANONICAL_BASE
from services.common.disclosure import Disclosure
from services.common.fhir_api import FhirError
from services.common.parameters import OperationParameters, Refusal

P = TypeVar("P", bound=OperationParameters)


class NoParameters(OperationParameters):
    pass


@dataclass(frozen=True)
class OperationCall(Generic[P]):
    """One call of an operation, as its command and checks see it."""

    operation: Operation[P]
    parameters: P
    actor: Actor
    at: datetime
    request: Request
    target: Any = None  # the aggregate of an instance-level operation
    # What of the target the caller sees, decided once when it was loaded (None for an
    # operation outside the disclosure rule).
    disclosure: Disclosure | None = None

    @property
    def state(self) -> State:
        """The service's app.state: its application, consent gate, settings."""
        return self.request.app.state

    @property
    def by(self) -> dict[str, Any]:
        return self.actor.as_event_data()


@dataclass(frozen=True)
class Operation(Generic[P]):
    """`command` runs on the loaded target; for a state-changing operation the pipeline saves
    the target after it, inside the write context, so the change and its log are one write.
    A non-state-changing operation's command returns the answer itself."""

    name: str
    resource_type: str
    documentation: str
    parameters: type[P]
    command: Callable[[OperationCall[P]], Any] | None  # None: routed by its own module
    instance: bool = True  # instance-level (`/{type}/{id}/$name`) or type-level
    changes_state: bool = True
    patient_may: bool = False  # the person (or their representative) may call it
    # Checks beyond `patient_may` (403 and the like): on the caller before the body is read,
    # and on the caller and the loaded target before anything is written.
    may_call: Callable[[Actor], None] | None = None
    may_change: Callable[[OperationCall[P]], None] | None = None
    disclosed: bool = True  # the target is loaded through the type's disclosure rule
    method: Literal["POST", "GET"] = "POST"
    returns: str | type[OperationParameters] = ""  # default: the resource type
    missing: Refusal | None = None  # the refusal of a missing required parameter
    # The parameters a refused rule is about (candidates, the first the operation takes wins),
    # so the 409 names the element to change as well as the rule.
    rule_parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    detail: Callable[[OperationCall[P]], str] | None = None  # of the write's log record
    interaction: str = "operation"  # of the write's log record: its AuditEvent subtype

    @property
    def id(self) -> str:
        return f"{self.resource_type}-{self.name}"

    @property
    def url(self) -> str:
        """The canonical URL: names the definition for good, wherever a server runs."""
        return f"{CANONICAL_BASE}/OperationDefinition/{self.id}"

    def served_at(self, base: str) -> str:
        """This server's address of the definition. The CapabilityStatement names this one:
        the canonical URL is an identifier nobody serves, while this address any client can
        dereference with a plain GET, and the definition there carries the canonical `url`
        (`GET OperationDefinition?url=<canonical>` finds it too)."""
        return f"{base}/OperationDefinition/{self.id}"

    @property
    def path(self) -> str:
        return f"/{self.resource_type}" + ("/{id}" if self.instance else "") + f"/${self.name}"

    def check_patient(self, actor: Actor) -> None:
        if actor.role == "patient" and not self.patient_may:
            raise FhirError(403, "forbidden", f"${self.name} is done by staff")
