"""UsageTracker (seed 003's UsageClass) and UsageLogger, on top of MeteringClient.

Construction, any of:
    UsageTracker(target="127.0.0.1:50051", api_key=KEY)       # or $METERING_TARGET / $METERING_API_KEY
    UsageTracker(client=existing_client)                      # shares it; close() leaves it open
    UsageTracker(config)                                      # seed style: a dict or object carrying
                                                              # target, api_key, client_id (tls, root_certificates)
Other keyword arguments (batch_size, journal_path, on_failure, ...) go to MeteringClient.
log_request() queues and returns at once; the reads flush first, so they see your own writes.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

from metering_client import seed
from metering_client.aio import AsyncMeteringClient
from metering_client.client import MeteringClient
from metering_client.config import from_config
from metering_client.delivery import DeliveryStatus
from metering_client.results import Failure
from metering_client.seed import ClientUsageData, RequestDetails

C = TypeVar("C", MeteringClient, AsyncMeteringClient)


def _client_and_id(
    config: Any, client: C | None, target: str | None, api_key: str | None, client_id: str | None,
    factory: type[C], options: dict[str, Any],
) -> tuple[C, bool, str | None]:
    """(client, owned, default client_id) from the accepted constructor styles."""
    if isinstance(config, factory):
        client, config = config, None
    if client is not None:
        if target or api_key or options:
            raise TypeError("pass either client=... or connection arguments, not both")
        default: str | None = client_id or from_config(config).get("client_id") or client.settings.client_id
        return client, False, default
    made = factory(target, api_key, config=config, client_id=client_id, **options)
    return made, True, made.settings.client_id


class _Usage:
    """What both share: construction, get_usage_stats() and delivery control."""

    def __init__(
        self, config: Any = None, *, client: MeteringClient | None = None, target: str | None = None,
        api_key: str | None = None, client_id: str | None = None, **client_options: Any,
    ) -> None:
        self.client, self._owns_client, self.client_id = _client_and_id(
            config, client, target, api_key, client_id, MeteringClient, client_options
        )

    def get_usage_stats(self) -> dict[str, Any]:
        """Usage statistics from the server, for everything these credentials may see:
        total_requests, successful_requests, failed_requests, total_input_tokens,
        total_output_tokens, total_cost (float), total_cost_decimal (exact, str), unpriced_requests
        (requests without a cost or a price: not in total_cost, never costed at 0), last_used, and
        the same per model ("models": model_name, model_provider, ...) and per client ("clients")."""
        self.client.sync()
        return seed.usage_stats(self.client.query_usage(seed.stats_request()).buckets)

    # -- delivery control ---------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait for delivery of everything logged so far; raises like MeteringClient.flush()."""
        self.client.flush(timeout)

    def failures(self) -> list[Failure]:
        return self.client.failures()

    def delivery_status(self) -> DeliveryStatus:
        return self.client.delivery_status()

    def close(self, timeout: float | None = None) -> None:
        """Close the client if this object made it, else just flush."""
        if self._owns_client:
            self.client.close(timeout)
        else:
            self.client.flush(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UsageLogger(_Usage):
    """The simpler one: log_request() without payloads, and get_usage_stats()."""

    def log_request(
        self,
        request_id: str,
        model_name: str,
        model_provider: str,
        client_id: str,
        user_id: str,
        input_tokens: int,
        output_tokens: int,
        input_cost: float | None,
        output_cost: float | None,
        status: str,
        error_message: str | None = None,
        *,
        reservation_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Log a request (queued; delivered in the background). Costs are kept as exact decimals
        (floats via their shortest repr: 0.0001 stays 0.0001); None: not known, priced by the server's
        price book or reported as unpriced (never $0). `reservation_id`: the reservation this
        request settles (MeteringClient.reserve / check(reserve=True)); recorded through a client
        whose reserve() block holds it, the block then does not release it. Extra keyword arguments
        are other event fields (timestamp, labels, project_id, kind, ...)."""
        self.client.record(**seed.request_fields(
            request_id=request_id, model_name=model_name, model_provider=model_provider,
            client_id=client_id or self.client_id, user_id=user_id, input_tokens=input_tokens,
            output_tokens=output_tokens, input_cost=input_cost, output_cost=output_cost, status_=status,
            error_message=error_message, reservation_id=reservation_id, extra=fields,
        ))


class UsageTracker(_Usage):
    """Tracks requests with their payloads and answers per-client and per-request questions."""

    def log_request(
        self,
        request_id: str,
        model_name: str,
        model_provider: str,
        client_id: str,
        user_id: str,
        config_json: str,
        request_raw: str,
        request_json: str,
        response_json: str,
        response_raw: str,
        input_tokens: int,
        output_tokens: int,
        input_cost: float | None,
        output_cost: float | None,
        status: str,
        error_message: str | None = None,
        *,
        reservation_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Log a request with its payloads (queued; delivered in the background); `reservation_id`
        and the extra fields as in UsageLogger.log_request."""
        self.client.record(**seed.request_fields(
            request_id=request_id, model_name=model_name, model_provider=model_provider,
            client_id=client_id or self.client_id, user_id=user_id, config_json=config_json,
            request_raw=request_raw, request_json=request_json, response_json=response_json,
            response_raw=response_raw, input_tokens=input_tokens, output_tokens=output_tokens,
            input_cost=input_cost, output_cost=output_cost, status_=status, error_message=error_message,
            reservation_id=reservation_id, extra=fields,
        ))

    def get_client_usage_data(self, client_id: str | None = None) -> ClientUsageData:
        """Totals, per-model usage and the 10 most recent requests of a client (default: the
        configured client_id)."""
        client_id = client_id or self.client_id
        if not client_id:
            raise ValueError("no client_id: pass one or configure client_id")
        self.client.sync()
        return seed.client_usage_data(self.client.get_client_usage(client_id, recent_limit=seed.RECENT_REQUESTS),
                                      self.client.query_usage(seed.unpriced_request(client_id)))

    def get_request_details(self, request_id: str) -> RequestDetails:
        """Everything recorded for one request. Raises NotFoundError if there is no such request."""
        self.client.sync()
        return seed.request_details(self.client.get_event(request_id=request_id))
