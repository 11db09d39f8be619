"""Failures that end a command with a machine-readable result."""

from __future__ import annotations

import driftloop_contract as contract


class RuntimeFailureError(Exception):
    """A failure reported in the termination message (reason/rule/column/message)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        rule: str | None = None,
        column: str | None = None,
        exit_code: int = contract.EXIT_INVALID_INPUT,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.rule = rule
        self.column = column
        self.exit_code = exit_code


class ValidationFailedError(RuntimeFailureError):
    def __init__(self, rule: contract.ValidationRule, message: str, column: str | None = None):
        super().__init__(contract.REASON_VALIDATION_FAILED, message, rule=rule.value, column=column)
