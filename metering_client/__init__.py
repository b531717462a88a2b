"""Python SDK for the metering service (DESIGN §8).

    from metering_client import UsageTracker
    tracker = UsageTracker(target="127.0.0.1:50051", api_key="mk_...", client_id="my_app")
    tracker.log_request(request_id="123", model_name="gpt-4", ...)   # queued, delivered in the background

MeteringClient / AsyncMeteringClient record any event field; UsageTracker / UsageLogger (and their
Async twins) speak seed 003's API. Delivery is batched, retried with the same request_id, flushed at
exit, and journaled to a local file when the server stays unreachable.

Spend control (metering_client/budgets.py): `client.check(model=..., estimated_cost="0.02")` asks the
budgets before a model call (a CheckResult); `with client.reserve(...) as reservation:` holds the
estimate until `reservation.record(...)` (or any event carrying its reservation_id) settles it, and
releases it if the block ends without one.
"""

from metering_client.aio import AsyncMeteringClient
from metering_client.aio_tracker import AsyncUsageLogger, AsyncUsageTracker
from metering_client.budgets import (
    AsyncReservation,
    BudgetExceededError,
    BudgetStatus,
    CheckResult,
    Reservation,
    Scope,
)
from metering_client.client import MeteringClient
from metering_client.delivery import DeliveryStatus
from metering_client.results import (
    ApiError,
    AsyncReceipt,
    DeliveryError,
    Failure,
    ItemResult,
    MeteringClientError,
    NotFoundError,
    Outcome,
    Receipt,
    RejectedEventsError,
)
from metering_client.seed import ClientUsageData, ModelUsage, RequestDetails, RequestSummary
from metering_client.tracker import UsageLogger, UsageTracker

UsageClass = UsageTracker  # the seed's name

__all__ = [
    "ApiError", "AsyncMeteringClient", "AsyncReceipt", "AsyncReservation", "AsyncUsageLogger", "AsyncUsageTracker",
    "BudgetExceededError", "BudgetStatus", "CheckResult", "ClientUsageData", "DeliveryError", "DeliveryStatus",
    "Failure", "ItemResult", "MeteringClient", "MeteringClientError", "ModelUsage", "NotFoundError", "Outcome",
    "Receipt", "RejectedEventsError", "RequestDetails", "RequestSummary", "Reservation", "Scope", "UsageClass",
    "UsageLogger", "UsageTracker",
]
