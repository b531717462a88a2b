"""Domain errors. Each maps to one gRPC status code in server/api/interceptors.py."""

from __future__ import annotations

import grpc


class MeteringError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if reason is not None:
            self.reason = reason


class InvalidArgument(MeteringError):
    """Bad input. `field` names the offending field (dotted path)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_VALUE"

    def __init__(self, field: str, message: str, *, reason: str = "INVALID_VALUE") -> None:
        super().__init__(f"{field}: {message}", reason=reason, field=field)
        self.description = message


def refuse_nul(field: str, *values: str) -> None:
    """Postgres text cannot hold NUL, so no stored value has one: refused naming the field,
    before any statement sees it."""
    if "\x00" in "".join(values):
        raise InvalidArgument(field, "contains a NUL character")


class OutOfRange(MeteringError):
    """A value the wire cannot carry (a usage sum above the int64 of its field). `field`
    names the metric; the message says where and the exact value."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class Unauthenticated(MeteringError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(MeteringError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(MeteringError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(MeteringError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(MeteringError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"
