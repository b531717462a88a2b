"""Calling the server: the one shared channel, credentials and request id as
metadata, and a deadline on every call."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import message as pb_message
from starlette.requests import HTTPConnection

from gateway.http.errors import GatewayError
from gateway.http.request_id import request_id_of
from gateway.upstream.answer_cache import AnswerCache
from gateway.upstream.identities import Identities
from gateway.upstream.ingest_batcher import IngestBatcher, Metadata
from metering.v1 import admin_pb2, admin_pb2_grpc, event_pb2, ingest_pb2, ingest_pb2_grpc, records_pb2_grpc

DEFAULT_TIMEOUT = 30.0  # seconds; a client may ask for less with a Grpc-Timeout header
FORWARDED_HEADERS = ("authorization", "x-metering-organization")
METADATA_HEADER_PREFIX = "grpc-metadata-"  # grpc-gateway: Grpc-Metadata-Foo: bar -> foo: bar
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
# A credential (Authorization, QueryLake's `auth`) longer than this is no key or token the server
# issues: 401 here, rather than a call gRPC refuses for its metadata size (RESOURCE_EXHAUSTED, a 429
# clients would retry). All a request forwards as metadata is bounded too (431): the server's gRPC
# soft limit on a call's metadata is 8 KiB, pseudo-headers and the gateway's own entries included.
MAX_CREDENTIAL_CHARS = 4096
MAX_FORWARDED_BYTES = 6144


class Stubs:
    """The generated stubs on the shared channel, for the dialects."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        self.records = records_pb2_grpc.RecordServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)


@dataclasses.dataclass
class Upstream:
    """What the lifespan opens: the channel every request shares, its stubs, the batcher that
    coalesces single-event ingests into RecordEvents calls, the cache of callers' identities and
    the rendered query answers (revalidated by etag on every call)."""

    channel: grpc.aio.Channel
    timeout: float = DEFAULT_TIMEOUT
    stubs: Stubs = dataclasses.field(init=False)
    ingest: IngestBatcher = dataclasses.field(init=False)
    identities: Identities = dataclasses.field(init=False)
    answers: AnswerCache = dataclasses.field(default_factory=AnswerCache, init=False)
    _methods: dict[str, Any] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.stubs = Stubs(self.channel)
        self.ingest = IngestBatcher(self._record_events)
        self.identities = Identities(self._whoami)

    async def _record_events(
        self, meta: Metadata, timeout: float, events: Sequence[event_pb2.UsageEvent]
    ) -> ingest_pb2.RecordEventsResponse:
        reply: ingest_pb2.RecordEventsResponse = await invoke(
            self.stubs.ingest.RecordEvents, ingest_pb2.RecordEventsRequest(events=events), meta, timeout)
        return reply

    async def _whoami(self, meta: Metadata) -> admin_pb2.Principal:
        reply: admin_pb2.Principal = await invoke(self.stubs.admin.WhoAmI, admin_pb2.WhoAmIRequest(), meta,
                                                  self.timeout)
        return reply

    def unary(self, path: str, reply_type: type[pb_message.Message]) -> Any:
        """A unary multicallable for `/package.Service/Method`, made once per method."""
        method = self._methods.get(path)
        if method is None:
            method = self.channel.unary_unary(
                path, request_serializer=_serialize, response_deserializer=reply_type.FromString
            )
            self._methods[path] = method
        return method

    async def call(self, conn: HTTPConnection, method: Callable[..., Any], request: pb_message.Message) -> Any:
        """Calls `method` (a stub attribute or `unary(...)`) with the caller's metadata and
        a deadline; a failed call raises GatewayError."""
        return await invoke(method, request, metadata(conn), deadline(conn, self.timeout))


async def invoke(method: Callable[..., Any], request: pb_message.Message, meta: Metadata, timeout: float) -> Any:
    """The one way the gateway calls the server: `method` with this metadata and timeout (seconds);
    a failed call raises GatewayError."""
    try:
        return await method(request, metadata=meta, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        raise GatewayError.from_rpc(err) from None


def upstream(conn: HTTPConnection) -> Upstream:
    found: Upstream = conn.app.state.upstream
    return found


def metadata(conn: HTTPConnection) -> Metadata:
    """gRPC metadata for a call made on behalf of this HTTP request."""
    pairs = [("x-request-id", request_id_of(conn))]
    forwarded = 0
    for name, value in conn.headers.items():
        if name in FORWARDED_HEADERS:
            key = name
        elif name.startswith(METADATA_HEADER_PREFIX) and len(name) > len(METADATA_HEADER_PREFIX):
            key = name[len(METADATA_HEADER_PREFIX):]
            if key.startswith("grpc-") or key.endswith("-bin") or key in ("x-request-id", *FORWARDED_HEADERS):
                continue
        else:
            continue
        if _PRINTABLE.match(value):  # gRPC refuses anything else; the server then sees no credentials
            if key == "authorization":
                checked_credential(value)
            forwarded += len(key) + len(value)
            pairs.append((key, value))
    if forwarded > MAX_FORWARDED_BYTES:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"request header fields too large: Authorization, X-Metering-Organization and "
                           f"Grpc-Metadata-* headers together may have at most {MAX_FORWARDED_BYTES} bytes",
                           http_status=431)
    if conn.client is not None:
        pairs.append(("x-forwarded-for", conn.client.host))
    return tuple(pairs)


def checked_credential(value: str) -> str:
    """`value` (a credential as the client sent it), unless it is too long to be one (401)."""
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise GatewayError(grpc.StatusCode.UNAUTHENTICATED,
                           f"malformed credentials: longer than {MAX_CREDENTIAL_CHARS} characters")
    return value


_RESOLUTION = 0.001  # seconds


def deadline(conn: HTTPConnection, limit: float) -> float:
    """The call's timeout: the gateway's limit, or less if the client sent Grpc-Timeout."""
    asked = conn.headers.get("grpc-timeout")
    if asked is None:
        return limit
    match = _TIMEOUT.match(asked.strip())
    if match is None:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Grpc-Timeout header: {asked[:32]!r}")
    timeout = min(limit, int(match.group(1)) * _UNITS[match.group(2)])
    if timeout < _RESOLUTION:
        # gRPC deadlines have millisecond resolution (rounded up), so a shorter one could
        # still let a fast call through: treat it as already expired, always.
        raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    return timeout


def _serialize(message: pb_message.Message) -> bytes:
    return bytes(message.SerializeToString())
