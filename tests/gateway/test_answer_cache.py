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
PLANTED = [{"object": "bucket", "start_time": 1, "end_time": 2, "results": []}]


async def settle(db, organization_id: str, *days: dt.datetime) -> None:
    number = await db.fetchval("select org_id from organizations where id = $1", organization_id)
    for day in days:
        await recompute_day(db, number, day)


def tokens(page) -> list[dict[str, int]]:
    return [{r["model"]: r["input_tokens"] for r in b["results"]} for b in page["data"]]


async def test_an_unchanged_page_is_served_from_the_cache_and_a_changed_one_never(
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

        assert tokens(await get()) == [{"m": 3}, {}] and len(answers) == 0  # dirty: nothing kept
        await settle(db, t.org.organization_id, DAY)
        first = await get()
        assert tokens(first) == [{"m": 3}, {}] and len(answers) == 1
        [(key, kept)] = answers._answers.items()
        assert orjson.loads(kept.body) == first["data"]

        answers.put(key, kept.etag, orjson.dumps(PLANTED))
        assert (await get())["data"] == PLANTED  # same question, unchanged answer
        # A later end time over the same buckets is the same page (the default end is "now").
        assert (await get(end_time=unix(DAY + dt.timedelta(days=30))))["data"] == PLANTED
        page = await get(end_time=unix(DAY + dt.timedelta(days=30)))
        assert page["has_more"] and page["next_page"]  # the page around the data is built per request
        # Other callers have their own entries, even where they may see the same usage.
        assert tokens(await get(headers=t.admin.headers)) == [{"m": 3}, {}]
        assert tokens(await get(headers=t.member.headers)) == [{}, {}]

        # An appended event changes the answer: rendered afresh, dirty so not kept.
        await record(stubs, t.admin.key, event("completions", DAY + dt.timedelta(days=1), model="m", input_tokens=4))
        assert tokens(await get()) == [{"m": 3}, {"m": 4}]
        assert key not in answers._answers
        await settle(db, t.org.organization_id, DAY + dt.timedelta(days=1))
        assert tokens(await get()) == [{"m": 3}, {"m": 4}]
        answers.put(key, answers._answers[key].etag, orjson.dumps(PLANTED))
        assert (await get())["data"] == PLANTED
        # ... and after the write and its rollup both happened between two requests.
        await record(stubs, t.admin.key, event("completions", DAY, model="n", input_tokens=5))
        await settle(db, t.org.organization_id, DAY)
        assert tokens(await get()) == [{"m": 3, "n": 5}, {"m": 4}]


def test_the_cache_is_bounded_by_bytes():
    cache = AnswerCache(max_bytes=100)
    for i in range(5):
        cache.put(bytes([i]), f"e{i}", b"x" * 40)
    assert len(cache) == 2 and cache.size == 80 and cache.get(bytes([4])) is not None
    assert cache.get(bytes([0])) is None
    cache.put(bytes([4]), "", b"y")  # no etag: nothing kept, the old entry dropped
    assert cache.get(bytes([4])) is None and cache.size == 40
    cache.put(b"big", "e", b"z" * 101)
    assert cache.get(b"big") is None and cache.size == 40
