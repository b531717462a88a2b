"""The official `openai` SDK, unchanged, against the gateway served by uvicorn on loopback:
every usage endpoint (decisions included) across several pages parses into the SDK's own types,
with the numbers that were recorded; costs with every group_by and filter the SDK offers; its
errors parse too."""

import asyncio
import datetime as dt

import openai
import pytest

from gateway.dialects.openai.costs import cost_rpc
from gateway.dialects.openai.usage import DERIVED, ENDPOINTS
from metering.v1 import admin_pb2
from tests.conftest import MASTER, bearer
from tests.gateway.conftest import module_org
from tests.gateway.usage_events import UTC, event, record, unix

DAY = dt.datetime(2024, 4, 1, tzinfo=UTC)
DAYS = 5
PAGE = 2  # buckets per page: 5 days are 3 pages
# The SDK's method for each endpoint and its response type's name.
SDK_TYPES = {
    "completions": "UsageCompletionsResponse", "embeddings": "UsageEmbeddingsResponse",
    "moderations": "UsageModerationsResponse", "images": "UsageImagesResponse",
    "audio_speeches": "UsageAudioSpeechesResponse", "audio_transcriptions": "UsageAudioTranscriptionsResponse",
    "vector_stores": "UsageVectorStoresResponse", "code_interpreter_sessions": "UsageCodeInterpreterSessionsResponse",
    "file_search_calls": "UsageFileSearchCallsResponse", "web_search_calls": "UsageWebSearchCallsResponse",
    "decisions": "UsageDecisionsResponse",
}


def counters(e, d):
    """The counters of endpoint e's event on day d: 10 * (d + 1) + the metric's index; 12-hour
    cache writes of 3 * (d + 1)."""
    return {name: 10 * (d + 1) + i for i, name in enumerate(e.metrics)
            if name != "num_model_requests" and name not in DERIVED}


def expected(e, d, name):
    c = counters(e, d)
    if name == "num_model_requests":
        return 1
    if name == "input_uncached_tokens":
        return c["input_tokens"] - c["input_cached_tokens"] - c["input_cache_write_tokens"]
    if name == "input_cache_write_12h_tokens":
        return 3 * (d + 1)
    if name == "input_cache_write_30m_tokens":
        return c["input_cache_write_tokens"] - 3 * (d + 1)
    return c[name]


@pytest.fixture(scope="module")
async def org(stubs):
    """An organization with a project and, for every endpoint, one event a day for DAYS days."""
    made = await module_org(stubs, "sdk")
    key = made.admin_key
    project = await stubs.admin.CreateProject(
        admin_pb2.CreateProjectRequest(organization=made.organization_id, name="sdk"), metadata=MASTER)
    events = []
    for e in ENDPOINTS:
        for d in range(DAYS):
            events.append(event(
                e.kind, DAY + dt.timedelta(days=d, hours=d + 1), model=f"model-{d % 2}", project_id=project.project_id,
                batch=d == 3, service_tier="default",
                labels={"size": "1024x1024", "source": "image.edit", "vector_store_id": "vs_1",
                        "context_level": "medium", **({"api_source": "agents_api"} if d % 2 else {})},
                counters={"input_cache_write_12h_tokens": 3 * (d + 1)}, **counters(e, d),
            ))
    await record(stubs, key, *events)
    key_id = (await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))).api_key_id
    return key, project.project_id, key_id


def client(url, key):
    # This SDK authenticates the admin (usage) endpoints with `admin_api_key` (OPENAI_ADMIN_KEY), not `api_key`.
    return openai.OpenAI(admin_api_key=key, base_url=f"{url}/v1", max_retries=0)


async def all_pages(method, **params):
    """Calls an SDK method in a thread (the event loop serves the gateway) page after page."""
    pages = [await asyncio.to_thread(method, **params)]
    while pages[-1].has_more:
        pages.append(await asyncio.to_thread(method, **params, page=pages[-1].next_page))
    return pages


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
async def test_every_usage_endpoint_through_the_sdk(endpoint, live_gateway, org):
    key, project_id, key_id = org
    with client(live_gateway, key) as sdk:
        pages = await all_pages(getattr(sdk.admin.organization.usage, endpoint.name), start_time=unix(DAY),
                                end_time=unix(DAY + dt.timedelta(days=DAYS)), bucket_width="1d", limit=PAGE,
                                group_by=list(endpoint.keys), project_ids=[project_id])
    assert [type(p).__name__ for p in pages] == [SDK_TYPES[endpoint.name]] * 3
    assert [len(p.data) for p in pages] == [2, 2, 1]
    buckets = [b for p in pages for b in p.data]
    assert [b.start_time for b in buckets] == [unix(DAY + dt.timedelta(days=d)) for d in range(DAYS)]
    for d, b in enumerate(buckets):
        assert b.object == "bucket" and b.end_time == b.start_time + 86400
        [result] = b.results
        assert result.object == endpoint.result
        for name in endpoint.metrics:
            assert getattr(result, name) == expected(endpoint, d, name), (name, d)
        assert result.project_id == project_id
        if "model" in endpoint.keys:
            assert result.model == f"model-{d % 2}"
        if "api_key_id" in endpoint.keys:
            assert result.api_key_id == key_id
        if "batch" in endpoint.keys:
            assert result.batch is (d == 3)
        if "service_tier" in endpoint.keys:
            assert result.service_tier == "default"
        if "size" in endpoint.keys:
            assert (result.size, result.source) == ("1024x1024", "image.edit")
        if "vector_store_id" in endpoint.keys:
            assert result.vector_store_id == "vs_1"
        if "context_level" in endpoint.keys:
            assert result.context_level == "medium"
        if "api_source" in endpoint.keys:
            assert result.api_source == ("agents_api" if d % 2 else "unlabeled")


async def test_sdk_defaults_and_hourly_buckets(live_gateway, org):
    key, _, _ = org
    with client(live_gateway, key) as sdk:
        await check_defaults_and_hours(sdk.admin.organization.usage)


async def check_defaults_and_hours(usage):
    ungrouped = await asyncio.to_thread(usage.completions, start_time=unix(DAY), end_time=unix(DAY) + 7 * 86400)
    assert len(ungrouped.data) == 7 and not ungrouped.has_more and ungrouped.next_page is None
    [first] = ungrouped.data[0].results
    assert first.model is None and first.project_id is None and first.batch is None
    assert ungrouped.data[-1].results == []
    hours = await all_pages(usage.embeddings, start_time=unix(DAY), end_time=unix(DAY) + 2 * 86400,
                            bucket_width="1h", models=["model-1"])
    buckets = [b for p in hours for b in p.data]
    assert len(hours) == 2 and len(buckets) == 48
    assert [(b.start_time - unix(DAY)) // 3600 for b in buckets if b.results] == [24 + 2]
    batch_only = await asyncio.to_thread(usage.completions, start_time=unix(DAY), end_time=unix(DAY) + 7 * 86400,
                                         batch=True)
    assert [sum(r.input_tokens for r in b.results) for b in batch_only.data] == [0, 0, 0, 40, 0, 0, 0]


async def test_sdk_errors(live_gateway, org):
    key, _, _ = org
    with client(live_gateway, key) as sdk, client(live_gateway, "sk-not-a-key") as stranger:
        usage = sdk.admin.organization.usage
        with pytest.raises(openai.BadRequestError) as bad:
            await asyncio.to_thread(usage.completions, start_time=unix(DAY), limit=32)
        with pytest.raises(openai.AuthenticationError) as unauthenticated:
            await asyncio.to_thread(stranger.admin.organization.usage.embeddings, start_time=unix(DAY))
        with pytest.raises(openai.BadRequestError) as costs:
            await asyncio.to_thread(usage.costs, start_time=unix(DAY), group_by=["model"])
        with pytest.raises(openai.BadRequestError) as line_items:
            await asyncio.to_thread(usage.costs, start_time=unix(DAY), line_items=["gpt-4o input"])
    assert bad.value.status_code == 400 and bad.value.param == "limit" and bad.value.type == "invalid_request_error"
    assert unauthenticated.value.code == "invalid_api_key"
    assert costs.value.param == "group_by"
    assert line_items.value.param == "line_items" and "is not a line item" in line_items.value.message


@pytest.mark.skipif(cost_rpc() is None, reason="this build has no CostService.GetCosts")
async def test_costs_through_the_sdk(live_gateway, new_org, stubs):
    made = await new_org()
    key = made.admin_key
    project_id = (await stubs.admin.CreateProject(
        admin_pb2.CreateProjectRequest(organization=made.organization_id, name="costs"), metadata=MASTER)).project_id
    # Caller-priced events, so the amounts do not depend on a price book.
    await record(stubs, key, *[
        event("embeddings", DAY + dt.timedelta(days=d, hours=12), model="emb", project_id=project_id,
              input_tokens=10, input_cost=f"0.{d + 1}5", labels={"api_source": "agents_api"} if d == 1 else {})
        for d in range(DAYS)])
    whoami = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))
    with client(live_gateway, key) as sdk:
        pages = await all_pages(sdk.admin.organization.usage.costs, start_time=unix(DAY),
                                end_time=unix(DAY + dt.timedelta(days=DAYS)), limit=PAGE,
                                group_by=["project_id", "line_item"], project_ids=[project_id])
        everything = await all_pages(sdk.admin.organization.usage.costs, start_time=unix(DAY),
                                     end_time=unix(DAY + dt.timedelta(days=DAYS)), limit=PAGE,
                                     group_by=["project_id", "user_id", "line_item", "api_key_id", "api_source"],
                                     project_ids=[project_id], api_key_ids=[whoami.api_key_id],
                                     line_items=["emb, input", "emb, output"])
    assert [type(p).__name__ for p in pages] == ["UsageCostsResponse"] * 3
    items = {(b.start_time, r.line_item): r for p in pages for b in p.data for r in b.results}
    for d in range(DAYS):
        r = items[(unix(DAY + dt.timedelta(days=d)), "emb, input")]
        assert type(r).__name__ == "DataResultOrganizationCostsResult" and r.object == "organization.costs.result"
        assert r.amount.value == float(f"0.{d + 1}5") and r.amount.currency == "usd"
        assert (r.project_id, r.quantity, r.quantity_unit) == (project_id, 10, "tokens")
        assert (r.user_id, r.api_source) == (None, None)
    grouped = [(r.project_id, r.user_id, r.line_item, r.api_key_id, r.api_source, r.amount.value)
               for p in everything for b in p.data for r in b.results]
    assert grouped == [(project_id, whoami.user_id or None, "emb, input", whoami.api_key_id,
                        "agents_api" if d == 1 else "unlabeled", float(f"0.{d + 1}5")) for d in range(DAYS)]
