"""The consent service's operations and their OperationDefinitions, from the declarations."""

from services.common.capability import ACCESS_LOG_OPERATIONS
from services.common.operations.routes import operation_definition_router, operation_router
from services.consent.operations import CONSENT_OPERATIONS

DEFINED_OPERATIONS = [*CONSENT_OPERATIONS, *ACCESS_LOG_OPERATIONS]

router = operation_router(CONSENT_OPERATIONS)
definitions_router = operation_definition_router(DEFINED_OPERATIONS)
