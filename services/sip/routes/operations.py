"""The plan's operations and their OperationDefinitions, all from the declarations."""

from typing import Any

from services.common.capability import ACCESS_LOG_OPERATIONS
from services.common.operations.declaration import Operation
from services.common.operations.routes import operation_definition_router, operation_router
from services.common.subscriptions.routes import SUBSCRIPTION_OPERATIONS
from services.sip.consent_operations import ACTIVATE, AS_OF
from services.sip.discharge.operations import OPERATIONS as STAY_OPERATIONS
from services.sip.meetings.operations import OPERATIONS as MEETING_OPERATIONS
from services.sip.messages.operations import OPERATIONS as MESSAGE_OPERATIONS
from services.sip.operations import OPERATIONS

SIP_OPERATIONS: list[Operation[Any]] = [
    ACTIVATE,
    AS_OF,
    *OPERATIONS,
    *MEETING_OPERATIONS,
    *STAY_OPERATIONS,
    *MESSAGE_OPERATIONS,
]
DEFINED_OPERATIONS = [*SIP_OPERATIONS, *ACCESS_LOG_OPERATIONS, *SUBSCRIPTION_OPERATIONS]

router = operation_router(SIP_OPERATIONS)
definitions_router = operation_definition_router(DEFINED_OPERATIONS)
