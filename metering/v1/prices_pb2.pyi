import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metering.v1 import event_pb2 as _event_pb2
from metering.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Price(_message.Message):
    __slots__ = ("usage_type", "variant", "unit_price", "unit")
    USAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    usage_type: str
    variant: str
    unit_price: str
    unit: str
    def __init__(self, usage_type: _Optional[str] = ..., variant: _Optional[str] = ..., unit_price: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class PriceVersion(_message.Message):
    __slots__ = ("version", "organization_id", "provider", "model", "currency", "effective_from", "prices", "note", "created_by", "create_time", "effective_until", "superseded_by")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    version: str
    organization_id: str
    provider: str
    model: str
    currency: str
    effective_from: _timestamp_pb2.Timestamp
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    note: str
    created_by: str
    create_time: _timestamp_pb2.Timestamp
    effective_until: _timestamp_pb2.Timestamp
    superseded_by: str
    def __init__(self, version: _Optional[str] = ..., organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., currency: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ..., note: _Optional[str] = ..., created_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., effective_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., superseded_by: _Optional[str] = ...) -> None: ...

class NewPriceVersion(_message.Message):
    __slots__ = ("provider", "model", "currency", "effective_from", "prices", "note", "replace")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    currency: str
    effective_from: _timestamp_pb2.Timestamp
    prices: _containers.RepeatedCompositeFieldContainer[Price]
    note: str
    replace: bool
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., currency: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prices: _Optional[_Iterable[_Union[Price, _Mapping]]] = ..., note: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class CreatePriceVersionsRequest(_message.Message):
    __slots__ = ("organization", "versions")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    organization: str
    versions: _containers.RepeatedCompositeFieldContainer[NewPriceVersion]
    def __init__(self, organization: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[NewPriceVersion, _Mapping]]] = ...) -> None: ...

class PriceVersionResult(_message.Message):
    __slots__ = ("version", "created")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    version: PriceVersion
    created: bool
    def __init__(self, version: _Optional[_Union[PriceVersion, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class CreatePriceVersionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PriceVersionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PriceVersionResult, _Mapping]]] = ...) -> None: ...

class ListPriceVersionsRequest(_message.Message):
    __slots__ = ("organization", "provider", "model", "currency", "at")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    organization: str
    provider: str
    model: str
    currency: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, organization: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., currency: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPriceVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[PriceVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[PriceVersion, _Mapping]]] = ...) -> None: ...

class GetPriceVersionRequest(_message.Message):
    __slots__ = ("organization", "version")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    organization: str
    version: str
    def __init__(self, organization: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PreviewRepricingRequest(_message.Message):
    __slots__ = ("organization", "start_time", "end_time", "models", "providers", "versions")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    organization: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    providers: _containers.RepeatedScalarFieldContainer[str]
    versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, organization: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[str]] = ..., versions: _Optional[_Iterable[str]] = ...) -> None: ...

class ApplyRepricingRequest(_message.Message):
    __slots__ = ("organization", "start_time", "end_time", "models", "providers", "versions", "preview_token", "reason")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    organization: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    providers: _containers.RepeatedScalarFieldContainer[str]
    versions: _containers.RepeatedScalarFieldContainer[str]
    preview_token: str
    reason: str
    def __init__(self, organization: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[str]] = ..., versions: _Optional[_Iterable[str]] = ..., preview_token: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RepricingDelta(_message.Message):
    __slots__ = ("day", "project_id", "line_item", "currency", "before", "after", "delta", "events")
    DAY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_ITEM_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    day: _timestamp_pb2.Timestamp
    project_id: str
    line_item: str
    currency: str
    before: str
    after: str
    delta: str
    events: int
    def __init__(self, day: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., project_id: _Optional[str] = ..., line_item: _Optional[str] = ..., currency: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., delta: _Optional[str] = ..., events: _Optional[int] = ...) -> None: ...

class RepricingTotal(_message.Message):
    __slots__ = ("currency", "before", "after", "delta")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    currency: str
    before: str
    after: str
    delta: str
    def __init__(self, currency: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., delta: _Optional[str] = ...) -> None: ...

class RepricingReport(_message.Message):
    __slots__ = ("deltas", "totals", "events", "skipped", "preview_token", "applied")
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_TOKEN_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    deltas: _containers.RepeatedCompositeFieldContainer[RepricingDelta]
    totals: _containers.RepeatedCompositeFieldContainer[RepricingTotal]
    events: int
    skipped: int
    preview_token: str
    applied: bool
    def __init__(self, deltas: _Optional[_Iterable[_Union[RepricingDelta, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[RepricingTotal, _Mapping]]] = ..., events: _Optional[int] = ..., skipped: _Optional[int] = ..., preview_token: _Optional[str] = ..., applied: _Optional[bool] = ...) -> None: ...

class ListUnpricedEventsRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "models", "page_size", "page_token")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UnpricedEvent(_message.Message):
    __slots__ = ("event", "reason")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.UsageEvent
    reason: str
    def __init__(self, event: _Optional[_Union[_event_pb2.UsageEvent, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListUnpricedEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[UnpricedEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[UnpricedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCostsRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "bucket_width", "time_zone", "group_by", "project_ids", "api_key_ids", "user_ids", "models", "page_size", "page_token")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    bucket_width: str
    time_zone: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    project_ids: _containers.RepeatedScalarFieldContainer[str]
    api_key_ids: _containers.RepeatedScalarFieldContainer[str]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_width: _Optional[str] = ..., time_zone: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., project_ids: _Optional[_Iterable[str]] = ..., api_key_ids: _Optional[_Iterable[str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class CostAmount(_message.Message):
    __slots__ = ("value", "currency")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    value: str
    currency: str
    def __init__(self, value: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class CostResult(_message.Message):
    __slots__ = ("amount", "line_item", "project_id", "api_key_id", "user_id", "model", "price_version", "quantity", "quantity_unit", "api_source")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LINE_ITEM_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_UNIT_FIELD_NUMBER: _ClassVar[int]
    API_SOURCE_FIELD_NUMBER: _ClassVar[int]
    amount: CostAmount
    line_item: str
    project_id: str
    api_key_id: str
    user_id: str
    model: str
    price_version: str
    quantity: str
    quantity_unit: str
    api_source: str
    def __init__(self, amount: _Optional[_Union[CostAmount, _Mapping]] = ..., line_item: _Optional[str] = ..., project_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., user_id: _Optional[str] = ..., model: _Optional[str] = ..., price_version: _Optional[str] = ..., quantity: _Optional[str] = ..., quantity_unit: _Optional[str] = ..., api_source: _Optional[str] = ...) -> None: ...

class CostBucket(_message.Message):
    __slots__ = ("start_time", "end_time", "results", "unpriced_events")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    results: _containers.RepeatedCompositeFieldContainer[CostResult]
    unpriced_events: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., results: _Optional[_Iterable[_Union[CostResult, _Mapping]]] = ..., unpriced_events: _Optional[int] = ...) -> None: ...

class GetCostsResponse(_message.Message):
    __slots__ = ("buckets", "next_page_token", "freshness")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[CostBucket]
    next_page_token: str
    freshness: _query_pb2.Freshness
    def __init__(self, buckets: _Optional[_Iterable[_Union[CostBucket, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., freshness: _Optional[_Union[_query_pb2.Freshness, _Mapping]] = ...) -> None: ...
