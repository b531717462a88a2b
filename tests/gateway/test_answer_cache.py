"""The gateway's rendered answers (gateway/answer_cache.py): an unchanged settled page is
answered from what was rendered before, and never once the answer changed or for another
caller. A planted rendering shows which answers come from the cache."""

from __future__ import annotations

import datetime as dt

import orjson

from gateway.answer_cache import AnswerCache
from server.rollups import recompute_day
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
        answers: AnswerCache = http._transport.app.state.upstream.answers  # type: ignore[attr-defined]

        async def get(headers=t.org_admin, **extra):
            reply = await http.get(PATH, params={**params, **extra}, headers=headers)
            assert reply.status_code == 200, reply.text
            return reply.json()

        def plant(key: bytes) -> None:
            """Replaces every kept bucket with a marked one, to see which are served from the cache."""
            answers.put(key, {etag: orjson.dumps(planted(i)) for i, etag in enumerate(answers.get(key))})

        await get()
        assert tokens(await get()) == [{"m": 3}, {}] and len(answers) == 1  # the empty bucket is settled
        await settle(db, t.org.organization_id, DAY)
        first = await get()
        assert tokens(first) == [{"m": 3}, {}]
        [(key, kept)] = answers._answers.items()
        assert [orjson.loads(body) for body in kept.values()] == first["data"]

        plant(key)
        assert (await get())["data"] == [planted(0), planted(1)]  # same question, unchanged answer
        # A later end time over the same buckets is the same page (the default end is "now").
        page = await get(end_time=unix(DAY + dt.timedelta(days=30)))
        assert page["data"] == [planted(0), planted(1)]
        assert page["has_more"] and page["next_page"]  # the page around the data is built per request
        # Other callers have their own entries, even where they may see the same usage.
        assert tokens(await get(headers=t.admin.headers)) == [{"m": 3}, {}]
        assert tokens(await get(headers=t.member.headers)) == [{}, {}]

        # An event appended to the second day: that bucket is read afresh (dirty, so not
        # kept), the first still comes from the cache.
        await record(stubs, t.admin.key, event("completions", DAY + dt.timedelta(days=1), model="m", input_tokens=4))
        live = (await get())["data"]
        assert live[0] == planted(0) and tokens({"data": live[1:]}) == [{"m": 4}]
        assert len(answers._answers[key]) == 1
        await settle(db, t.org.organization_id, DAY + dt.timedelta(days=1))
        settled = (await get())["data"]
        assert settled[0] == planted(0) and tokens({"data": settled[1:]}) == [{"m": 4}]
        plant(key)
        assert (await get())["data"] == [planted(0), planted(1)]
        # ... and after a write and its rollup both happened between two requests.
        await record(stubs, t.admin.key, event("completions", DAY, model="n", input_tokens=5))
        await settle(db, t.org.organization_id, DAY)
        fresh = (await get())["data"]
        assert tokens({"data": fresh[:1]}) == [{"m": 3, "n": 5}] and fresh[1] == planted(1)


def test_the_cache_is_bounded_by_bytes():
    cache = AnswerCache(max_bytes=100)
    for i in range(5):
        cache.put(bytes([i]), {f"e{i}": b"x" * 20, f"f{i}": b"x" * 20})
    assert len(cache) == 2 and cache.size == 80 and cache.get(bytes([4]))
    assert cache.get(bytes([0])) == {}
    cache.put(bytes([4]), {})  # nothing settled: the old entry dropped
    assert cache.get(bytes([4])) == {} and cache.size == 40
    cache.put(b"big", {"e": b"z" * 101})
    assert cache.get(b"big") == {} and cache.size == 40
