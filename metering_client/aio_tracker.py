"""AsyncUsageTracker and AsyncUsageLogger: tracker.py's classes for asyncio, method for method."""

from __future__ import annotations

from typing import Any, Self

from metering_client import seed
from metering_client.aio import AsyncMeteringClient
from metering_client.delivery import DeliveryStatus
from metering_client.results import Failure
from metering_client.seed import ClientUsageData, RequestDetails
from metering_client.tracker import _client_and_id


class _AsyncUsage:
    def __init__(
        self, config: Any = None, *, client: AsyncMeteringClient | None = None, target: str | None = None,
        api_key: str | None = None, client_id: str | None = None, **client_options: Any,
    ) -> None:
        self.client, self._owns_client, self.client_id = _client_and_id(
            config, client, target, api_key, client_id, AsyncMeteringClient, client_options
        )

    async def get_usage_stats(self) -> dict[str, Any]:
        await self.client.sync()
        return seed.usage_stats((await self.client.query_usage(seed.stats_request())).buckets)

    async def flush(self, timeout: float | None = None) -> None:
        await self.client.flush(timeout)

    def failures(self) -> list[Failure]:
        return self.client.failures()

    def delivery_status(self) -> DeliveryStatus:
        return self.client.delivery_status()

    async def close(self, timeout: float | None = None) -> None:
        if self._owns_client:
            await self.client.close(timeout)
        else:
            await self.client.flush(timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncUsageLogger(_AsyncUsage):
    async def log_request(
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
        await self.client.record(**seed.request_fields(
            request_id=request_id, model_name=model_name, model_provider=model_provider,
            client_id=client_id or self.client_id, user_id=user_id, input_tokens=input_tokens,
            output_tokens=output_tokens, input_cost=input_cost, output_cost=output_cost, status_=status,
            error_message=error_message, reservation_id=reservation_id, extra=fields,
        ))


class AsyncUsageTracker(_AsyncUsage):
    async def log_request(
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
        await self.client.record(**seed.request_fields(
            request_id=request_id, model_name=model_name, model_provider=model_provider,
            client_id=client_id or self.client_id, user_id=user_id, config_json=config_json,
            request_raw=request_raw, request_json=request_json, response_json=response_json,
            response_raw=response_raw, input_tokens=input_tokens, output_tokens=output_tokens,
            input_cost=input_cost, output_cost=output_cost, status_=status, error_message=error_message,
            reservation_id=reservation_id, extra=fields,
        ))

    async def get_client_usage_data(self, client_id: str | None = None) -> ClientUsageData:
        client_id = client_id or self.client_id
        if not client_id:
            raise ValueError("no client_id: pass one or configure client_id")
        await self.client.sync()
        usage = await self.client.get_client_usage(client_id, recent_limit=seed.RECENT_REQUESTS)
        return seed.client_usage_data(usage, await self.client.query_usage(seed.unpriced_request(client_id)))

    async def get_request_details(self, request_id: str) -> RequestDetails:
        await self.client.sync()
        return seed.request_details(await self.client.get_event(request_id=request_id))
