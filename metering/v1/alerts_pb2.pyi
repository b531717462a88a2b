import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_PENDING: _ClassVar[DeliveryState]
    DELIVERY_STATE_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FAILED: _ClassVar[DeliveryState]
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_PENDING: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_FAILED: DeliveryState

class WebhookEndpoint(_message.Message):
    __slots__ = ("endpoint_id", "url", "event_types", "description", "disabled", "secret", "previous_secret_expire_time", "create_time", "update_time")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    description: str
    disabled: bool
    secret: str
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., disabled: _Optional[bool] = ..., secret: _Optional[str] = ..., previous_secret_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("organization", "endpoint")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint: WebhookEndpoint
    def __init__(self, organization: _Optional[str] = ..., endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class GetWebhookEndpointRequest(_message.Message):
    __slots__ = ("organization", "endpoint_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint_id: str
    def __init__(self, organization: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("organization", "page_size", "page_token")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization: str
    page_size: int
    page_token: str
    def __init__(self, organization: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateWebhookEndpointRequest(_message.Message):
    __slots__ = ("organization", "endpoint", "update_mask")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint: WebhookEndpoint
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, organization: _Optional[str] = ..., endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("organization", "endpoint_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint_id: str
    def __init__(self, organization: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("organization", "endpoint_id", "overlap")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint_id: str
    overlap: _duration_pb2.Duration
    def __init__(self, organization: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., overlap: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("attempt", "start_time", "status_code", "latency_ms", "response_excerpt", "error")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    start_time: _timestamp_pb2.Timestamp
    status_code: int
    latency_ms: float
    response_excerpt: str
    error: str
    def __init__(self, attempt: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., latency_ms: _Optional[float] = ..., response_excerpt: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "event_id", "event_type", "channel", "endpoint_id", "state", "attempts", "next_attempt_time", "create_time", "log")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    event_type: str
    channel: str
    endpoint_id: str
    state: DeliveryState
    attempts: int
    next_attempt_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    log: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., channel: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., attempts: _Optional[int] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., log: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("organization", "endpoint_id", "page_size", "page_token")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization: str
    endpoint_id: str
    page_size: int
    page_token: str
    def __init__(self, organization: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverRequest(_message.Message):
    __slots__ = ("organization", "delivery_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    delivery_id: str
    def __init__(self, organization: _Optional[str] = ..., delivery_id: _Optional[str] = ...) -> None: ...

class SpendAlert(_message.Message):
    __slots__ = ("alert_id", "project_id", "threshold_amount", "recipients", "subject_prefix", "create_time")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    project_id: str
    threshold_amount: int
    recipients: _containers.RepeatedScalarFieldContainer[str]
    subject_prefix: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., project_id: _Optional[str] = ..., threshold_amount: _Optional[int] = ..., recipients: _Optional[_Iterable[str]] = ..., subject_prefix: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSpendAlertRequest(_message.Message):
    __slots__ = ("organization", "alert")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    organization: str
    alert: SpendAlert
    def __init__(self, organization: _Optional[str] = ..., alert: _Optional[_Union[SpendAlert, _Mapping]] = ...) -> None: ...

class GetSpendAlertRequest(_message.Message):
    __slots__ = ("organization", "alert_id", "project_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    alert_id: str
    project_id: str
    def __init__(self, organization: _Optional[str] = ..., alert_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListSpendAlertsRequest(_message.Message):
    __slots__ = ("organization", "project_id", "after", "before", "limit", "descending")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    organization: str
    project_id: str
    after: str
    before: str
    limit: int
    descending: bool
    def __init__(self, organization: _Optional[str] = ..., project_id: _Optional[str] = ..., after: _Optional[str] = ..., before: _Optional[str] = ..., limit: _Optional[int] = ..., descending: _Optional[bool] = ...) -> None: ...

class ListSpendAlertsResponse(_message.Message):
    __slots__ = ("alerts", "has_more")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[SpendAlert]
    has_more: bool
    def __init__(self, alerts: _Optional[_Iterable[_Union[SpendAlert, _Mapping]]] = ..., has_more: _Optional[bool] = ...) -> None: ...

class UpdateSpendAlertRequest(_message.Message):
    __slots__ = ("organization", "alert")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    organization: str
    alert: SpendAlert
    def __init__(self, organization: _Optional[str] = ..., alert: _Optional[_Union[SpendAlert, _Mapping]] = ...) -> None: ...

class DeleteSpendAlertRequest(_message.Message):
    __slots__ = ("organization", "alert_id", "project_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    alert_id: str
    project_id: str
    def __init__(self, organization: _Optional[str] = ..., alert_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class DeleteSpendAlertResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
