"""Seed 003's examples, run against the real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import types

import pytest

from metering_client import (
    ClientUsageData,
    MeteringClient,
    ModelUsage,
    NotFoundError,
    RequestDetails,
    RequestSummary,
    UsageClass,
    UsageLogger,
    UsageTracker,
)


def seed_example(client: types.SimpleNamespace, request_id: str = "123") -> None:
    """The seed's log_request example, verbatim apart from the request id."""
    client.usage_tracker.log_request(
        request_id=request_id,
        model_name="gpt-4",
        model_provider="openai",
        client_id="my_app",
        user_id="user123",
        config_json="{}",
        request_raw="",
        request_json="{}",
        response_json="{}",
        response_raw="",
        input_tokens=10,
        output_tokens=20,
        input_cost=0.0001,
        output_cost=0.0002,
        status="success"
    )


async def test_seed_examples(target, new_org, db):
    org = await new_org()

    def run() -> tuple[dict, ClientUsageData, RequestDetails]:
        client = types.SimpleNamespace(usage_tracker=UsageTracker(target=target, api_key=org.admin_key,
                                                                 client_id="my_app"))
        seed_example(client)
        usage_stats = client.usage_tracker.get_usage_stats()
        usage_data = client.usage_tracker.get_client_usage_data()
        request_details = client.usage_tracker.get_request_details("123")
        client.usage_tracker.close()
        return usage_stats, usage_data, request_details

    usage_stats, usage_data, details = await asyncio.to_thread(run)

    assert usage_stats["total_requests"] == 1
    assert usage_stats["successful_requests"] == 1 and usage_stats["failed_requests"] == 0
    assert usage_stats["total_input_tokens"] == 10 and usage_stats["total_output_tokens"] == 20
    assert usage_stats["total_cost_decimal"] == "0.0003"
    assert usage_stats["total_cost"] == pytest.approx(0.0003)
    assert [m["model_name"] for m in usage_stats["models"]] == ["gpt-4"]
    assert [c["client_id"] for c in usage_stats["clients"]] == ["my_app"]

    assert isinstance(usage_data, ClientUsageData)
    assert usage_data.client_id == "my_app" and usage_data.total_requests == 1
    assert usage_data.successful_requests == 1 and usage_data.failed_requests == 0
    assert (usage_data.total_input_tokens, usage_data.total_output_tokens) == (10, 20)
    assert usage_data.total_cost == pytest.approx(0.0003)
    [model] = usage_data.models_used
    assert isinstance(model, ModelUsage)
    assert (model.model_name, model.model_provider, model.total_input_tokens) == ("gpt-4", "openai", 10)
    assert model.last_used.tzinfo is not None
    [recent] = usage_data.recent_requests
    assert isinstance(recent, RequestSummary)
    assert (recent.request_id, recent.status, recent.error_message) == ("123", "success", None)

    assert isinstance(details, RequestDetails)
    assert details.model_dump() == {
        "request_id": "123", "timestamp": details.timestamp, "model_name": "gpt-4", "model_provider": "openai",
        "client_id": "my_app", "user_id": "user123", "config_json": "{}", "request_raw": "", "request_json": "{}",
        "response_json": "{}", "response_raw": "", "input_tokens": 10, "output_tokens": 20,
        "input_cost": 0.0001, "output_cost": 0.0002, "total_cost": 0.0003, "status": "success",
        "error_message": None, "unpriced": False,
    }
    assert abs(details.timestamp - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    # Money is stored exactly, not as the binary float 0.0001 (= 0.000100000000000000004792...).
    row = await db.fetchrow(
        "select e.input_cost, e.output_cost, e.cost from events e join organizations o using (org_id)"
        " where o.id = $1 and e.request_id = '123'", org.organization_id,
    )
    assert (row["input_cost"], row["output_cost"], row["cost"]) == (
        decimal.Decimal("0.0001"), decimal.Decimal("0.0002"), decimal.Decimal("0.0003"),
    )


async def test_usage_logger_example_and_stats(target, new_org):
    org = await new_org()

    def run() -> dict:
        with UsageLogger({"target": target, "api_key": org.admin_key}) as logger:
            logger.log_request(
                request_id="123",
                model_name="gpt-4",
                model_provider="openai",
                client_id="my_app",
                user_id="user123",
                input_tokens=10,
                output_tokens=20,
                input_cost=0.0001,
                output_cost=0.0002,
                status="success"
            )
            # positional, in the seed's order, and a failed call
            logger.log_request("124", "claude-3", "anthropic", "other_app", "user123", 5, 0, 0.00005, 0, "failed",
                               "rate limited")
            logger.log_request("123", "gpt-4", "openai", "my_app", "user123", 10, 20, 0.0001, 0.0002, "success")
            return logger.get_usage_stats()

    usage_stats = await asyncio.to_thread(run)
    assert usage_stats["total_requests"] == 2  # "123" twice is one request (idempotency key)
    assert (usage_stats["successful_requests"], usage_stats["failed_requests"]) == (1, 1)
    assert usage_stats["total_input_tokens"] == 15
    assert usage_stats["total_cost_decimal"] == "0.00035"
    by_model = {m["model_name"]: m for m in usage_stats["models"]}
    assert by_model["claude-3"]["failed_requests"] == 1 and by_model["claude-3"]["model_provider"] == "anthropic"
    by_client = {c["client_id"]: c for c in usage_stats["clients"]}
    assert by_client["my_app"]["total_requests"] == 1 and by_client["other_app"]["total_requests"] == 1


async def test_tracker_error_request_and_payloads(target, new_org):
    org = await new_org()

    def run() -> tuple[ClientUsageData, RequestDetails]:
        with UsageClass(config=None, target=target, api_key=org.admin_key) as tracker:
            tracker.log_request("r-err", "gpt-4o", "openai", "bot", "u1", '{"temperature": 0}', "raw req",
                                '{"messages": []}', '{"error": "boom"}', "raw resp", 7, 0, 7e-7, 0, "error",
                                error_message="upstream 500", labels={"task": "t1"})
            return tracker.get_client_usage_data("bot"), tracker.get_request_details("r-err")

    data, details = await asyncio.to_thread(run)
    assert (data.total_requests, data.failed_requests, data.successful_requests) == (1, 1, 0)
    assert data.recent_requests[0].error_message == "upstream 500"
    assert details.error_message == "upstream 500" and details.status == "error"
    assert (details.config_json, details.request_raw, details.response_raw) == (
        '{"temperature": 0}', "raw req", "raw resp",
    )
    assert details.input_cost == pytest.approx(7e-7)


async def test_construction_styles(target, new_org, monkeypatch):
    org = await new_org()

    class Request:  # a seed-style config object
        def __init__(self) -> None:
            self.target = target
            self.api_key = org.admin_key
            self.client_id = "cfg_app"

    def run() -> None:
        with UsageTracker(Request()) as tracker:
            assert tracker.client_id == "cfg_app"
            tracker.log_request("c1", "m", "p", "", "", "", "", "", "", "", 1, 1, 0, 0, "success")
            assert tracker.get_client_usage_data().total_requests == 1  # client_id defaulted from the config

        shared = MeteringClient(target, org.admin_key)
        tracker = UsageTracker(client=shared, client_id="shared_app")
        logger = UsageLogger(shared)
        tracker.log_request("c2", "m", "p", "", "", "", "", "", "", "", 1, 1, 0, 0, "success")
        logger.log_request("c3", "m", "p", "shared_app", "", 1, 1, 0, 0, "success")
        tracker.close()  # not the owner: flushes, leaves the client open
        assert tracker.get_client_usage_data().total_requests == 2
        shared.close()

        monkeypatch.setenv("METERING_TARGET", target)
        monkeypatch.setenv("METERING_API_KEY", org.admin_key)
        with UsageTracker() as tracker:
            with pytest.raises(NotFoundError):
                tracker.get_request_details("no-such-request")
            with pytest.raises(ValueError, match="client_id"):
                tracker.get_client_usage_data()
        assert org.admin_key not in repr(tracker.client.settings)

    await asyncio.to_thread(run)

    with MeteringClient(target, org.admin_key) as client, pytest.raises(TypeError, match="either client"):
        UsageTracker(client=client, target=target)
    with pytest.raises(TypeError, match="carries none"):
        UsageTracker(object())


async def test_unpriced_usage_is_visible_in_every_report(target, new_org):
    """1,000 requests without a cost, of a model the price book does not know, beside one priced request:
    the reports say so (unpriced_requests, unpriced) rather than a bare total_cost of 0.0."""
    org = await new_org()

    payloads = dict.fromkeys(("config_json", "request_raw", "request_json", "response_json", "response_raw"), "")

    def run() -> tuple[dict, ClientUsageData, RequestDetails, RequestDetails]:
        with UsageTracker(target=target, api_key=org.admin_key, client_id="app") as tracker:
            for i in range(1000):
                tracker.log_request(request_id=f"u-{i}", model_name="no-such-model", model_provider="nobody",
                                    client_id="app", user_id="u", input_tokens=10, output_tokens=5,
                                    input_cost=None, output_cost=None, status="success", **payloads)
            tracker.log_request(request_id="priced", model_name="gpt-4", model_provider="openai", client_id="app",
                                user_id="u", input_tokens=1, output_tokens=1, input_cost=0.25, output_cost=0.5,
                                status="success", **payloads)
            return (tracker.get_usage_stats(), tracker.get_client_usage_data(), tracker.get_request_details("u-7"),
                    tracker.get_request_details("priced"))

    stats, data, unpriced, priced = await asyncio.to_thread(run)
    assert (stats["total_requests"], stats["unpriced_requests"], stats["total_cost_decimal"]) == (1001, 1000, "0.75")
    by_model = {m["model_name"]: m for m in stats["models"]}
    assert (by_model["no-such-model"]["unpriced_requests"], by_model["gpt-4"]["unpriced_requests"]) == (1000, 0)
    assert [(c["client_id"], c["unpriced_requests"]) for c in stats["clients"]] == [("app", 1000)]
    assert (data.total_requests, data.unpriced_requests, data.total_cost) == (1001, 1000, 0.75)
    assert {m.model_name: m.unpriced_requests for m in data.models_used} == {"no-such-model": 1000, "gpt-4": 0}
    assert {r.request_id: r.unpriced for r in data.recent_requests}["priced"] is False
    assert all(r.unpriced for r in data.recent_requests if r.request_id != "priced")
    assert (unpriced.unpriced, unpriced.total_cost, priced.unpriced) == (True, 0.0, False)
