"""`GET /v1/organization/costs` (seed 004): the seed's call with every parameter, exact amounts
as JSON numbers, grouping (also by user and API source), the line_items filter in every array
encoding, OpenAI's quantity units, pages, parameter checks; a 501 on a build without the cost RPC."""

import datetime as dt
import re
from urllib.parse import quote

import pytest

from gateway.dialects.openai import costs as openai_costs
from gateway.dialects.openai.costs import cost_rpc
from metering.v1 import admin_pb2, prices_pb2
from tests.conftest import MASTER, bearer
from tests.gateway.usage_events import UTC, at, event, record, unix

URL = "/v1/organization/costs"
DAY = dt.datetime(2024, 3, 4, tzinfo=UTC)
START = unix(DAY)
RESULT_KEYS = ["object", "amount", "line_item", "project_id", "user_id", "api_key_id", "api_source", "quantity",
               "quantity_unit"]
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
    assert all(r["user_id"] is None and r["api_source"] is None for r in results)
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
    assert await param_of(start_time=START, line_items="gpt-4o") == "line_items"
    assert await param_of(start_time=START, group_by="api_sources") == "group_by"
    assert await param_of(start_time=START, page="nope") == "page"
    ok = await http.get(URL, params={"start_time": START, "limit": 180, "line_items": "gpt-4o, input",
                                     "group_by[]": ["line_item", "api_key_id", "user_id", "api_source"]},
                        headers=t.admin.headers)
    assert ok.status_code == (200 if cost_rpc() else 501)


@with_costs
async def test_grouping_by_user_and_api_source(http, new_tenant, stubs):
    t = await new_tenant()
    when = DAY + dt.timedelta(hours=2)
    await record(stubs, t.member.key, event("completions", when, model="gpt-4o", input_tokens=10, input_cost="0.01",
                                            labels={"api_source": "agents_api"}))
    await record(stubs, t.other.key,
                 event("completions", when, model="gpt-4o", input_tokens=20, input_cost="0.02",
                       labels={"api_source": "responses"}),  # a source OpenAI does not attribute: unlabeled
                 event("completions", when, model="gpt-4o", input_tokens=40, input_cost="0.04",
                       output_tokens=1, output_cost="0.001"))

    async def results(*group_by, **params):
        reply = await http.get(URL, params={"start_time": START, "end_time": START + 86400, "group_by": group_by,
                                            **params}, headers=t.org_admin)
        assert reply.status_code == 200, reply.text
        found = reply.json()["data"][0]["results"]
        assert all(list(r) == RESULT_KEYS for r in found)
        return found

    [total] = await results()
    assert (total["amount"]["value"], total["user_id"], total["api_source"]) == (0.071, None, None)
    by_user = await results("user_id")
    assert sorted((r["user_id"], r["amount"]["value"]) for r in by_user) == sorted(
        [(t.member.user_id, 0.01), (t.other.user_id, 0.061)])
    assert all(r["api_source"] is None and r["project_id"] is None for r in by_user)
    by_source = await results("api_source")
    assert [(r["api_source"], r["amount"]["value"], r["user_id"]) for r in by_source] == [
        ("agents_api", 0.01, None), ("unlabeled", 0.061, None)]
    every = await results("user_id", "api_source", "line_item", "api_key_id", "project_id")
    member_key = (await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(t.member.key))).api_key_id
    assert sorted((r["user_id"] == t.member.user_id, r["api_source"], r["line_item"], r["amount"]["value"],
                   r["quantity"], r["quantity_unit"]) for r in every) == [
        (False, "unlabeled", "gpt-4o, input", 0.06, 60, "tokens"),
        (False, "unlabeled", "gpt-4o, output", 0.001, 1, "tokens"),
        (True, "agents_api", "gpt-4o, input", 0.01, 10, "tokens")]
    assert [r["api_key_id"] for r in every if r["user_id"] == t.member.user_id] == [member_key]
    # A member sees their own costs only, whatever the grouping.
    mine = await http.get(URL, params={"start_time": START, "end_time": START + 86400, "group_by": "user_id"},
                          headers=t.member.headers)
    assert [(r["user_id"], r["amount"]["value"]) for r in mine.json()["data"][0]["results"]] == [
        (t.member.user_id, 0.01)]


@with_costs
async def test_the_line_items_filter_in_every_array_encoding(http, new_tenant, stubs):
    t = await new_tenant()
    a, b = await spend(stubs, t)
    base = f"{URL}?start_time={START}&end_time={START + 86400}"
    one, two = quote("gpt-4o, input"), quote("gpt-4o, output")
    forms = {  # the same two line items, as clients send arrays
        "repeated": f"&line_items={one}&line_items={two}",
        "brackets": f"&line_items[]={one}&line_items[]={two}",
        "encoded brackets": f"&line_items%5B%5D={one}&line_items%5B%5D={two}",
        "indexed": f"&line_items%5B0%5D={one}&line_items%5B1%5D={two}",
        "comma": f"&line_items={one},{two}",
        "comma, encoded": f"&line_items={quote('gpt-4o, input,gpt-4o, output')}",
    }
    unfiltered = await http.get(base + "&group_by=project_id", headers=t.admin.headers)
    for form, query in forms.items():
        reply = await http.get(base + query + "&group_by=project_id", headers=t.admin.headers)
        assert reply.status_code == 200, (form, reply.text)
        assert reply.json()["data"] == unfiltered.json()["data"], form  # both line items: everything
    only_input = await http.get(base + f"&line_items[]={one}&group_by=project_id", headers=t.admin.headers)
    assert [(r["project_id"], r["amount"]["value"], r["line_item"], r["quantity"], r["quantity_unit"])
            for r in only_input.json()["data"][0]["results"]] == [(a, 0.0013, None, None, None),
                                                                   (b, 0.0013, None, None, None)]
    by_line = await http.get(base + f"&line_items={two}&group_by=line_item", headers=t.admin.headers)
    assert [(r["line_item"], r["amount"]["value"], r["quantity"]) for r in by_line.json()["data"][0]["results"]] == [
        ("gpt-4o, output", 0.0002, 200)]
    ungrouped = await http.get(base + f"&line_items={two}", headers=t.admin.headers)
    assert [r["amount"]["value"] for r in ungrouped.json()["data"][0]["results"]] == [0.0002]
    nothing = await http.get(base + "&line_items=" + quote("gpt-5, input"), headers=t.admin.headers)
    assert nothing.json()["data"][0]["results"] == []
    for bad, shown in (("gpt-4o", "'gpt-4o'"), ("gpt-4o,input", "'gpt-4o'"), (", input", "', input'")):
        reply = await http.get(base + "&line_items[]=" + quote(bad), headers=t.admin.headers)
        assert reply.status_code == 400, bad
        assert reply.json()["error"] == {
            "message": f"Invalid value for 'line_items': {shown} is not a line item (\"<model>, <usage type>\", "
                       f"e.g. \"gpt-4o, input\").",
            "type": "invalid_request_error", "param": "line_items", "code": None}


@with_costs
async def test_quantity_units_are_openai_words(http, new_tenant, stubs, pstubs):
    """OpenAI's unit where one applies (GB-days of storage converted exactly to GiB-hours), null where
    none does."""
    t = await new_tenant()
    prices = {"input": "0.000001", "image": "0.04", "character": "0.000015", "second": "0.0001", "gb_day": "0.1",
              "session": "0.03", "call": "0.01"}
    await pstubs.prices.CreatePriceVersions(prices_pb2.CreatePriceVersionsRequest(versions=[
        prices_pb2.NewPriceVersion(model="unit-model", effective_from=at(DAY - dt.timedelta(days=1)),
                                   prices=[prices_pb2.Price(usage_type=k, unit_price=v) for k, v in prices.items()])
    ]), metadata=bearer(t.admin.key))
    when = DAY + dt.timedelta(hours=3)
    await record(stubs, t.admin.key,
                 event("completions", when, model="unit-model", input_tokens=1000),
                 event("images", when, model="unit-model", images=2),
                 event("audio_speeches", when, model="unit-model", characters=1000),
                 event("audio_transcriptions", when, model="unit-model", seconds=60),
                 event("vector_stores", when, model="unit-model", usage_bytes=2 * 10**9),
                 event("code_interpreter_sessions", when, model="unit-model", num_sessions=3),
                 event("web_search_calls", when, model="unit-model", num_requests=4),
                 event("completions", when, model="given", cost="0.5"))  # a caller-given cost, no quantity
    reply = await http.get(URL, params={"start_time": START, "end_time": START + 86400, "group_by": "line_item"},
                           headers=t.admin.headers)
    assert reply.status_code == 200, reply.text
    lines = {r["line_item"]: (r["quantity"], r["quantity_unit"]) for r in reply.json()["data"][0]["results"]}
    assert lines == {
        "unit-model, input": (1000, "tokens"), "unit-model, images": (2, "images"),
        "unit-model, characters": (1000, "characters"), "unit-model, seconds": (60, "duration_seconds"),
        "unit-model, storage": (44.70348358154296875, "gibibyte_hours"),  # 2 GB-days = 2e9 B x 24 h / 2^30
        "unit-model, sessions": (3, None), "unit-model, calls": (4, None), "given, other": (None, None),
    }
    assert '"quantity":44.70348358154296875,' in reply.text  # exact
