import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageEvent(_message.Message):
    __slots__ = ("event_id", "request_id", "timestamp", "received_at", "updated_at", "organization_id", "project_id", "user_id", "api_key_id", "client_id", "kind", "model", "provider", "endpoint", "api_name", "service_tier", "batch", "status", "error_message", "input_tokens", "output_tokens", "input_cached_tokens", "input_cache_write_tokens", "input_text_tokens", "output_text_tokens", "input_cached_text_tokens", "input_audio_tokens", "input_cached_audio_tokens", "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens", "output_image_tokens", "num_model_requests", "num_requests", "images", "characters", "seconds", "usage_bytes", "num_sessions", "units_used", "counters", "labels", "input_cost", "output_cost", "cost", "currency", "price_version", "unpriced", "config_json", "request_raw", "request_json", "response_json", "response_raw", "active", "reservation_id")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    API_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
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
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_COST_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COST_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RAW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_JSON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_JSON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_RAW_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    timestamp: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    organization_id: str
    project_id: str
    user_id: str
    api_key_id: str
    client_id: str
    kind: str
    model: str
    provider: str
    endpoint: str
    api_name: str
    service_tier: str
    batch: bool
    status: str
    error_message: str
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
    labels: _containers.ScalarMap[str, str]
    input_cost: str
    output_cost: str
    cost: str
    currency: str
    price_version: str
    unpriced: bool
    config_json: str
    request_raw: str
    request_json: str
    response_json: str
    response_raw: str
    active: bool
    reservation_id: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., organization_id: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., client_id: _Optional[str] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., endpoint: _Optional[str] = ..., api_name: _Optional[str] = ..., service_tier: _Optional[str] = ..., batch: _Optional[bool] = ..., status: _Optional[str] = ..., error_message: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., input_cached_tokens: _Optional[int] = ..., input_cache_write_tokens: _Optional[int] = ..., input_text_tokens: _Optional[int] = ..., output_text_tokens: _Optional[int] = ..., input_cached_text_tokens: _Optional[int] = ..., input_audio_tokens: _Optional[int] = ..., input_cached_audio_tokens: _Optional[int] = ..., output_audio_tokens: _Optional[int] = ..., input_image_tokens: _Optional[int] = ..., input_cached_image_tokens: _Optional[int] = ..., output_image_tokens: _Optional[int] = ..., num_model_requests: _Optional[int] = ..., num_requests: _Optional[int] = ..., images: _Optional[int] = ..., characters: _Optional[int] = ..., seconds: _Optional[int] = ..., usage_bytes: _Optional[int] = ..., num_sessions: _Optional[int] = ..., units_used: _Optional[int] = ..., counters: _Optional[_Mapping[str, int]] = ..., labels: _Optional[_Mapping[str, str]] = ..., input_cost: _Optional[str] = ..., output_cost: _Optional[str] = ..., cost: _Optional[str] = ..., currency: _Optional[str] = ..., price_version: _Optional[str] = ..., unpriced: _Optional[bool] = ..., config_json: _Optional[str] = ..., request_raw: _Optional[str] = ..., request_json: _Optional[str] = ..., response_json: _Optional[str] = ..., response_raw: _Optional[str] = ..., active: _Optional[bool] = ..., reservation_id: _Optional[str] = ...) -> None: ...
