"""The QueryLake dialect (seed 000): the seed's two examples as written, the three auth forms,
the ways arguments arrive, window boundaries, scoping and the error envelope."""

import asyncio
import datetime as dt
import json
import time
import urllib.request

from metering.v1 import admin_pb2
from tests.conftest import bearer
from tests.gateway.conftest import PASSWORD
from tests.gateway.usage_events import UTC, event, record, unix

SEED_URL = "http://localhost:8000/api/get_usage_tally"
TALLY_FIELDS = {"id", "window", "start_timestamp", "api_key_id", "user_id", "organization_id", "value"}
AUG_1 = dt.datetime(2024, 8, 1, tzinfo=UTC)  # the seed's start_timestamp, 1722470400
OCT_8 = dt.datetime(2024, 10, 8, tzinfo=UTC)  # the seed response's start_timestamp, 1728345600


def path(url: str) -> str:
    assert url.startswith("http://localhost:8000")
    return url[len("http://localhost:8000"):]


async def key_id(stubs, key: str) -> str:
    return (await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))).api_key_id


async def seed_usage(stubs, key: str) -> None:
    """The usage behind the seed's example response, on 2024-10-08."""
    await record(
        stubs, key,
        event("completions", OCT_8 + dt.timedelta(hours=3), model="llama-3.1-8b-instruct",
              input_tokens=6000, output_tokens=2000),
        event("completions", OCT_8 + dt.timedelta(hours=9), model="llama-3.1-8b-instruct",
              input_tokens=806, output_tokens=677),
        event("rerank", OCT_8 + dt.timedelta(hours=4), model="bge-reranker-v2-m3", input_tokens=4441),
        event("embeddings", OCT_8 + dt.timedelta(hours=5), model="bge-m3", input_tokens=80, output_tokens=6),
    )


SEED_VALUE = {
    "llm": {"llama-3.1-8b-instruct": {"input_tokens": 6806, "output_tokens": 2677}},
    "rerank": {"bge-reranker-v2-m3": {"tokens": 4441}},
    "embedding": {"bge-m3": {"tokens": 86}},
}


async def test_the_python_example_as_written(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_usage(stubs, t.member.key)
    # Verbatim from the seed, only the host changed (httpx's client in place of requests).
    response = await http.request("GET", path(SEED_URL), json={
        "auth": {"api_key": t.member.key},
        "window": "day",
        "start_timestamp": 1722470400,
        "end_timestamp": int(time.time()) + 1000,
    })
    result = response.json()
    assert response.status_code == 200, response.text
    assert result["success"] is True
    [tally] = result["result"]
    assert set(tally) == TALLY_FIELDS
    assert tally["window"] == "day" and tally["start_timestamp"] == 1728345600
    assert tally["value"] == SEED_VALUE
    assert tally["user_id"] == t.member.user_id
    assert tally["api_key_id"] == await key_id(stubs, t.member.key)
    assert tally["organization_id"] == t.org.organization_id
    assert isinstance(tally["id"], str) and tally["id"]
    print(json.dumps(result, indent=4))


async def test_a_get_with_a_body_over_real_http(live_gateway, new_tenant, stubs):
    """What requests.get(url, json=...) puts on the wire (GET, Content-Type, Content-Length, a
    body), through uvicorn's HTTP parser rather than an in-process transport."""
    t = await new_tenant()
    await seed_usage(stubs, t.member.key)
    body = json.dumps({"auth": {"api_key": t.member.key}, "window": "day", "start_timestamp": 1722470400,
                       "end_timestamp": int(time.time()) + 1000}).encode()
    request = urllib.request.Request(live_gateway + path(SEED_URL), data=body, method="GET",
                                     headers={"Content-Type": "application/json"})

    def send():
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    status, result = await asyncio.to_thread(send)
    assert status == 200 and result["success"] is True
    assert [t["value"] for t in result["result"]] == [SEED_VALUE]


async def test_the_javascript_example_as_written(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_usage(stubs, t.member.key)
    api_key = t.member.key
    start_timestamp = 1722470400
    end_timestamp = int(time.time()) + 1000
    # fetch(url, {method: "GET", body: JSON.stringify({...}), headers: {"Content-Type": "application/json"}})
    response = await http.request(
        "GET", path(SEED_URL),
        content=json.dumps({"auth": {"api_key": api_key}, "window": "day", "start_timestamp": start_timestamp,
                            "end_timestamp": end_timestamp}),
        headers={"Content-Type": "application/json"},
    )
    data = response.json()
    assert data["success"] is True and [t["value"] for t in data["result"]] == [SEED_VALUE]


async def test_the_three_auth_forms_and_login(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_usage(stubs, t.member.key)
    args = {"window": "day", "start_timestamp": unix(AUG_1)}
    by_key = await http.post("/api/get_usage_tally", json={"auth": {"api_key": t.member.key}, **args})
    assert by_key.status_code == 200 and by_key.json()["success"] is True

    by_password = await http.post("/api/get_usage_tally", json={
        "auth": {"username": t.member.username, "password": PASSWORD}, **args})
    assert by_password.json() == by_key.json()

    login = await http.post("/api/login", json={"auth": {"username": t.member.username, "password": PASSWORD}})
    assert login.status_code == 200
    assert set(login.json()) == {"success", "result"} and login.json()["success"] is True
    oauth2 = login.json()["result"]
    assert isinstance(oauth2, str) and oauth2
    by_token = await http.get("/api/get_usage_tally", params={"parameters": json.dumps({"auth": oauth2, **args})})
    assert by_token.json() == by_key.json()

    wrong = await http.post("/api/get_usage_tally", json={
        "auth": {"username": t.member.username, "password": "not it"}, **args})
    assert wrong.status_code == 401
    assert set(wrong.json()) == {"success", "error"} and wrong.json()["success"] is False
    bad_login = await http.post("/api/login", json={"auth": {"username": t.member.username, "password": "x"}})
    assert bad_login.status_code == 401 and bad_login.json()["success"] is False


async def test_arguments_from_body_or_parameters_on_get_and_post(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_usage(stubs, t.admin.key)
    args = {"auth": {"api_key": t.admin.key}, "window": "day", "start_timestamp": unix(AUG_1)}
    expected = (await http.post("/api/get_usage_tally", json=args)).json()
    assert len(expected["result"]) == 1
    for method in ("GET", "POST"):
        for kwargs in ({"json": args}, {"params": {"parameters": json.dumps(args)}}):
            reply = await http.request(method, "/api/get_usage_tally", **kwargs)
            assert reply.status_code == 200 and reply.json() == expected, (method, kwargs)
    # Both: the body wins key by key.
    mixed = await http.post("/api/get_usage_tally", params={"parameters": json.dumps({**args, "window": "month"})},
                            json={"window": "day"})
    assert mixed.status_code == 200 and mixed.json() == expected


async def test_windows_and_their_boundaries(http, new_tenant, stubs):
    t = await new_tenant()
    ten = dt.datetime(2024, 10, 8, 10, tzinfo=UTC)
    await record(stubs, t.admin.key,
                 event("completions", ten + dt.timedelta(minutes=30), model="m", input_tokens=1, output_tokens=2),
                 event("completions", ten + dt.timedelta(hours=1, minutes=5), model="m", input_tokens=10),
                 event("completions", dt.datetime(2024, 11, 2, tzinfo=UTC), model="m", input_tokens=100))

    async def tallies(window, start, end=None):
        body = {"auth": {"api_key": t.admin.key}, "window": window, "start_timestamp": unix(start)}
        if end is not None:
            body["end_timestamp"] = unix(end)
        reply = await http.post("/api/get_usage_tally", json=body)
        assert reply.status_code == 200, reply.text
        return [(r["start_timestamp"], r["value"]["llm"]["m"]) for r in reply.json()["result"]]

    hour, eleven = unix(ten), unix(ten + dt.timedelta(hours=1))
    assert await tallies("hour", ten, ten + dt.timedelta(hours=1)) == [
        (hour, {"input_tokens": 1, "output_tokens": 2}), (eleven, {"input_tokens": 10, "output_tokens": 0})]
    # A tally counts when its start lies in [start_timestamp, end_timestamp]: both ends inclusive.
    assert [s for s, _ in await tallies("hour", ten + dt.timedelta(seconds=1))] == [
        eleven, unix(dt.datetime(2024, 11, 2, tzinfo=UTC))]
    assert [s for s, _ in await tallies("hour", ten, ten + dt.timedelta(minutes=59))] == [hour]
    assert await tallies("day", AUG_1, dt.datetime(2024, 10, 31, tzinfo=UTC)) == [
        (unix(dt.datetime(2024, 10, 8, tzinfo=UTC)), {"input_tokens": 11, "output_tokens": 2})]
    assert await tallies("month", AUG_1) == [
        (unix(dt.datetime(2024, 10, 1, tzinfo=UTC)), {"input_tokens": 11, "output_tokens": 2}),
        (unix(dt.datetime(2024, 11, 1, tzinfo=UTC)), {"input_tokens": 100, "output_tokens": 0})]


async def test_hour_tallies_across_many_server_pages(http, new_tenant, stubs):
    t = await new_tenant()
    hours = [0, 999, 1000, 2345]  # several pages of windows apart
    await record(stubs, t.admin.key, *[
        event("completions", AUG_1 + dt.timedelta(hours=h, minutes=5), model="m", input_tokens=h + 1)
        for h in hours])
    reply = await http.post("/api/get_usage_tally", json={
        "auth": {"api_key": t.admin.key}, "window": "hour", "start_timestamp": unix(AUG_1)})
    assert reply.status_code == 200, reply.text
    assert [(r["start_timestamp"], r["value"]["llm"]["m"]["input_tokens"]) for r in reply.json()["result"]] == [
        (unix(AUG_1) + 3600 * h, h + 1) for h in hours]


async def test_members_see_their_own_tallies_admins_all(http, new_tenant, stubs):
    t = await new_tenant()
    await seed_usage(stubs, t.member.key)
    await seed_usage(stubs, t.other.key)
    args = {"window": "day", "start_timestamp": unix(AUG_1)}
    mine = (await http.post("/api/get_usage_tally", json={"auth": {"api_key": t.member.key}, **args})).json()
    assert [r["user_id"] for r in mine["result"]] == [t.member.user_id]
    everyone = (await http.post("/api/get_usage_tally", json={"auth": {"api_key": t.admin.key}, **args})).json()
    assert sorted(r["user_id"] for r in everyone["result"]) == sorted([t.member.user_id, t.other.user_id])
    assert all(r["value"] == SEED_VALUE for r in everyone["result"])
    assert len({r["id"] for r in everyone["result"]}) == 2


async def test_errors_are_success_false(http, new_tenant):
    t = await new_tenant()
    auth = {"api_key": t.admin.key}
    cases = [
        ({"window": "day", "start_timestamp": 1722470400}, 401),  # no auth
        ({"auth": {"api_key": "nope"}, "window": "day", "start_timestamp": 1722470400}, 401),
        ({"auth": {"token": "x"}, "window": "day", "start_timestamp": 1722470400}, 401),
        ({"auth": auth, "window": "week", "start_timestamp": 1722470400}, 400),
        ({"auth": auth, "window": "day"}, 400),
        ({"auth": auth, "window": "day", "start_timestamp": "soon"}, 400),
        ({"auth": auth, "window": "day", "start_timestamp": 10**13}, 400),
    ]
    for body, status in cases:
        reply = await http.post("/api/get_usage_tally", json=body)
        assert reply.status_code == status, (body, reply.text)
        assert set(reply.json()) == {"success", "error"} and reply.json()["success"] is False
        assert reply.json()["error"]
    # NaN is not JSON (RFC 8259), as in the other dialects; it was read as a float here.
    nan = b'{"window": "day", "start_timestamp": 1722470400, "note": NaN}'
    for raw in (b"{not json", b"[1, 2]", nan, b"[" * 5000 + b"]" * 5000):
        reply = await http.post("/api/get_usage_tally", content=raw)
        assert reply.status_code == 400 and reply.json()["success"] is False
        assert reply.json()["error"] == "the request body is not valid JSON" or raw == b"[1, 2]"
    in_parameters = await http.get("/api/get_usage_tally", params={"parameters": nan.decode()})
    assert in_parameters.status_code == 400 and in_parameters.json()["error"] == "'parameters' is not valid JSON"
    unknown = await http.get("/api/no_such_function")
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    wrong_method = await http.delete("/api/get_usage_tally")
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False
