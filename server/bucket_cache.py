"""Encoded buckets of settled query answers, by etag, and replies put together from them.

A bucket's etag names its answer exactly (server/query_etags.py): the organization, the
read scope, the query, the bucket's range and the rollup stamp of its days. So the bucket
as encoded for one reply is the bucket for any later reply that computes the same etag,
whoever asks: QueryUsage keeps each settled bucket it encodes here, and a later call that
finds its etags here neither reads nor encodes those buckets again. The engine computes
the etags in the call's own snapshot first, so a kept bucket is only ever sent while its
answer is unchanged.

Replies are then sent as bytes (grpc passes them through, see add_query_service): a
repeated message field is its elements' encodings, each after its tag and length, so a
reply is the kept buckets' bytes put together, then the other fields.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import grpc
from google.protobuf import message as pb_message
from google.protobuf import message_factory

from metering.v1 import query_pb2

MAX_BYTES = 32 << 20  # per server process
_BUCKETS_TAG = b"\x0a"  # QueryUsageResponse.buckets: field 1, length-delimited


class BucketCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    def get(self, etag: str) -> bytes | None:
        found = self._kept.get(etag)
        if found is not None:
            self._kept.move_to_end(etag)
        return found

    def put(self, etag: str, encoded: bytes) -> None:
        if not etag or etag in self._kept or len(encoded) > self.max_bytes // 8:
            return
        self._kept[etag] = encoded
        self.size += len(encoded)
        while self.size > self.max_bytes:
            self.size -= len(self._kept.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._kept)


def usage_reply(buckets: Iterable[bytes], rest: query_pb2.QueryUsageResponse) -> bytes:
    """A QueryUsageResponse's encoding: `buckets` (encoded UsageBuckets), then `rest`'s fields."""
    out = bytearray()
    for bucket in buckets:
        out += _BUCKETS_TAG
        out += _varint(len(bucket))
        out += bucket
    out += rest.SerializeToString()
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def add_query_service(servicer: object, server: grpc.aio.Server) -> None:
    """As query_pb2_grpc.add_QueryServiceServicer_to_server, except that a method may return
    its reply already encoded (bytes), which is sent as it is."""
    service = query_pb2.DESCRIPTOR.services_by_name["QueryService"]
    handlers = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise TypeError(f"{method.full_name}: only unary methods are handled here")
        request = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name), request_deserializer=request.FromString, response_serializer=_encode)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _encode(reply: pb_message.Message | bytes) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()
