"""The gateway's rendered answers (gateway/upstream/answer_cache.py): an unchanged settled page is
answered from what was rendered before, and never once the answer changed or for another
caller. A planted rendering shows which answers come from the cache."""

from __future__ import annotations

import datetime as dt

import orjson

from gateway.upstream.answer_cache import AnswerCache
from server.rollups.recompute import recompute_day
from tests.gateway.usage_events import UTC, event, record, unix

DAY = dt.datetime(2024, 5, 6, tzinfo=UTC)
PATH = "/v1/organization/usage/completions"


async def settle(db, organization_id: str, *days: dt.datetime) -> None:
    number = await db.fetchval("select org_id from organizations where id = $1", organization_id)
    for day in days:
        await recompute_day(db, number, day)


def tokens(page) -> list[dict[str, int]]:
    return [{r["model"]: r["input_tokens"] for r in b["results"]} for b in page["data"]]


def planted(i: int) -> dict:
    return {"object": "bucket", "start_time": i, "end_time": i + 1, "results": []}


async def test_unchanged_buckets_are_served_from_the_cache_and_changed_ones_never(
        gateway_client, new_tenant, stubs, db):
    t = await new_tenant()
    await record(stubs, t.admin.key, event("completions", DAY + dt.timedelta(hours=2), model="m", input_tokens=3))
    params = {"start_time": unix(DAY), "bucket_width": "1d", "limit": 2, "group_by": "model"}
    async with gateway_client() as http:
        answers: AnswerCache = http._transport.app.state.upstream.answers

        async def get(headers=t.org_admin, **extra):
            reply = await http.get(PATH, params={**params, **extra}, headers=headers)
            assert reply.status_code == 200, reply.text
            return reply.json()

        def plant() -> None:
            """Replaces every kept rendering with a marked one, to see which are served from the cache."""
            for i, key in enumerate(list(answers._rendered)):
                answers._rendered[key] = orjson.dumps(planted(i))

        assert tokens(await get()) == [{"m": 3}, {}] and len(answers) == 1  # only the empty bucket is settled
        await settle(db, t.org.organization_id, DAY)
        first = await get()
        assert tokens(first) == [{"m": 3}, {}] and len(answers) == 2
        assert sorted(orjson.loads(body)["start_time"] for body in answers._rendered.values()) == [
            b["start_time"] for b in first["data"]]

        plant()
        planted_page = (await get())["data"]  # same question, unchanged answer
        assert sorted(b["start_time"] for b in planted_page) == [0, 1]
        # A later end time over the same buckets is the same page (the default end is "now").
        page = await get(end_time=unix(DAY + dt.timedelta(days=30)))
        assert page["data"] == planted_page
        assert page["has_more"] and page["next_page"]  # the page around the data is built per request
        # A caller of the same scope (the admin user) is answered the same etags: the
        # renderings are shared. A member sees only its own usage: other etags.
        assert (await get(headers=t.admin.headers))["data"] == planted_page
        assert tokens(await get(headers=t.member.headers)) == [{}, {}]
        first_bucket = planted_page[0]

        # An event appended to the second day: that bucket is read afresh (dirty, so not
        # kept), the first still comes from the cache.
        await record(stubs, t.admin.key, event("completions", DAY + dt.timedelta(days=1), model="m", input_tokens=4))
        live = (await get())["data"]
        assert live[0] == first_bucket and tokens({"data": live[1:]}) == [{"m": 4}]
        await settle(db, t.org.organization_id, DAY + dt.timedelta(days=1))
        settled = (await get())["data"]
        assert settled[0] == first_bucket and tokens({"data": settled[1:]}) == [{"m": 4}]
        # ... and after a write and its rollup both happened between two requests.
        await record(stubs, t.admin.key, event("completions", DAY, model="n", input_tokens=5))
        await settle(db, t.org.organization_id, DAY)
        fresh = (await get())["data"]
        assert tokens({"data": fresh}) == [{"m": 3, "n": 5}, {"m": 4}]


def test_the_cache_is_bounded_by_bytes():
    cache = AnswerCache(max_bytes=100, max_callers=2)
    shape = cache.shape("completions")
    for i in range(5):
        cache.keep(bytes([i]), shape, {f"e{i}": b"x" * 20, f"f{i}": b"x" * 20})
        assert cache.size <= 100
    assert len(cache) == 5 and cache.rendered(shape, "e0") is None and cache.rendered(shape, "f4")
    assert len(cache.held(bytes([4]))) == 2 and cache.held(bytes([2])) == {}  # the last two callers only
    cache.keep(bytes([4]), shape, {})  # nothing settled: holds nothing
    assert cache.held(bytes([4])) == {}
    cache.keep(b"big", shape, {"big": b"z" * 101})
    assert cache.rendered(shape, "big") is None and cache.size <= 100


async def test_native_rest_revalidates_by_etag(http, new_tenant, stubs, db):
    """grpc-gateway style: the same fields in JSON (`ifNoneMatch`/`if_none_match`, `known_etags`; the
    reply has `etag` and `not_modified`, proto field names as the rest of the native replies)."""
    t = await new_tenant()
    await record(stubs, t.admin.key, event("completions", DAY + dt.timedelta(hours=1), model="m", input_tokens=2))
    await settle(db, t.org.organization_id, DAY)
    body = {"startTime": "2024-05-06T00:00:00Z", "endTime": "2024-05-08T00:00:00Z", "groupBy": ["model"]}
    first = (await http.post("/v1/usage:query", json=body, headers=t.org_admin)).json()
    assert first["etag"] and all(b["etag"] for b in first["buckets"]) and not first["not_modified"]
    again = (await http.post("/v1/usage:query", json={**body, "ifNoneMatch": first["etag"]},
                             headers=t.org_admin)).json()
    assert again["not_modified"] and not again.get("buckets")
    known = (await http.get("/v1/usage", params={
        "start_time": "2024-05-06T00:00:00Z", "end_time": "2024-05-08T00:00:00Z", "group_by": "model",
        "known_etags": first["buckets"][0]["etag"]}, headers=t.org_admin)).json()
    assert known["buckets"][0]["not_modified"] and not known["buckets"][0].get("groups")
    assert not known["buckets"][1]["not_modified"] and known["buckets"][1]["etag"]
