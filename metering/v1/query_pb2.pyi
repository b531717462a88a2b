import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metering.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Filter(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "width", "time_zone", "filters", "group_by", "page_size", "page_token", "if_none_match", "known_etags", "metrics")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IF_NONE_MATCH_FIELD_NUMBER: _ClassVar[int]
    KNOWN_ETAGS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    width: str
    time_zone: str
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    group_by: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    if_none_match: str
    known_etags: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., width: _Optional[str] = ..., time_zone: _Optional[str] = ..., filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ..., group_by: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., if_none_match: _Optional[str] = ..., known_etags: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ...) -> None: ...

class UsageMetrics(_message.Message):
    __slots__ = ("events", "unpriced_events", "input_tokens", "output_tokens", "input_cached_tokens", "input_cache_write_tokens", "input_text_tokens", "output_text_tokens", "input_cached_text_tokens", "input_audio_tokens", "input_cached_audio_tokens", "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens", "output_image_tokens", "num_model_requests", "num_requests", "images", "characters", "seconds", "usage_bytes", "num_sessions", "units_used", "counters", "input_cost", "output_cost", "cost", "last_event_time")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHED_TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_AUDIO_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHED_AUDIO_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_AUDIO_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_IMAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CACHED_IMAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_MODEL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NUM_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    USAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    UNITS_USED_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    INPUT_COST_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COST_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    events: int
    unpriced_events: int
    input_tokens: int
    output_tokens: int
    input_cached_tokens: int
    input_cache_write_tokens: int
    input_text_tokens: int
    output_text_tokens: int
    input_cached_text_tokens: int
    input_audio_tokens: int
    input_cached_audio_tokens: int
    output_audio_tokens: int
    input_image_tokens: int
    input_cached_image_tokens: int
    output_image_tokens: int
    num_model_requests: int
    num_requests: int
    images: int
    characters: int
    seconds: int
    usage_bytes: int
    num_sessions: int
    units_used: int
    counters: _containers.ScalarMap[str, int]
    input_cost: str
    output_cost: str
    cost: str
    last_event_time: _timestamp_pb2.Timestamp
    def __init__(self, events: _Optional[int] = ..., unpriced_events: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., input_cached_tokens: _Optional[int] = ..., input_cache_write_tokens: _Optional[int] = ..., input_text_tokens: _Optional[int] = ..., output_text_tokens: _Optional[int] = ..., input_cached_text_tokens: _Optional[int] = ..., input_audio_tokens: _Optional[int] = ..., input_cached_audio_tokens: _Optional[int] = ..., output_audio_tokens: _Optional[int] = ..., input_image_tokens: _Optional[int] = ..., input_cached_image_tokens: _Optional[int] = ..., output_image_tokens: _Optional[int] = ..., num_model_requests: _Optional[int] = ..., num_requests: _Optional[int] = ..., images: _Optional[int] = ..., characters: _Optional[int] = ..., seconds: _Optional[int] = ..., usage_bytes: _Optional[int] = ..., num_sessions: _Optional[int] = ..., units_used: _Optional[int] = ..., counters: _Optional[_Mapping[str, int]] = ..., input_cost: _Optional[str] = ..., output_cost: _Optional[str] = ..., cost: _Optional[str] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UsageGroup(_message.Message):
    __slots__ = ("key", "metrics")
    class KeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    key: _containers.ScalarMap[str, str]
    metrics: UsageMetrics
    def __init__(self, key: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Union[UsageMetrics, _Mapping]] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("start_time", "end_time", "groups", "etag", "not_modified")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    groups: _containers.RepeatedCompositeFieldContainer[UsageGroup]
    etag: str
    not_modified: bool
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[UsageGroup, _Mapping]]] = ..., etag: _Optional[str] = ..., not_modified: _Optional[bool] = ...) -> None: ...

class Freshness(_message.Message):
    __slots__ = ("snapshot_time", "settled_before", "raw_windows")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    SETTLED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    RAW_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    settled_before: _timestamp_pb2.Timestamp
    raw_windows: int
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settled_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., raw_windows: _Optional[int] = ...) -> None: ...

class QueryUsageResponse(_message.Message):
    __slots__ = ("buckets", "next_page_token", "freshness", "etag", "not_modified")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    next_page_token: str
    freshness: Freshness
    etag: str
    not_modified: bool
    def __init__(self, buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ..., etag: _Optional[str] = ..., not_modified: _Optional[bool] = ...) -> None: ...

class GetUsageTalliesRequest(_message.Message):
    __slots__ = ("window", "start_time", "end_time", "page_size", "page_token")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    window: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, window: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TallyCounts(_message.Message):
    __slots__ = ("counts",)
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class TallyCategory(_message.Message):
    __slots__ = ("models",)
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TallyCounts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TallyCounts, _Mapping]] = ...) -> None: ...
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.MessageMap[str, TallyCounts]
    def __init__(self, models: _Optional[_Mapping[str, TallyCounts]] = ...) -> None: ...

class UsageTally(_message.Message):
    __slots__ = ("id", "window", "start_time", "end_time", "api_key_id", "user_id", "organization_id", "value")
    class ValueEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TallyCategory
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TallyCategory, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    window: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    api_key_id: str
    user_id: str
    organization_id: str
    value: _containers.MessageMap[str, TallyCategory]
    def __init__(self, id: _Optional[str] = ..., window: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_key_id: _Optional[str] = ..., user_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., value: _Optional[_Mapping[str, TallyCategory]] = ...) -> None: ...

class GetUsageTalliesResponse(_message.Message):
    __slots__ = ("tallies", "next_page_token", "freshness")
    TALLIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    tallies: _containers.RepeatedCompositeFieldContainer[UsageTally]
    next_page_token: str
    freshness: Freshness
    def __init__(self, tallies: _Optional[_Iterable[_Union[UsageTally, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ...) -> None: ...

class GetTokenUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "group_by")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    group_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("rule_type", "task_id", "count")
    class CountEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RULE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    rule_type: str
    task_id: str
    count: _containers.ScalarMap[str, int]
    def __init__(self, rule_type: _Optional[str] = ..., task_id: _Optional[str] = ..., count: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetTokenUsageResponse(_message.Message):
    __slots__ = ("usage", "freshness")
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    usage: _containers.RepeatedCompositeFieldContainer[TokenUsage]
    freshness: Freshness
    def __init__(self, usage: _Optional[_Iterable[_Union[TokenUsage, _Mapping]]] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ...) -> None: ...

class GetClientUsageRequest(_message.Message):
    __slots__ = ("client_id", "recent_limit")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    recent_limit: int
    def __init__(self, client_id: _Optional[str] = ..., recent_limit: _Optional[int] = ...) -> None: ...

class ModelUsage(_message.Message):
    __slots__ = ("model_name", "model_provider", "total_requests", "total_input_tokens", "total_output_tokens", "total_cost", "last_used")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_provider: str
    total_requests: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: str
    last_used: _timestamp_pb2.Timestamp
    def __init__(self, model_name: _Optional[str] = ..., model_provider: _Optional[str] = ..., total_requests: _Optional[int] = ..., total_input_tokens: _Optional[int] = ..., total_output_tokens: _Optional[int] = ..., total_cost: _Optional[str] = ..., last_used: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClientUsage(_message.Message):
    __slots__ = ("client_id", "total_requests", "successful_requests", "failed_requests", "total_input_tokens", "total_output_tokens", "total_cost", "models_used", "recent_requests", "freshness")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSFUL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    MODELS_USED_FIELD_NUMBER: _ClassVar[int]
    RECENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    total_requests: int
    successful_requests: int
    failed_requests: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: str
    models_used: _containers.RepeatedCompositeFieldContainer[ModelUsage]
    recent_requests: _containers.RepeatedCompositeFieldContainer[_event_pb2.UsageEvent]
    freshness: Freshness
    def __init__(self, client_id: _Optional[str] = ..., total_requests: _Optional[int] = ..., successful_requests: _Optional[int] = ..., failed_requests: _Optional[int] = ..., total_input_tokens: _Optional[int] = ..., total_output_tokens: _Optional[int] = ..., total_cost: _Optional[str] = ..., models_used: _Optional[_Iterable[_Union[ModelUsage, _Mapping]]] = ..., recent_requests: _Optional[_Iterable[_Union[_event_pb2.UsageEvent, _Mapping]]] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ...) -> None: ...
