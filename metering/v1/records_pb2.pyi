import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metering.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetEventRequest(_message.Message):
    __slots__ = ("event_id", "request_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetEventHistoryRequest(_message.Message):
    __slots__ = ("event_id", "request_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class EventHistory(_message.Message):
    __slots__ = ("event_id", "changes")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    changes: _containers.RepeatedCompositeFieldContainer[EventChange]
    def __init__(self, event_id: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[EventChange, _Mapping]]] = ...) -> None: ...

class EventChange(_message.Message):
    __slots__ = ("action", "time", "actor", "reason", "fields")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[EventChange.Action]
        ACTION_RECORDED: _ClassVar[EventChange.Action]
        ACTION_UPDATED: _ClassVar[EventChange.Action]
        ACTION_VOIDED: _ClassVar[EventChange.Action]
        ACTION_REPRICED: _ClassVar[EventChange.Action]
    ACTION_UNSPECIFIED: EventChange.Action
    ACTION_RECORDED: EventChange.Action
    ACTION_UPDATED: EventChange.Action
    ACTION_VOIDED: EventChange.Action
    ACTION_REPRICED: EventChange.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    action: EventChange.Action
    time: _timestamp_pb2.Timestamp
    actor: str
    reason: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldChange]
    def __init__(self, action: _Optional[_Union[EventChange.Action, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ...) -> None: ...

class FieldChange(_message.Message):
    __slots__ = ("field", "before", "after")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    field: str
    before: str
    after: str
    def __init__(self, field: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "skip", "start_time", "end_time", "project_ids", "user_ids", "api_key_ids", "client_ids", "models", "kinds", "include_voided", "include_payload")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VOIDED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    skip: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    api_key_ids: _containers.RepeatedScalarFieldContainer[str]
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    include_voided: bool
    include_payload: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., skip: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., project_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., api_key_ids: _Optional[_Iterable[str]] = ..., client_ids: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[str]] = ..., include_voided: _Optional[bool] = ..., include_payload: _Optional[bool] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.UsageEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.UsageEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateEventRequest(_message.Message):
    __slots__ = ("event", "update_mask", "reason")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.UsageEvent
    update_mask: _field_mask_pb2.FieldMask
    reason: str
    def __init__(self, event: _Optional[_Union[_event_pb2.UsageEvent, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class VoidEventRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
