"""MeteringClient: the synchronous client. record() queues; a background thread delivers."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import grpc

from metering.v1 import (
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    query_pb2,
    query_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from metering_client import channel as channels
from metering_client import lifecycle
from metering_client.batcher import Batcher
from metering_client.budgets import (
    CHECK_TIMEOUT,
    BudgetExceededError,
    CheckResult,
    OpenReservations,
    Reservation,
    Scope,
    check_request,
    check_result,
    release_failed,
)
from metering_client.config import Settings, resolve
from metering_client.delivery import DeliveryOptions, DeliveryStatus, Ledger, OnFailure, Overflow
from metering_client.events import build_event, coerce
from metering_client.journal import Journal, default_path
from metering_client.results import ApiError, Failure, Receipt, api_error

READ_TIMEOUT = 30.0


def delivery_options(
    *, batch_size: int, max_delay: float, max_buffer: int, overflow: Overflow, retry_budget: float,
    attempt_timeout: float, exit_timeout: float, journal_path: str | os.PathLike[str] | None,
) -> DeliveryOptions:
    return DeliveryOptions(
        batch_size=batch_size, max_delay=max_delay, max_buffer=max_buffer, overflow=overflow,
        retry_budget=retry_budget, attempt_timeout=attempt_timeout, exit_timeout=exit_timeout,
        journal_path=Path(journal_path) if journal_path is not None else None,
    )


class MeteringClient:
    """Records usage events over gRPC, buffered and batched in a background thread.

    target, api_key: default to $METERING_TARGET (else 127.0.0.1:50051) and $METERING_API_KEY;
    `config` may be a dict or object carrying target/api_key/client_id (seed style).
    tls / root_certificates: TLS with the system roots or the given PEM (bytes, text or a path);
    an "https://" target also means TLS.
    Delivery: batches of `batch_size` events or `max_delay` seconds; up to `max_buffer` queued,
    then `overflow` "block"s the caller or "spill"s to the journal; retries for `retry_budget`
    seconds, then journals to `journal_path` and replays when the server is back.
    Rejections: passed to `on_failure(failure)` if given, else kept for failures() and raised by
    flush()/close() as RejectedEventsError.
    """

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        *,
        config: Any = None,
        tls: bool | None = None,
        root_certificates: bytes | str | os.PathLike[str] | None = None,
        client_id: str | None = None,
        batch_size: int = 500,
        max_delay: float = 0.2,
        max_buffer: int = 10_000,
        overflow: Overflow = "block",
        retry_budget: float = 30.0,
        attempt_timeout: float = 10.0,
        exit_timeout: float = 5.0,
        journal_path: str | os.PathLike[str] | None = None,
        on_failure: OnFailure | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.settings: Settings = resolve(target=target, api_key=api_key, tls=tls,
                                          root_certificates=root_certificates, client_id=client_id, config=config)
        self.options = delivery_options(
            batch_size=batch_size, max_delay=max_delay, max_buffer=max_buffer, overflow=overflow,
            retry_budget=retry_budget, attempt_timeout=attempt_timeout, exit_timeout=exit_timeout,
            journal_path=journal_path,
        )
        self._channel = channels.sync_channel(self.settings, channel_options)
        self._metadata = channels.metadata(self.settings)
        self._records = records_pb2_grpc.RecordServiceStub(self._channel)
        self._query = query_pb2_grpc.QueryServiceStub(self._channel)
        self._budgets = budgets_pb2_grpc.BudgetServiceStub(self._channel)
        self._reservations = OpenReservations()
        self.journal = Journal(self.options.journal_path or default_path(self.settings.api_key), self.settings.api_key)
        self._ledger = Ledger(self.journal, on_failure)
        send = channels.sender(self._channel, self._metadata)
        self._batcher = Batcher(send, self.journal, self._ledger, self.options)
        self._closed = False
        lifecycle.register(self, self._close_at_exit)

    def __repr__(self) -> str:
        return f"MeteringClient(target={self.settings.target!r}, tls={self.settings.tls})"

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for calling other services of the API with the same connection."""
        return self._channel

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the credentials."""
        return self._metadata

    # -- recording ----------------------------------------------------------------------------

    def record(self, **fields: Any) -> Receipt:
        """Queue one event; field names as in DESIGN §2 / event.proto (e.g. kind="completions",
        model=..., input_tokens=..., cost=Decimal("0.0042"), labels={...}, timestamp=datetime).
        Returns at once (or when the buffer has room); the Receipt tells the outcome later."""
        return self._put(build_event(fields))

    def record_many(self, events: Iterable[Mapping[str, Any] | event_pb2.UsageEvent]) -> list[Receipt]:
        """Queue many events (mappings of fields, or UsageEvent messages); one Receipt each, in order.
        All are checked before any is queued, so a TypeError leaves nothing half-queued."""
        built = [coerce(e) for e in events]
        return [self._put(e) for e in built]

    def _put(self, event: event_pb2.UsageEvent) -> Receipt:
        if self.settings.client_id and not event.client_id:
            event.client_id = self.settings.client_id
        receipt = Receipt(event.request_id, self._batcher.put(event))
        self._reservations.settle(event.reservation_id)
        return receipt

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event recorded so far is delivered, rejected or journaled.

        Raises TimeoutError if that takes longer than `timeout`; DeliveryError if the server refused
        batches (they are journaled); RejectedEventsError with the events rejected since the last
        report (unless an on_failure callback takes them)."""
        self._check_open()
        if not self._batcher.flush(timeout):
            raise TimeoutError(f"flush: {self._batcher.buffered()} event(s) still being delivered")
        self._ledger.raise_pending()

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the connection. Whatever cannot be delivered within `timeout` seconds
        (default: the retry budget) is journaled. Raises like flush()."""
        if self._closed:
            return
        self._closed = True
        lifecycle.unregister(self)
        try:
            self._batcher.close(timeout)
        finally:
            self._channel.close()
        self._ledger.raise_pending()

    def _close_at_exit(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._batcher.close(self.options.exit_timeout)
            self._channel.close()
        finally:
            self._ledger.log_unreported()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the metering client is closed")

    def failures(self) -> list[Failure]:
        """Events rejected since the last call (or the last flush()/close() that raised them)."""
        return self._ledger.take_failures()

    def delivery_status(self) -> DeliveryStatus:
        return self._ledger.status(self._batcher.buffered())

    def __enter__(self) -> MeteringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def _read(self, method: Any, request: Any, timeout: float) -> Any:
        """One unary read; a gRPC error raised as the SDK's ApiError (NotFoundError, ...)."""
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None

    def get_event(self, *, request_id: str = "", event_id: str = "",
                  timeout: float = READ_TIMEOUT) -> event_pb2.UsageEvent:
        """One stored event (with its payload), by request_id or event_id. Raises NotFoundError."""
        event: event_pb2.UsageEvent = self._read(
            self._records.GetEvent, records_pb2.GetEventRequest(request_id=request_id, event_id=event_id), timeout)
        return event

    def get_event_history(self, *, request_id: str = "", event_id: str = "",
                          timeout: float = READ_TIMEOUT) -> records_pb2.EventHistory:
        """RecordService.GetEventHistory: what happened to one event, oldest first (recorded, then each
        update, void and repricing with its time, actor, reason and changed fields). Raises NotFoundError."""
        history: records_pb2.EventHistory = self._read(
            self._records.GetEventHistory,
            records_pb2.GetEventHistoryRequest(request_id=request_id, event_id=event_id), timeout)
        return history

    def query_usage(self, request: query_pb2.QueryUsageRequest, *, timeout: float = READ_TIMEOUT
                    ) -> query_pb2.QueryUsageResponse:
        """QueryService.QueryUsage: usage in time buckets, filtered and grouped (one page)."""
        response: query_pb2.QueryUsageResponse = self._read(self._query.QueryUsage, request, timeout)
        return response

    def get_client_usage(self, client_id: str, *, recent_limit: int = 10, timeout: float = READ_TIMEOUT
                         ) -> query_pb2.ClientUsage:
        """QueryService.GetClientUsage: one client's totals, per-model usage and recent requests."""
        usage: query_pb2.ClientUsage = self._read(
            self._query.GetClientUsage,
            query_pb2.GetClientUsageRequest(client_id=client_id, recent_limit=recent_limit), timeout)
        return usage

    def sync(self, timeout: float | None = None) -> None:
        """Like flush(), but never raises for rejected events: reads call this to see their own writes."""
        if not self._closed:
            self._batcher.flush(timeout)

    # -- spend control (metering_client/budgets.py) -------------------------------------------------

    def check(
        self, *, estimated_cost: object = None, estimated_counters: Mapping[str, int] | None = None,
        reserve: bool = False, ttl: dt.timedelta | float | None = None, request_id: str | None = None,
        timeout: float = CHECK_TIMEOUT, **scope: Unpack[Scope],
    ) -> CheckResult:
        """BudgetService.Check: may this usage happen? `scope` names the coming usage by its event
        fields (model="gpt-4o", project_id=..., labels={...}); client_id defaults to the configured
        one, user_id and api_key_id to the credentials' own. `estimated_cost` (exact decimal, in
        `currency`, default usd) and `estimated_counters` ({"input_tokens": 900}) are what it will
        use. With `reserve`, an allowed estimate is held for `ttl` (default 10 minutes) and the
        result carries its reservation_id; a retried check with the same `request_id` returns the
        same reservation. Raises ApiError if the call fails; a refusal is `allowed=False`."""
        request = check_request(
            scope, default_client_id=self.settings.client_id, estimated_cost=estimated_cost,
            estimated_counters=estimated_counters, reserve=reserve, ttl=ttl, request_id=request_id,
        )
        try:
            response: budgets_pb2.CheckResponse = self._budgets.Check(request, timeout=timeout,
                                                                      metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None
        return check_result(response)

    @contextlib.contextmanager
    def reserve(
        self, *, estimated_cost: object = None, estimated_counters: Mapping[str, int] | None = None,
        ttl: dt.timedelta | float | None = None, request_id: str | None = None, timeout: float = CHECK_TIMEOUT,
        **scope: Unpack[Scope],
    ) -> Iterator[Reservation]:
        """check(..., reserve=True) as a block: raises BudgetExceededError if refused, else yields the
        Reservation. An event carrying its reservation_id recorded through this client
        (`reservation.record(**fields)`, which also takes the scope's fields as defaults) settles
        it; leaving the block without one releases it (ReleaseReservation; if that fails, it
        expires at its TTL and a warning is logged)."""
        result = self.check(estimated_cost=estimated_cost, estimated_counters=estimated_counters, reserve=True,
                            ttl=ttl, request_id=request_id, timeout=timeout, **scope)
        if not result.allowed:
            raise BudgetExceededError(result)
        reservation = Reservation(result, scope, self.record, self.release_reservation)
        self._reservations.add(reservation)
        try:
            yield reservation
        finally:
            self._reservations.remove(reservation)
            if reservation.open:
                try:
                    reservation.release()
                except ApiError as error:
                    release_failed(reservation.reservation_id, error)

    def release_reservation(self, reservation_id: str, *, timeout: float = CHECK_TIMEOUT) -> bool:
        """BudgetService.ReleaseReservation: give back a hold whose call was not made. False if it was
        already settled, released or expired."""
        try:
            response: budgets_pb2.ReleaseReservationResponse = self._budgets.ReleaseReservation(
                budgets_pb2.ReleaseReservationRequest(reservation_id=reservation_id), timeout=timeout,
                metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None
        return response.released
