"""Python SDK for the metering service (DESIGN §8).

    from metering_client import UsageTracker
    tracker = UsageTracker(target="127.0.0.1:50051", api_key="mk_...", client_id="my_app")
    tracker.log_request(request_id="123", model_name="gpt-4", ...)   # queued, delivered in the background

MeteringClient / AsyncMeteringClient record any event field; UsageTracker / UsageLogger (and their
Async twins) speak seed 003's API. Delivery is batched, retried with the same request_id, flushed at
exit, and journaled to a local file when the server stays unreachable.
"""

from metering_client.aio import AsyncMeteringClient
from metering_client.aio_tracker import AsyncUsageLogger, AsyncUsageTracker
from metering_client.client import MeteringClient
from metering_client.delivery import DeliveryStatus
from metering_client.models import ClientUsageData, ModelUsage, RequestDetails, RequestSummary
from metering_client.receipts import AsyncReceipt, Receipt
from metering_client.results import (
    ApiError,
    DeliveryError,
    Failure,
    ItemResult,
    MeteringClientError,
    NotFoundError,
    Outcome,
    RejectedEventsError,
)
from metering_client.tracker import UsageLogger, UsageTracker

UsageClass = UsageTracker  # the seed's name

__all__ = [
    "ApiError", "AsyncMeteringClient", "AsyncReceipt", "AsyncUsageLogger", "AsyncUsageTracker", "ClientUsageData",
    "DeliveryError", "DeliveryStatus", "Failure", "ItemResult", "MeteringClient", "MeteringClientError",
    "ModelUsage", "NotFoundError", "Outcome", "Receipt", "RejectedEventsError", "RequestDetails", "RequestSummary",
    "UsageClass", "UsageLogger", "UsageTracker",
]
