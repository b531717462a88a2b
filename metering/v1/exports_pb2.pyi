import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metering.v1 import event_pb2 as _event_pb2
from metering.v1 import query_pb2 as _query_pb2
from metering.v1 import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportUsageChunk(_message.Message):
    __slots__ = ("buckets", "cursor", "freshness", "etag")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[_query_pb2.UsageBucket]
    cursor: str
    freshness: _query_pb2.Freshness
    etag: str
    def __init__(self, buckets: _Optional[_Iterable[_Union[_query_pb2.UsageBucket, _Mapping]]] = ..., cursor: _Optional[str] = ..., freshness: _Optional[_Union[_query_pb2.Freshness, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class ExportEventsChunk(_message.Message):
    __slots__ = ("events", "cursor")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.UsageEvent]
    cursor: str
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.UsageEvent, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class ExportCheckpoint(_message.Message):
    __slots__ = ("kind", "format", "usage", "events", "cursor", "bytes", "rows", "updated_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    format: str
    usage: _query_pb2.QueryUsageRequest
    events: _records_pb2.ListEventsRequest
    cursor: str
    bytes: int
    rows: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., format: _Optional[str] = ..., usage: _Optional[_Union[_query_pb2.QueryUsageRequest, _Mapping]] = ..., events: _Optional[_Union[_records_pb2.ListEventsRequest, _Mapping]] = ..., cursor: _Optional[str] = ..., bytes: _Optional[int] = ..., rows: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
