"""The token-usage dialect (seed 001): the seed's example as its generated client sends it,
the ISO 8601 variants, the default day, grouping, and FastAPI's errors."""

import datetime as dt
import json
import urllib.parse

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from gateway.dialects.token_usage import render_error
from gateway.http.errors import GatewayError
from tests.gateway.usage_events import UTC, event, record

URL = "/api/v2/usage/tokens"
COUNT_KEYS = {"inference", "eval_prompt", "eval_completion", "user_input", "prompt", "completion"}
DAY = dt.datetime(2024, 5, 14, tzinfo=UTC)


def counts(**values):
    return {key: values.get(key, 0) for key in sorted(COUNT_KEYS)}


async def seed_events(stubs, key, base=DAY):
    await record(
        stubs, key,
        event("completions", base + dt.timedelta(hours=1), labels={"rule_type": "pii", "task_id": "t1"},
              counters={"inference": 5, "prompt": 3, "completion": 2}),
        event("completions", base + dt.timedelta(hours=2), labels={"rule_type": "pii", "task_id": "t2"},
              counters={"inference": 7, "eval_prompt": 11}),
        event("completions", base + dt.timedelta(hours=3), labels={"rule_type": "toxicity", "task_id": "t1"},
              counters={"user_input": 13, "eval_completion": 17}),
        event("completions", base + dt.timedelta(hours=4), counters={"inference": 1}),  # no labels
    )


async def test_the_seed_example_as_its_client_sends_it(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_events(stubs, t.admin.key)
    headers = {"Authorization": f"Bearer {t.admin.key}", "Accept": "application/json"}
    # start_time = end_time = '2013-10-20T19:20:30+01:00', group_by = ["rule_type"]: as given ...
    raw = urllib.parse.urlencode({"start_time": "2013-10-20T19:20:30+01:00", "end_time": "2013-10-20T19:20:30+01:00",
                                  "group_by": "rule_type"})
    reply = await http.get(f"{URL}?{raw}", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json() == []  # an empty range
    # ... and as the generated client formats a datetime ("%Y-%m-%dT%H:%M:%S.%f%z").
    formatted = urllib.parse.urlencode({"start_time": "2013-10-20T19:20:30.000000+0100",
                                        "end_time": "2013-10-20T19:20:30.000000+0100", "group_by": "rule_type"})
    assert (await http.get(f"{URL}?{formatted}", headers=headers)).json() == []
    # An empty range still needs valid credentials.
    assert (await http.get(f"{URL}?{raw}", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_grouping(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_events(stubs, t.admin.key)
    window = {"start_time": "2024-05-14T00:00:00Z", "end_time": "2024-05-15T00:00:00Z"}

    async def get(*group_by):
        reply = await http.get(URL, params={**window, "group_by": list(group_by)}, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        for row in reply.json():
            assert set(row) == {"rule_type", "task_id", "count"} and set(row["count"]) == COUNT_KEYS
        return sorted(reply.json(), key=lambda r: (r["rule_type"] or "", r["task_id"] or ""))

    by_rule = await get()  # default: rule_type
    assert by_rule == await get("rule_type")
    assert by_rule == [
        {"rule_type": None, "task_id": None, "count": counts(inference=1)},
        {"rule_type": "pii", "task_id": None, "count": counts(inference=12, prompt=3, completion=2, eval_prompt=11)},
        {"rule_type": "toxicity", "task_id": None, "count": counts(user_input=13, eval_completion=17)},
    ]
    assert await get("task") == [
        {"rule_type": None, "task_id": None, "count": counts(inference=1)},
        {"rule_type": None, "task_id": "t1", "count": counts(inference=5, prompt=3, completion=2, user_input=13,
                                                             eval_completion=17)},
        {"rule_type": None, "task_id": "t2", "count": counts(inference=7, eval_prompt=11)},
    ]
    both = await get("rule_type", "task")
    assert [(r["rule_type"], r["task_id"]) for r in both] == [
        (None, None), ("pii", "t1"), ("pii", "t2"), ("toxicity", "t1")]
    assert both == await get("task", "rule_type", "task")


async def test_iso_8601_variants_mean_the_same_instant(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_events(stubs, t.admin.key)
    # [01:30, 03:30) UTC holds the events at 02:00 and 03:00.
    variants = [
        ("2024-05-14T01:30:00Z", "2024-05-14T03:30:00Z"),
        ("2024-05-14T01:30:00+00:00", "2024-05-14T03:30:00+00:00"),
        ("2024-05-14T01:30:00+0000", "2024-05-14T03:30:00+0000"),
        ("2024-05-14T03:30:00.000000+0200", "2024-05-14T05:30:00.000000+0200"),
        ("2024-05-14T01:30:00.000Z", "2024-05-14T03:30:00.000Z"),
        ("2024-05-13T20:30:00-05:00", "2024-05-13T22:30:00-05:00"),
        ("2024-05-14T01:30:00", "2024-05-14T03:30:00"),  # naive: UTC
        ("2024-05-14 01:30:00", "2024-05-14 03:30:00"),
    ]
    expected: list[dict] = []
    for start, end in variants:
        reply = await http.get(URL, params={"start_time": start, "end_time": end}, headers=t.admin.headers)
        assert reply.status_code == 200, (start, reply.text)
        rows = sorted(reply.json(), key=lambda r: r["rule_type"])
        expected = expected or rows
        assert rows == expected, start
    assert [r["rule_type"] for r in expected] == ["pii", "toxicity"]
    # A "+" left unencoded in the query string arrives as a space; it is read as the "+" it was.
    unencoded = await http.get(f"{URL}?start_time=2024-05-14T03:30:00+02:00&end_time=2024-05-14T05:30:00+0200",
                               headers=t.admin.headers)
    assert sorted(unencoded.json(), key=lambda r: r["rule_type"]) == expected
    # Fractions count: the 03:00:00 event is outside [01:30, 03:00:00.000001) only by its end.
    fraction = await http.get(URL, params={"start_time": "2024-05-14T01:30:00Z",
                                           "end_time": "2024-05-14T02:59:59.999999Z"}, headers=t.admin.headers)
    assert [r["rule_type"] for r in fraction.json()] == ["pii"]
    date_only = await http.get(URL, params={"start_time": "2024-05-14", "end_time": "2024-05-15"},
                               headers=t.admin.headers)
    assert len(date_only.json()) == 3


async def test_default_range_is_the_current_utc_day(http, new_tenant, stubs):
    t = await new_tenant()
    now = dt.datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await record(stubs, t.admin.key,
                 event("completions", now, labels={"rule_type": "today"}, counters={"inference": 3}),
                 event("completions", today - dt.timedelta(minutes=1), labels={"rule_type": "yesterday"},
                       counters={"inference": 4}))
    reply = await http.get(URL, headers=t.admin.headers)
    assert reply.status_code == 200
    if dt.datetime.now(UTC) < today + dt.timedelta(days=1):  # not run across midnight
        assert reply.json() == [{"rule_type": "today", "task_id": None, "count": counts(inference=3)}]
    only_start = await http.get(URL, params={"start_time": (today - dt.timedelta(days=1)).isoformat()},
                                headers=t.admin.headers)
    assert {r["rule_type"] for r in only_start.json()} == {"today", "yesterday"}


async def test_members_see_their_own_tokens(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_events(stubs, t.member.key)
    await seed_events(stubs, t.other.key)
    params = {"start_time": "2024-05-14T00:00:00Z", "end_time": "2024-05-15T00:00:00Z"}
    mine = (await http.get(URL, params=params, headers=t.member.headers)).json()
    everyone = (await http.get(URL, params=params, headers=t.admin.headers)).json()
    pii = {r["rule_type"]: r["count"]["inference"] for r in mine}["pii"]
    assert {r["rule_type"]: r["count"]["inference"] for r in everyone}["pii"] == 2 * pii


async def test_validation_errors_are_fastapi_422s(http, new_tenant):
    t = await new_tenant()
    bad_time = await http.get(URL, params={"start_time": "yesterday"}, headers=t.admin.headers)
    assert bad_time.status_code == 422
    [item] = bad_time.json()["detail"]
    assert item["loc"] == ["query", "start_time"] and item["input"] == "yesterday"
    assert item["type"].startswith("datetime") and item["msg"]

    bad_scope = await http.get(URL, params={"group_by": ["rule_type", "user"]}, headers=t.admin.headers)
    assert bad_scope.status_code == 422
    [item] = bad_scope.json()["detail"]
    assert item["loc"] == ["query", "group_by", 1] and item["type"] == "enum"
    assert item["msg"] == "Input should be 'rule_type' or 'task'"

    two = await http.get(URL, params={"start_time": "x", "end_time": "y"}, headers=t.admin.headers)
    assert [e["loc"] for e in two.json()["detail"]] == [["query", "start_time"], ["query", "end_time"]]

    ancient = await http.get(URL, params={"start_time": "0001-01-01T00:00:00+01:00"}, headers=t.admin.headers)
    assert ancient.status_code == 422 and ancient.json()["detail"][0]["loc"] == ["query", "start_time"]


def test_server_field_violations_are_422s_naming_the_parameter():
    """As in the usage log: the `loc` names the parameter, so `msg` does not repeat it (the server's
    message "start_time: ..." stands in for a violation without a description)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="start_time", reason="INVALID_VALUE")]))
    reply = render_error(GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "start_time: out of range", [detail]))
    assert reply.status_code == 422
    assert json.loads(bytes(reply.body)) == {"detail": [
        {"type": "value_error", "loc": ["query", "start_time"], "msg": "out of range", "input": None}]}


async def test_auth_errors(http):
    missing = await http.get(URL)
    assert missing.status_code == 401 and set(missing.json()) == {"detail"}
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await http.get(URL, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and isinstance(wrong.json()["detail"], str)
    assert (await http.post(URL)).status_code == 405
