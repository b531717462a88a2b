import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metering.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BudgetPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUDGET_PERIOD_UNSPECIFIED: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_DAY: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_WEEK: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_MONTH: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_QUARTER: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_YEAR: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_TOTAL: _ClassVar[BudgetPeriod]
    BUDGET_PERIOD_ROLLING: _ClassVar[BudgetPeriod]

class BudgetMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUDGET_MODE_UNSPECIFIED: _ClassVar[BudgetMode]
    BUDGET_MODE_ALERT: _ClassVar[BudgetMode]
    BUDGET_MODE_ENFORCE: _ClassVar[BudgetMode]

class UnpricedPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNPRICED_POLICY_UNSPECIFIED: _ClassVar[UnpricedPolicy]
    UNPRICED_POLICY_ALLOW: _ClassVar[UnpricedPolicy]
    UNPRICED_POLICY_DENY: _ClassVar[UnpricedPolicy]

class UnavailablePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNAVAILABLE_POLICY_UNSPECIFIED: _ClassVar[UnavailablePolicy]
    UNAVAILABLE_POLICY_FAIL_OPEN: _ClassVar[UnavailablePolicy]
    UNAVAILABLE_POLICY_FAIL_CLOSED: _ClassVar[UnavailablePolicy]
BUDGET_PERIOD_UNSPECIFIED: BudgetPeriod
BUDGET_PERIOD_DAY: BudgetPeriod
BUDGET_PERIOD_WEEK: BudgetPeriod
BUDGET_PERIOD_MONTH: BudgetPeriod
BUDGET_PERIOD_QUARTER: BudgetPeriod
BUDGET_PERIOD_YEAR: BudgetPeriod
BUDGET_PERIOD_TOTAL: BudgetPeriod
BUDGET_PERIOD_ROLLING: BudgetPeriod
BUDGET_MODE_UNSPECIFIED: BudgetMode
BUDGET_MODE_ALERT: BudgetMode
BUDGET_MODE_ENFORCE: BudgetMode
UNPRICED_POLICY_UNSPECIFIED: UnpricedPolicy
UNPRICED_POLICY_ALLOW: UnpricedPolicy
UNPRICED_POLICY_DENY: UnpricedPolicy
UNAVAILABLE_POLICY_UNSPECIFIED: UnavailablePolicy
UNAVAILABLE_POLICY_FAIL_OPEN: UnavailablePolicy
UNAVAILABLE_POLICY_FAIL_CLOSED: UnavailablePolicy

class Budget(_message.Message):
    __slots__ = ("budget_id", "organization_id", "name", "scope", "metric", "currency", "limit", "period", "time_zone", "week_start", "rolling_window", "mode", "thresholds", "on_unpriced", "on_unavailable", "create_time", "update_time", "state")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    WEEK_START_FIELD_NUMBER: _ClassVar[int]
    ROLLING_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    ON_UNPRICED_FIELD_NUMBER: _ClassVar[int]
    ON_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    organization_id: str
    name: str
    scope: _containers.RepeatedCompositeFieldContainer[_query_pb2.Filter]
    metric: str
    currency: str
    limit: str
    period: BudgetPeriod
    time_zone: str
    week_start: int
    rolling_window: _duration_pb2.Duration
    mode: BudgetMode
    thresholds: _containers.RepeatedScalarFieldContainer[str]
    on_unpriced: UnpricedPolicy
    on_unavailable: UnavailablePolicy
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    state: BudgetState
    def __init__(self, budget_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., name: _Optional[str] = ..., scope: _Optional[_Iterable[_Union[_query_pb2.Filter, _Mapping]]] = ..., metric: _Optional[str] = ..., currency: _Optional[str] = ..., limit: _Optional[str] = ..., period: _Optional[_Union[BudgetPeriod, str]] = ..., time_zone: _Optional[str] = ..., week_start: _Optional[int] = ..., rolling_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mode: _Optional[_Union[BudgetMode, str]] = ..., thresholds: _Optional[_Iterable[str]] = ..., on_unpriced: _Optional[_Union[UnpricedPolicy, str]] = ..., on_unavailable: _Optional[_Union[UnavailablePolicy, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[BudgetState, _Mapping]] = ...) -> None: ...

class BudgetState(_message.Message):
    __slots__ = ("budget_id", "name", "metric", "currency", "mode", "limit", "used", "reserved", "remaining", "period_start", "resets_at", "unpriced_events", "allowed", "reason")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    RESETS_AT_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    name: str
    metric: str
    currency: str
    mode: BudgetMode
    limit: str
    used: str
    reserved: str
    remaining: str
    period_start: _timestamp_pb2.Timestamp
    resets_at: _timestamp_pb2.Timestamp
    unpriced_events: int
    allowed: bool
    reason: str
    def __init__(self, budget_id: _Optional[str] = ..., name: _Optional[str] = ..., metric: _Optional[str] = ..., currency: _Optional[str] = ..., mode: _Optional[_Union[BudgetMode, str]] = ..., limit: _Optional[str] = ..., used: _Optional[str] = ..., reserved: _Optional[str] = ..., remaining: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resets_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unpriced_events: _Optional[int] = ..., allowed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class CreateBudgetRequest(_message.Message):
    __slots__ = ("organization", "budget")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    organization: str
    budget: Budget
    def __init__(self, organization: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...

class GetBudgetRequest(_message.Message):
    __slots__ = ("organization", "budget_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    budget_id: str
    def __init__(self, organization: _Optional[str] = ..., budget_id: _Optional[str] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("organization", "page_size", "page_token")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization: str
    page_size: int
    page_token: str
    def __init__(self, organization: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets", "next_page_token")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    next_page_token: str
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateBudgetRequest(_message.Message):
    __slots__ = ("organization", "budget", "update_mask")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    organization: str
    budget: Budget
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, organization: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., update_mask: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteBudgetRequest(_message.Message):
    __slots__ = ("organization", "budget_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    budget_id: str
    def __init__(self, organization: _Optional[str] = ..., budget_id: _Optional[str] = ...) -> None: ...

class DeleteBudgetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("organization", "project_id", "user_id", "api_key_id", "client_id", "kind", "model", "provider", "endpoint", "api_name", "service_tier", "batch", "currency", "labels", "estimated_cost", "estimated_counters", "reserve", "reservation_ttl", "request_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EstimatedCountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
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
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COUNTERS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_TTL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
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
    currency: str
    labels: _containers.ScalarMap[str, str]
    estimated_cost: str
    estimated_counters: _containers.ScalarMap[str, int]
    reserve: bool
    reservation_ttl: _duration_pb2.Duration
    request_id: str
    def __init__(self, organization: _Optional[str] = ..., project_id: _Optional[str] = ..., user_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., client_id: _Optional[str] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., endpoint: _Optional[str] = ..., api_name: _Optional[str] = ..., service_tier: _Optional[str] = ..., batch: _Optional[bool] = ..., currency: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., estimated_cost: _Optional[str] = ..., estimated_counters: _Optional[_Mapping[str, int]] = ..., reserve: _Optional[bool] = ..., reservation_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "budgets", "reservation_id", "reservation_expire_time", "degraded", "degraded_reason")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    budgets: _containers.RepeatedCompositeFieldContainer[BudgetState]
    reservation_id: str
    reservation_expire_time: _timestamp_pb2.Timestamp
    degraded: bool
    degraded_reason: str
    def __init__(self, allowed: _Optional[bool] = ..., budgets: _Optional[_Iterable[_Union[BudgetState, _Mapping]]] = ..., reservation_id: _Optional[str] = ..., reservation_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ...) -> None: ...

class ReleaseReservationRequest(_message.Message):
    __slots__ = ("organization", "reservation_id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    reservation_id: str
    def __init__(self, organization: _Optional[str] = ..., reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseReservationResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...
