"""gRPC channels, call metadata and the RecordEvents call the batchers send with (sync and asyncio)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from metering.v1 import event_pb2, ingest_pb2, ingest_pb2_grpc
from metering_client.config import Settings

Metadata = tuple[tuple[str, str], ...]
Sender = Callable[[Sequence[event_pb2.UsageEvent], float], ingest_pb2.RecordEventsResponse]
AsyncSender = Callable[[Sequence[event_pb2.UsageEvent], float], Awaitable[ingest_pb2.RecordEventsResponse]]

VERSION = "0.1.0"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Reconnect quickly after a server restart: our own retries pace the calls.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.primary_user_agent", f"metering-client-python/{VERSION}"),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
# A target may name several servers (replicas): "ipv4:10.0.0.1:50051,10.0.0.2:50051", or a DNS name
# with several records. Calls are spread over those that answer; one that dies is skipped until it is back.
BALANCING: tuple[str, Any] = ("grpc.lb_policy_name", "round_robin")
_BALANCING_KEYS = ("grpc.lb_policy_name", "grpc.service_config")


def _options(extra: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The client's options, then `extra`; round robin unless `extra` chooses a policy of its own."""
    chosen = any(name in _BALANCING_KEYS for name, _ in extra)
    return [*CHANNEL_OPTIONS, *(() if chosen else (BALANCING,)), *extra]


def _credentials(settings: Settings) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=settings.root_certificates)


def sync_channel(settings: Settings, extra: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    if settings.tls:
        return grpc.secure_channel(settings.target, _credentials(settings), options=_options(extra))
    return grpc.insecure_channel(settings.target, options=_options(extra))


def aio_channel(settings: Settings, extra: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    if settings.tls:
        return grpc.aio.secure_channel(settings.target, _credentials(settings), options=_options(extra))
    return grpc.aio.insecure_channel(settings.target, options=_options(extra))


def metadata(settings: Settings) -> Metadata:
    return (("authorization", f"Bearer {settings.api_key}"),)


def sender(channel: grpc.Channel, call_metadata: Metadata) -> Sender:
    """IngestService.RecordEvents over a sync channel, waiting for the channel to be ready."""
    stub = ingest_pb2_grpc.IngestServiceStub(channel)

    def send(events: Sequence[event_pb2.UsageEvent], timeout: float) -> ingest_pb2.RecordEventsResponse:
        response: ingest_pb2.RecordEventsResponse = stub.RecordEvents(
            ingest_pb2.RecordEventsRequest(events=events), timeout=timeout, metadata=call_metadata, wait_for_ready=True)
        return response
    return send


def aio_sender(channel: grpc.aio.Channel, call_metadata: Metadata) -> AsyncSender:
    """IngestService.RecordEvents over a grpc.aio channel, waiting for the channel to be ready."""
    stub = ingest_pb2_grpc.IngestServiceStub(channel)

    async def send(events: Sequence[event_pb2.UsageEvent], timeout: float) -> ingest_pb2.RecordEventsResponse:
        response: ingest_pb2.RecordEventsResponse = await stub.RecordEvents(
            ingest_pb2.RecordEventsRequest(events=events), timeout=timeout, metadata=call_metadata, wait_for_ready=True)
        return response
    return send
