"""The reports built on the query engine (server/query/reports.py), over gRPC:
QueryLake tallies, token usage by rule type and task, an SDK client's usage."""

from __future__ import annotations

import datetime as dt
import decimal

from metering.v1 import query_pb2
from tests.server.query.test_query import DAY, UTC, at, ev, expect_invalid, record


async def test_usage_tallies(stubs, new_org, query):
    org = await new_org()
    await record(stubs, org.auth,
                 ev(1, DAY + dt.timedelta(hours=2), model="llama", user_id="u1", api_key_id="k1",
                    input_tokens=3, output_tokens=4),
                 ev(2, DAY + dt.timedelta(hours=3), model="llama", user_id="u1", api_key_id="k1", input_tokens=5),
                 ev(3, DAY + dt.timedelta(hours=3), kind="embeddings", model="bge", user_id="u1", api_key_id="k1",
                    input_tokens=86),
                 ev(4, DAY + dt.timedelta(days=1), kind="rerank", model="rr", user_id="u2", api_key_id="k2",
                    input_tokens=44),
                 ev(5, DAY - dt.timedelta(seconds=1), model="early", user_id="u1", api_key_id="k1", input_tokens=1))
    resp = await query.GetUsageTallies(query_pb2.GetUsageTalliesRequest(
        window="day", start_time=at(DAY - dt.timedelta(hours=1)), end_time=at(DAY + dt.timedelta(days=1)),
    ), metadata=org.auth)
    got = [(t.start_time.ToDatetime(UTC), t.user_id, t.api_key_id,
            {c: {m: dict(v.counts) for m, v in cat.models.items()} for c, cat in t.value.items()})
           for t in resp.tallies]
    assert got == [
        (DAY, "u1", "k1",
         {"llm": {"llama": {"input_tokens": 8, "output_tokens": 4}}, "embedding": {"bge": {"tokens": 86}}}),
        (DAY + dt.timedelta(days=1), "u2", "k2", {"rerank": {"rr": {"tokens": 44}}}),
    ]  # the window that starts before start_time is left out; the one starting at end_time is in
    assert all(t.window == "day" and t.organization_id == org.organization_id and len(t.id) == 32 for t in resp.tallies)
    hourly = await query.GetUsageTallies(query_pb2.GetUsageTalliesRequest(
        window="hour", start_time=at(DAY), end_time=at(DAY + dt.timedelta(hours=3))), metadata=org.auth)
    assert [t.start_time.ToDatetime(UTC).hour for t in hourly.tallies] == [2, 3]
    assert not hourly.next_page_token
    request = query_pb2.GetUsageTalliesRequest(window="hour", start_time=at(DAY),
                                               end_time=at(DAY + dt.timedelta(hours=3)),
                                               page_size=3)  # windows per page: 0h-2h, then 3h
    first = await query.GetUsageTallies(request, metadata=org.auth)
    assert [t.start_time.ToDatetime(UTC).hour for t in first.tallies] == [2] and first.next_page_token
    request.page_token = first.next_page_token
    second = await query.GetUsageTallies(request, metadata=org.auth)
    assert [t.start_time.ToDatetime(UTC).hour for t in second.tallies] == [3] and not second.next_page_token
    await expect_invalid(query.GetUsageTallies(query_pb2.GetUsageTalliesRequest(window="week", start_time=at(DAY)),
                                               metadata=org.auth), "window")


async def test_token_usage_by_rule_type_and_task(stubs, new_org, query):
    org = await new_org()
    await record(stubs, org.auth,
                 ev(1, DAY, labels={"rule_type": "r1", "task_id": "t1"}, counters={"inference": 5, "prompt": 2}),
                 ev(2, DAY, labels={"rule_type": "r1", "task_id": "t2"}, counters={"eval_prompt": 7}),
                 ev(3, DAY, labels={"task_id": "t1"}, counters={"completion": 1}))

    async def usage(*group_by: str) -> list:
        resp = await query.GetTokenUsage(query_pb2.GetTokenUsageRequest(
            start_time=at(DAY), end_time=at(DAY + dt.timedelta(days=1)), group_by=group_by), metadata=org.auth)
        return [(u.rule_type if u.HasField("rule_type") else None, u.task_id if u.HasField("task_id") else None,
                 {k: v for k, v in u.count.items() if v}) for u in resp.usage]

    assert await usage() == [(None, None, {"completion": 1}),
                             ("r1", None, {"inference": 5, "prompt": 2, "eval_prompt": 7})]
    assert await usage("task") == [(None, "t1", {"inference": 5, "prompt": 2, "completion": 1}),
                                   (None, "t2", {"eval_prompt": 7})]
    assert len(await usage("rule_type", "task")) == 3
    await expect_invalid(query.GetTokenUsage(query_pb2.GetTokenUsageRequest(group_by=["team"]), metadata=org.auth),
                         "group_by")


async def test_client_usage(stubs, new_org, query):
    org = await new_org()
    now = dt.datetime.now(UTC).replace(microsecond=0)
    await record(stubs, org.auth,
                 ev(1, now - dt.timedelta(days=400), client_id="app", model="gpt", provider="openai",
                    input_tokens=10, output_tokens=20, input_cost="0.0001", output_cost="0.0002"),
                 ev(2, now - dt.timedelta(minutes=5), client_id="app", model="gpt", provider="openai",
                    input_tokens=1, output_tokens=2, status="error", error_message="boom"),
                 ev(3, now - dt.timedelta(minutes=1), client_id="app", model="claude", provider="anthropic",
                    input_tokens=5, cost="0.5"),
                 ev(4, now, client_id="other", model="gpt", input_tokens=1000))
    report = await query.GetClientUsage(query_pb2.GetClientUsageRequest(client_id="app", recent_limit=2),
                                        metadata=org.auth)
    assert (report.total_requests, report.successful_requests, report.failed_requests) == (3, 2, 1)
    assert (report.total_input_tokens, report.total_output_tokens) == (16, 22)
    assert decimal.Decimal(report.total_cost) == decimal.Decimal("0.5003")
    assert [(m.model_name, m.model_provider, m.total_requests, m.total_cost) for m in report.models_used] == [
        ("claude", "anthropic", 1, "0.5"), ("gpt", "openai", 2, "0.0003"),
    ]
    assert report.models_used[1].last_used.ToDatetime(UTC) == now - dt.timedelta(minutes=5)
    assert [r.request_id for r in report.recent_requests] == ["q-3", "q-2"]
    assert report.recent_requests[1].error_message == "boom"
    await expect_invalid(query.GetClientUsage(query_pb2.GetClientUsageRequest(), metadata=org.auth), "client_id")
