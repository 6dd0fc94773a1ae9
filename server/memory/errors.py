"""Errors of the memory engine; the servicer maps each to one gRPC status."""

from __future__ import annotations


class InvalidInput(ValueError):
    """The request is malformed (→ INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """An id names no memory (→ NOT_FOUND)."""


class Conflict(RuntimeError):
    """The request contradicts the stored state (→ FAILED_PRECONDITION)."""
