"""AsyncMeteringClient: the asyncio client. `await record()` queues; a task delivers."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Unpack

import grpc

from metering.v1 import (
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    ingest_pb2,
    query_pb2,
    query_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from metering_client import channel as channels
from metering_client import lifecycle
from metering_client.aio_batcher import AsyncBatcher
from metering_client.batcher import Batcher
from metering_client.budgets import (
    CHECK_TIMEOUT,
    AsyncReservation,
    BudgetExceededError,
    CheckResult,
    OpenReservations,
    Scope,
    check_request,
    check_result,
    release_failed,
)
from metering_client.client import READ_TIMEOUT, delivery_options
from metering_client.config import Settings, resolve
from metering_client.delivery import DeliveryStatus, Ledger, OnFailure, Overflow
from metering_client.events import build_event, coerce
from metering_client.journal import Journal, default_path
from metering_client.results import ApiError, AsyncReceipt, Failure, api_error


class AsyncMeteringClient:
    """The asyncio twin of MeteringClient (same arguments, same delivery guarantees).

    Build it anywhere; it connects on first use inside a running loop. Use `async with`, or
    `await client.close()`, to deliver before the loop ends. If the loop ends first, whatever is
    unacknowledged is journaled and, at interpreter exit, delivered over a short-lived sync channel
    (within `exit_timeout`), or else by the next client started with the same key.
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
        self._channel_options = tuple(channel_options)
        self._channel: grpc.aio.Channel | None = None
        self._sender: channels.AsyncSender | None = None
        self._metadata = channels.metadata(self.settings)
        self.journal = Journal(self.options.journal_path or default_path(self.settings.api_key), self.settings.api_key)
        self._ledger = Ledger(self.journal, on_failure)
        self._reservations = OpenReservations()
        self._batcher = AsyncBatcher(self._send, self.journal, self._ledger, self.options)
        self._closed = False
        lifecycle.register(self, self._close_at_exit)

    def __repr__(self) -> str:
        return f"AsyncMeteringClient(target={self.settings.target!r}, tls={self.settings.tls})"

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying grpc.aio channel (created on first use), for other services of the API."""
        if self._channel is None:
            self._channel = channels.aio_channel(self.settings, self._channel_options)
        return self._channel

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def _send(self, events: Sequence[event_pb2.UsageEvent], timeout: float) -> ingest_pb2.RecordEventsResponse:
        if self._sender is None:  # the channel is made on first use, inside the running loop
            self._sender = channels.aio_sender(self.channel, self._metadata)
        return await self._sender(events, timeout)

    # -- recording ----------------------------------------------------------------------------

    async def record(self, **fields: Any) -> AsyncReceipt:
        """Queue one event (waits only while the buffer is full); `await` the receipt for the outcome."""
        return await self._put(build_event(fields))

    async def record_many(self, events: Iterable[Mapping[str, Any] | event_pb2.UsageEvent]) -> list[AsyncReceipt]:
        built = [coerce(e) for e in events]
        return [await self._put(e) for e in built]

    async def _put(self, event: event_pb2.UsageEvent) -> AsyncReceipt:
        if self._closed:
            raise RuntimeError("the metering client is closed")
        if self.settings.client_id and not event.client_id:
            event.client_id = self.settings.client_id
        receipt = AsyncReceipt(event.request_id, await self._batcher.put(event))
        self._reservations.settle(event.reservation_id)
        return receipt

    async def flush(self, timeout: float | None = None) -> None:
        """As MeteringClient.flush()."""
        if self._closed:
            raise RuntimeError("the metering client is closed")
        if not await self._batcher.flush(timeout):
            raise TimeoutError(f"flush: {self._batcher.buffered()} event(s) still being delivered")
        self._ledger.raise_pending()

    async def sync(self, timeout: float | None = None) -> None:
        """flush() without raising for rejections: reads call this to see their own writes."""
        if not self._closed:
            await self._batcher.flush(timeout)

    async def close(self, timeout: float | None = None) -> None:
        """As MeteringClient.close()."""
        if self._closed:
            return
        self._closed = True
        lifecycle.unregister(self)
        try:
            await self._batcher.close(timeout)
        finally:
            if self._channel is not None:
                await self._channel.close()
        self._ledger.raise_pending()

    def _close_at_exit(self) -> None:
        """The loop is gone: journal what is unacknowledged, then deliver the journal synchronously."""
        if self._closed:
            return
        self._closed = True
        try:
            self._batcher.journal_unacked()
            if self.journal.size() > 0:
                channel = channels.sync_channel(self.settings, self._channel_options)
                try:
                    send = channels.sender(channel, self._metadata)
                    Batcher(send, self.journal, self._ledger, self.options, start=False).replay_now(
                        self.options.exit_timeout
                    )
                finally:
                    channel.close()
        finally:
            self._ledger.log_unreported()

    def failures(self) -> list[Failure]:
        return self._ledger.take_failures()

    def delivery_status(self) -> DeliveryStatus:
        return self._ledger.status(self._batcher.buffered())

    async def __aenter__(self) -> AsyncMeteringClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading ------------------------------------------------------------------------------

    async def _read(self, method: Any, request: Any, timeout: float) -> Any:
        """One unary read; a gRPC error raised as the SDK's ApiError (NotFoundError, ...)."""
        try:
            return await method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None

    async def get_event(self, *, request_id: str = "", event_id: str = "",
                        timeout: float = READ_TIMEOUT) -> event_pb2.UsageEvent:
        event: event_pb2.UsageEvent = await self._read(
            records_pb2_grpc.RecordServiceStub(self.channel).GetEvent,
            records_pb2.GetEventRequest(request_id=request_id, event_id=event_id), timeout)
        return event

    async def get_event_history(self, *, request_id: str = "", event_id: str = "",
                                timeout: float = READ_TIMEOUT) -> records_pb2.EventHistory:
        history: records_pb2.EventHistory = await self._read(
            records_pb2_grpc.RecordServiceStub(self.channel).GetEventHistory,
            records_pb2.GetEventHistoryRequest(request_id=request_id, event_id=event_id), timeout)
        return history

    async def query_usage(self, request: query_pb2.QueryUsageRequest, *, timeout: float = READ_TIMEOUT
                          ) -> query_pb2.QueryUsageResponse:
        response: query_pb2.QueryUsageResponse = await self._read(
            query_pb2_grpc.QueryServiceStub(self.channel).QueryUsage, request, timeout)
        return response

    async def get_client_usage(self, client_id: str, *, recent_limit: int = 10, timeout: float = READ_TIMEOUT
                               ) -> query_pb2.ClientUsage:
        usage: query_pb2.ClientUsage = await self._read(
            query_pb2_grpc.QueryServiceStub(self.channel).GetClientUsage,
            query_pb2.GetClientUsageRequest(client_id=client_id, recent_limit=recent_limit), timeout)
        return usage

    # -- spend control (metering_client/budgets.py) -------------------------------------------------

    async def check(
        self, *, estimated_cost: object = None, estimated_counters: Mapping[str, int] | None = None,
        reserve: bool = False, ttl: dt.timedelta | float | None = None, request_id: str | None = None,
        timeout: float = CHECK_TIMEOUT, **scope: Unpack[Scope],
    ) -> CheckResult:
        """As MeteringClient.check()."""
        request = check_request(
            scope, default_client_id=self.settings.client_id, estimated_cost=estimated_cost,
            estimated_counters=estimated_counters, reserve=reserve, ttl=ttl, request_id=request_id,
        )
        stub = budgets_pb2_grpc.BudgetServiceStub(self.channel)
        try:
            response: budgets_pb2.CheckResponse = await stub.Check(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None
        return check_result(response)

    @contextlib.asynccontextmanager
    async def reserve(
        self, *, estimated_cost: object = None, estimated_counters: Mapping[str, int] | None = None,
        ttl: dt.timedelta | float | None = None, request_id: str | None = None, timeout: float = CHECK_TIMEOUT,
        **scope: Unpack[Scope],
    ) -> AsyncIterator[AsyncReservation]:
        """As MeteringClient.reserve(), with `async with` (and `await reservation.record(...)`)."""
        result = await self.check(estimated_cost=estimated_cost, estimated_counters=estimated_counters,
                                  reserve=True, ttl=ttl, request_id=request_id, timeout=timeout, **scope)
        if not result.allowed:
            raise BudgetExceededError(result)
        reservation = AsyncReservation(result, scope, self.record, self.release_reservation)
        self._reservations.add(reservation)
        try:
            yield reservation
        finally:
            self._reservations.remove(reservation)
            if reservation.open:
                try:
                    await reservation.release()
                except ApiError as error:
                    release_failed(reservation.reservation_id, error)

    async def release_reservation(self, reservation_id: str, *, timeout: float = CHECK_TIMEOUT) -> bool:
        """As MeteringClient.release_reservation()."""
        stub = budgets_pb2_grpc.BudgetServiceStub(self.channel)
        try:
            response: budgets_pb2.ReleaseReservationResponse = await stub.ReleaseReservation(
                budgets_pb2.ReleaseReservationRequest(reservation_id=reservation_id), timeout=timeout,
                metadata=self._metadata)
        except grpc.RpcError as error:
            raise api_error(error) from None
        return response.released
