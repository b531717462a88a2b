"""AsyncMeteringClient and the async trackers, on the session's event loop."""

from __future__ import annotations

import decimal

import pytest

from metering_client import (
    AsyncMeteringClient,
    AsyncUsageLogger,
    AsyncUsageTracker,
    NotFoundError,
    Outcome,
    RejectedEventsError,
)
from tests.metering_client.conftest import event_counts
from tests.support.services import free_port


async def test_async_record_flush_and_results(target, new_org, db):
    org = await new_org()
    async with AsyncMeteringClient(target, org.admin_key, batch_size=100) as client:
        receipts = await client.record_many(
            {"request_id": f"a-{i}", "kind": "embeddings", "input_tokens": 2, "cost": decimal.Decimal("0.5")}
            for i in range(1_000)
        )
        again = await client.record(request_id="a-0", kind="embeddings")
        bad = await client.record(kind="embeddings", currency="dollars")
        assert {(await r).outcome for r in receipts} == {Outcome.RECORDED}
        assert (await again).outcome is Outcome.DUPLICATE
        assert (await bad).field == "currency"
        with pytest.raises(RejectedEventsError):
            await client.flush()
    assert await event_counts(db, org.organization_id) == (1_000, 1_000)


async def test_async_tracker_seed_examples(target, new_org):
    org = await new_org()
    async with AsyncUsageTracker(target=target, api_key=org.admin_key, client_id="my_app") as tracker:
        await tracker.log_request(
            request_id="123", model_name="gpt-4", model_provider="openai", client_id="my_app", user_id="user123",
            config_json="{}", request_raw="", request_json="{}", response_json="{}", response_raw="",
            input_tokens=10, output_tokens=20, input_cost=0.0001, output_cost=0.0002, status="success",
        )
        details = await tracker.get_request_details("123")
        assert details.model_name == "gpt-4" and details.total_cost == pytest.approx(0.0003)
        data = await tracker.get_client_usage_data()
        assert (data.total_requests, data.models_used[0].model_name) == (1, "gpt-4")
        stats = await tracker.get_usage_stats()
        assert stats["total_cost_decimal"] == "0.0003"
        with pytest.raises(NotFoundError):
            await tracker.get_request_details("nope")

        logger = AsyncUsageLogger(client=tracker.client)
        await logger.log_request("124", "gpt-4", "openai", "my_app", "user123", 1, 2, 0.1, 0.2, "error", "boom")
        stats = await logger.get_usage_stats()
        assert (stats["total_requests"], stats["failed_requests"]) == (2, 1)


async def test_async_outage_journals_and_replays(own_server, new_org, db, tmp_path):
    org = await new_org()
    port = free_port()
    journal = tmp_path / "a.jsonl"
    client = AsyncMeteringClient(f"127.0.0.1:{port}", org.admin_key, journal_path=journal, retry_budget=0.3,
                                 attempt_timeout=0.3)
    receipts = [await client.record(kind="completions", input_tokens=1) for _ in range(300)]
    await client.flush()  # nobody listens on the port: journaled
    assert {(await r).outcome for r in receipts} == {Outcome.JOURNALED}
    assert client.delivery_status().journaled == 300

    await own_server(port)
    later = AsyncMeteringClient(f"127.0.0.1:{port}", org.admin_key, journal_path=journal)
    await client.close()  # still offline for this one: may replay too, duplicates are harmless
    await later.close()   # a fresh client replays the journal when it starts or closes
    assert journal.stat().st_size == 0
    assert await event_counts(db, org.organization_id) == (300, 300)
