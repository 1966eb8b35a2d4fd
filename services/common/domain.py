"""What every aggregate shares: refusals that name the rule, and the actor on each event."""

from __future__ import annotations


class RuleViolation(Exception):
    """A command the aggregate refuses; `rule` names the rule for the OperationOutcome."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class NotFound(Exception):
    """No aggregate with that id (or not one the caller may know of)."""


class VersionMismatch(RuleViolation):
    """The client's If-Match names another version than the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(
            "version-conflict", f"the resource is at version {current}, not the one in If-Match"
        )
        self.current = current
