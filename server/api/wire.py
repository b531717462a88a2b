"""Replies sent as protobuf wire bytes put together by hand, where building the
messages would cost most of the call: a 1,000-event RecordEvents reply (~3 µs an
event as 1,000 ItemResult messages, ~0.4 µs as bytes) and QueryUsage replies made
of kept buckets (server/api/bucket_cache.py).

The wire format (protobuf's encoding spec): a message is its fields, each a tag
(field number << 3 | wire type) followed by a varint, or for strings, bytes and
messages by a varint length and the bytes. A repeated message field is one such
entry per element, and fields may come in any order, so a reply can be put
together from encoded parts. Field numbers are read from the descriptors.

add_service registers a service whose methods may return those bytes: grpc sends
them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message as pb_message
from google.protobuf import message_factory

VARINT, LENGTH_DELIMITED = 0, 2


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [encode_varint(n) for n in range(1 << 14)]  # every index of a batch, most lengths


def varint(n: int) -> bytes:
    return _VARINTS[n] if n < len(_VARINTS) else encode_varint(n)


def tag(message: type[pb_message.Message], field: str) -> bytes:
    """The tag of `message`'s `field` (length-delimited for strings, bytes and messages)."""
    found = message.DESCRIPTOR.fields_by_name[field]
    delimited = found.type in (found.TYPE_STRING, found.TYPE_BYTES, found.TYPE_MESSAGE)
    return varint(found.number << 3 | (LENGTH_DELIMITED if delimited else VARINT))


def delimited(field_tag: bytes, data: bytes) -> bytes:
    """One length-delimited field: its tag, the length of `data`, `data`."""
    return field_tag + varint(len(data)) + data


def repeated(field_tag: bytes, items: Iterable[bytes]) -> bytes:
    """A repeated message field from its encoded elements."""
    return b"".join([delimited(field_tag, item) for item in items])


_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_service(server: grpc.aio.Server, service: pb_descriptor.ServiceDescriptor, servicer: Any) -> None:
    """As the generated add_<Service>Servicer_to_server, except that a method may return
    (or yield) its reply already encoded (bytes), which is sent as it is."""
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        handler = _HANDLERS[method.client_streaming, method.server_streaming]
        handlers[method.name] = handler(
            getattr(servicer, method.name), request_deserializer=request.FromString, response_serializer=_encode)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _encode(reply: pb_message.Message | bytes) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()
