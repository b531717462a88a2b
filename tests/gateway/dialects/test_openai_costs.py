"""`GET /v1/organization/costs` (seed 004): the seed's call with every parameter, exact amounts
as JSON numbers, grouping, pages, parameter checks; a 501 on a build without the cost RPC."""

import datetime as dt
import re

import pytest

from gateway.dialects.openai import costs as openai_costs
from gateway.dialects.openai.costs import cost_rpc
from metering.v1 import admin_pb2
from tests.conftest import MASTER, bearer
from tests.gateway.usage_events import UTC, event, record, unix

URL = "/v1/organization/costs"
DAY = dt.datetime(2024, 3, 4, tzinfo=UTC)
START = unix(DAY)
RESULT_KEYS = ["object", "amount", "line_item", "project_id", "api_key_id", "quantity", "quantity_unit"]
with_costs = pytest.mark.skipif(cost_rpc() is None, reason="this build has no CostService.GetCosts")


async def project(stubs, t, name):
    created = await stubs.admin.CreateProject(
        admin_pb2.CreateProjectRequest(organization=t.org.organization_id, name=name), metadata=MASTER)
    return created.project_id


async def spend(stubs, t):
    """Caller-priced completions in two projects over three days: (project a, project b)."""
    a, b = await project(stubs, t, "a"), await project(stubs, t, "b")
    await record(stubs, t.admin.key, *[
        event("completions", DAY + dt.timedelta(days=d, hours=1), model="gpt-4o", project_id=p,
              input_tokens=1000 * (d + 1), output_tokens=100, input_cost=f"0.00{d + 1}3", output_cost="0.0001")
        for d in range(3) for p in (a, b)
    ])
    return a, b


@with_costs
async def test_the_seed_call_with_every_parameter(http, new_tenant, stubs):
    t = await new_tenant()
    a, b = await spend(stubs, t)
    # Every parameter of the seed's usageCosts, arrays repeated as its TypeScript client sends them.
    query = [("start_time", START), ("end_time", START + 7 * 86400), ("bucket_width", "1d"),
             ("project_ids", a), ("project_ids", b), ("group_by", "project_id"), ("group_by", "line_item"),
             ("limit", 7)]
    reply = await http.get(URL, params=query, headers=t.admin.headers)
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["object"] == "page" and len(page["data"]) == 7 and page["has_more"] is False
    first = page["data"][0]
    assert (first["object"], first["start_time"], first["end_time"]) == ("bucket", START, START + 86400)
    results = first["results"]
    assert [list(r) for r in results] == [RESULT_KEYS] * 4
    assert [(r["project_id"], r["line_item"], r["amount"], r["quantity"], r["quantity_unit"]) for r in results] == [
        (a, "gpt-4o, input", {"value": 0.0013, "currency": "usd"}, 1000, "tokens"),
        (a, "gpt-4o, output", {"value": 0.0001, "currency": "usd"}, 100, "tokens"),
        (b, "gpt-4o, input", {"value": 0.0013, "currency": "usd"}, 1000, "tokens"),
        (b, "gpt-4o, output", {"value": 0.0001, "currency": "usd"}, 100, "tokens"),
    ]
    assert all(r["api_key_id"] is None and r["object"] == "organization.costs.result" for r in results)
    assert '"value":0.0013,' in reply.text  # a JSON number with exactly the recorded digits
    assert [len(b["results"]) for b in page["data"]] == [4, 4, 4, 0, 0, 0, 0]
    only_a = await http.get(URL, params={"start_time": START, "end_time": START + 86400, "project_ids": a},
                            headers=t.admin.headers)
    [total] = only_a.json()["data"][0]["results"]
    assert total["amount"] == {"value": 0.0014, "currency": "usd"}
    assert (total["project_id"], total["line_item"], total["quantity"], total["quantity_unit"]) == (
        None, None, None, None)


@with_costs
async def test_cost_pages_and_api_key_grouping(http, new_tenant, stubs):
    t = await new_tenant()
    await spend(stubs, t)
    params = {"start_time": START, "end_time": START + 5 * 86400, "limit": 2, "group_by": "api_key_id"}
    buckets = []
    while True:
        reply = await http.get(URL, params=params, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        buckets.extend(reply.json()["data"])
        if not reply.json()["has_more"]:
            break
        params["page"] = reply.json()["next_page"]
    assert [b["start_time"] for b in buckets] == [START + d * 86400 for d in range(5)]
    admin_key = (await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(t.admin.key))).api_key_id
    assert [[(r["api_key_id"], r["amount"]["value"]) for r in b["results"]] for b in buckets] == [
        [(admin_key, 0.0028)], [(admin_key, 0.0048)], [(admin_key, 0.0068)], [], []]
    assert re.search(r'"value":0\.0048\b', str(buckets).replace(" ", "").replace("'", '"'))


async def test_costs_are_501_without_the_cost_rpc(http, new_tenant, monkeypatch):
    t = await new_tenant()
    monkeypatch.setattr(openai_costs, "cost_rpc", lambda: None)  # a build from before prices.proto
    reply = await http.get(URL, params={"start_time": START}, headers=t.admin.headers)
    assert reply.status_code == 501
    assert reply.json()["error"]["type"] == "server_error" and reply.json()["error"]["code"] == "not_implemented"


async def test_cost_parameters_are_checked(http, new_tenant):
    t = await new_tenant()

    async def param_of(**params):
        reply = await http.get(URL, params=params, headers=t.admin.headers)
        assert reply.status_code == 400, reply.text
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        return reply.json()["error"]["param"]

    assert await param_of() == "start_time"
    assert await param_of(start_time=START, bucket_width="1h") == "bucket_width"
    assert await param_of(start_time=START, limit=181) == "limit"
    assert await param_of(start_time=START, limit=0) == "limit"
    assert await param_of(start_time=START, group_by="model") == "group_by"
    assert await param_of(start_time=START, models="x") == "models"
    assert await param_of(start_time=START, line_items="gpt-4o, input") == "line_items"
    assert await param_of(start_time=START, page="nope") == "page"
    ok = await http.get(URL, params={"start_time": START, "limit": 180, "group_by[]": ["line_item", "api_key_id"]},
                        headers=t.admin.headers)
    assert ok.status_code == (200 if cost_rpc() else 501)
