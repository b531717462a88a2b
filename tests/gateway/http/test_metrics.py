"""GET /metrics over real HTTP: every request timed by method, route template (never the raw
path) and status; the events the gateway ingests counted by the server as path `rest`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from metering.metrics import CONTENT_TYPE, serve_metrics
from server.core.metrics import REGISTRY
from tests.gateway.conftest import Tenant
from tests.support.prometheus import Scrape, scrape

SECONDS = "metering_http_request_duration_seconds_count"


@pytest.fixture(scope="module")
async def server_metrics() -> AsyncIterator[str]:
    served = serve_metrics(("127.0.0.1", 0), REGISTRY, "METERING_METRICS_ADDR")
    yield f"http://127.0.0.1:{served.port}/metrics"
    served.close()


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_requests_are_timed_by_route_template_and_rest_events_counted(
        live_gateway: str, server_metrics: str, new_tenant: Callable[[], Awaitable[Tenant]]):
    t = await new_tenant()
    missing = str(uuid.uuid4())
    before, server_before = await scrape(f"{live_gateway}/metrics"), await scrape(server_metrics)
    async with httpx.AsyncClient(base_url=live_gateway) as http:
        for i in range(2):
            reply = await http.post("/v1/events", json={"kind": "completions", "request_id": f"m{i}"},
                                    headers=t.admin.headers)
            assert reply.status_code == 200, reply.text
        body = {"api_name": "llm", "endpoint": "/chat", "units_used": 3, "cost_usd": 0.01}
        usage = await http.post("/usage", json=body, headers=t.member.headers)
        assert usage.status_code == 200, usage.text
        assert (await http.get(f"/usage/{missing}", headers=t.admin.headers)).status_code == 404
        assert (await http.get(f"/no/such/{missing}")).status_code == 404
    after, server_after = await scrape(f"{live_gateway}/metrics"), await scrape(server_metrics)

    assert moved(before, after, SECONDS, method="POST", route="/v1/events", status="200") == 2
    assert moved(before, after, SECONDS, method="POST", route="/usage", status="200") == 1
    assert moved(before, after, SECONDS, method="GET", route="/usage/{usage_id}", status="404") == 1
    assert moved(before, after, SECONDS, method="GET", route="unmatched", status="404") == 1
    assert after.types["metering_http_request_duration_seconds"] == "histogram"
    # the raw path (its ids) is never a label value
    assert not [s for s in after.samples if any(missing in v for v in s.labels.values())]
    assert moved(server_before, server_after, "metering_events_ingested_total", path="rest", outcome="recorded") == 3


async def test_the_answer_cache_counts_hits_and_misses(live_gateway: str, new_tenant: Callable[[], Awaitable[Tenant]]):
    t = await new_tenant()
    start = 1583020800  # 2020-03-01: settled days with nothing in them
    params: dict[str, str | int] = {"start_time": start, "end_time": start + 3 * 86400, "bucket_width": "1d"}
    name = "metering_query_cache_lookups_total"
    async with httpx.AsyncClient(base_url=live_gateway) as http:
        scrapes = [await scrape(f"{live_gateway}/metrics")]
        for _ in range(2):
            reply = await http.get("/v1/organization/usage/completions", params=params, headers=t.admin.headers)
            assert reply.status_code == 200 and len(reply.json()["data"]) == 3, reply.text
            scrapes.append(await scrape(f"{live_gateway}/metrics"))
    before, middle, after = scrapes
    assert moved(before, middle, name, cache="gateway_answers", result="miss") == 3  # rendered, then kept
    assert moved(middle, after, name, cache="gateway_answers", result="hit") == 3  # the caller's kept renderings
    assert moved(middle, after, name, cache="gateway_answers", result="miss") == 0


async def test_metrics_is_prometheus_text_and_documented(live_gateway: str):
    async with httpx.AsyncClient(base_url=live_gateway) as http:
        reply = await http.get("/metrics")
        document = (await http.get("/openapi.json")).json()
    assert reply.status_code == 200 and reply.headers["content-type"] == CONTENT_TYPE
    assert "# TYPE metering_http_request_duration_seconds histogram" in reply.text
    assert "process_cpu_seconds_total" in reply.text  # the process's own metrics too
    assert document["paths"]["/metrics"]["get"]["security"] == []
