"""What happened to each event (ItemResult), the handles that wait for it (Receipt, AsyncReceipt),
and the errors the SDK raises."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
from collections.abc import Callable, Generator
from typing import Any, cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from metering.v1 import event_pb2


class Outcome(enum.Enum):
    RECORDED = "recorded"    # newly committed by the server
    DUPLICATE = "duplicate"  # the server already had this request_id: delivered before (counts as delivered)
    REJECTED = "rejected"    # the server refused the item (see field, reason, message); nothing was written
    JOURNALED = "journaled"  # the server stayed unreachable: kept in the local journal, replayed later


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """The fate of one event."""

    request_id: str
    outcome: Outcome
    event_id: str = ""  # recorded/duplicate: the server's event id
    field: str = ""     # rejected: the offending field ("input_tokens", "labels.size", ...)
    reason: str = ""    # rejected: machine-readable reason (INVALID_VALUE, REQUIRED, PERMISSION_DENIED, ...)
    message: str = ""   # rejected: human-readable explanation

    @property
    def delivered(self) -> bool:
        """True once the server has the event (newly recorded or a duplicate of an earlier delivery)."""
        return self.outcome in (Outcome.RECORDED, Outcome.DUPLICATE)


class Receipt:
    """Returned by MeteringClient.record(): `request_id` at once, `result()` once delivered."""

    __slots__ = ("_future", "request_id")

    def __init__(self, request_id: str, future: concurrent.futures.Future[ItemResult]) -> None:
        self.request_id = request_id
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> ItemResult:
        """Block until the event is recorded, found duplicate, rejected or journaled.
        Raises TimeoutError if that takes longer than `timeout` seconds."""
        return self._future.result(timeout)

    def add_done_callback(self, fn: Callable[[ItemResult], Any]) -> None:
        self._future.add_done_callback(lambda f: fn(f.result()))

    def __repr__(self) -> str:
        state = self._future.result().outcome.value if self._future.done() else "pending"
        return f"<Receipt {self.request_id} {state}>"


class AsyncReceipt:
    """Returned by AsyncMeteringClient.record(): `request_id` at once; `await receipt` for the result."""

    __slots__ = ("_future", "request_id")

    def __init__(self, request_id: str, future: asyncio.Future[ItemResult]) -> None:
        self.request_id = request_id
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> ItemResult:
        """The result if done (else asyncio.InvalidStateError)."""
        return self._future.result()

    def __await__(self) -> Generator[Any, None, ItemResult]:
        return asyncio.shield(self._future).__await__()

    def __repr__(self) -> str:
        state = self._future.result().outcome.value if self._future.done() else "pending"
        return f"<AsyncReceipt {self.request_id} {state}>"


@dataclasses.dataclass(frozen=True)
class Failure:
    """A rejected event, with the event itself so it can be fixed and sent again."""

    result: ItemResult
    event: event_pb2.UsageEvent

    @property
    def request_id(self) -> str:
        return self.result.request_id

    def __str__(self) -> str:
        r = self.result
        return f"{r.request_id}: {r.field or 'event'}: {r.reason}: {r.message}"


class MeteringClientError(Exception):
    """Base class of every error the SDK raises."""


class RejectedEventsError(MeteringClientError):
    """Raised by flush()/close() when the server rejected events since the last report."""

    def __init__(self, failures: list[Failure]) -> None:
        self.failures = failures
        first = "; ".join(str(f) for f in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(f"{len(failures)} event(s) rejected by the server: {first}{more}")


class DeliveryError(MeteringClientError):
    """Raised by flush()/close() when the server refused whole batches for a reason other than being
    unreachable (bad credentials, permission, server error). The events are kept in the journal."""

    def __init__(self, errors: list[str], journal: str) -> None:
        self.errors = errors
        self.journal = journal
        super().__init__(f"delivery refused ({'; '.join(errors[:3])}); events kept in {journal}")


class ApiError(MeteringClientError):
    """A read (stats, request details) failed; `code` is the gRPC status, `reason`/`field` from ErrorInfo."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "", field: str = "") -> None:
        self.code = code
        self.reason = reason
        self.field = field
        super().__init__(f"{code.name}: {message}")


class NotFoundError(ApiError, LookupError):
    """The record asked for does not exist (or is not visible to these credentials)."""


def api_error(error: grpc.RpcError) -> ApiError:
    """Turn a failed call into an ApiError, reading google.rpc.Status details when present."""
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = str(error.details() or "") if hasattr(error, "details") else str(error)
    reason, field = "", ""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for item in cast("tuple[tuple[str, object], ...]", trailers or ()):  # sync: _Metadatum, aio: pairs
        key, value = item
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason, field = info.reason, info.metadata.get("field", "")
    cls = NotFoundError if code == grpc.StatusCode.NOT_FOUND else ApiError
    return cls(code, message or code.name, reason, field)
