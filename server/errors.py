"""Domain errors: a refusal with a machine code, an HTTP status and, when it is about input, the field.

Services raise these; the API turns them into {"error": {...}} with the status,
the gateway into an error reply, the CLI into a one-line message.
"""
from __future__ import annotations


class DomainError(Exception):
    status = 409
    code = "conflict"

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None,
                 field: str | None = None, reason: str | None = None):
        self.code = code or self.code
        self.status = status or self.status
        self.field = field
        self.reason = reason or self.code
        self.message = message or self.code.replace("_", " ")
        # Writes that must survive the refusal (e.g. a failed password counts toward lockout): each is
        # called with a fresh session after the refused transaction has rolled back (run_after_rollback).
        self.after_rollback: list = []
        super().__init__(self.message)


def run_after_rollback(db, exc: DomainError) -> None:
    """Commits what a refusal asked to keep, in a transaction of its own."""
    if getattr(exc, "after_rollback", None):
        with db.begin() as session:
            for write in exc.after_rollback:
                write(session)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class RuleViolation(DomainError):
    status = 422
    code = "rule_violation"


class Conflict(DomainError):
    status = 409
    code = "conflict"
