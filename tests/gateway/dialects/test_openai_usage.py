"""The OpenAI usage endpoints (seed 004) on the wire: the seed's calls with every parameter,
result objects per endpoint, grouping, the four array encodings, limits, clipping, cursors and
the error envelope."""

import datetime as dt
import json
import re
from typing import Any

import pytest

from gateway.dialects.openai.usage import ENDPOINTS
from metering.v1 import admin_pb2
from tests.conftest import MASTER, bearer
from tests.gateway.usage_events import UTC, event, record, unix

DAY = dt.datetime(2024, 3, 4, tzinfo=UTC)
START = unix(DAY)
BY_NAME = {e.name: e for e in ENDPOINTS}
SEED_ENDPOINTS = ("audio_speeches", "audio_transcriptions", "code_interpreter_sessions", "completions",
                  "embeddings", "images", "moderations", "vector_stores")
# Every counter of every kind, so each endpoint's metrics are visible.
COUNTERS = dict(input_tokens=100, output_tokens=20, input_cached_tokens=30, input_audio_tokens=4,
                output_audio_tokens=5, input_cache_write_tokens=6, input_text_tokens=7, output_text_tokens=8,
                input_cached_text_tokens=9, input_cached_audio_tokens=10, input_image_tokens=11,
                input_cached_image_tokens=12, output_image_tokens=13, num_requests=3, images=2, characters=140,
                seconds=61, usage_bytes=4096, num_sessions=1)
TWELVE_HOURS = {"input_cache_write_12h_tokens": 2}  # the extra counter of 12-hour cache writes
# The results' derived counters for an event of COUNTERS and TWELVE_HOURS.
DERIVED = {"input_uncached_tokens": 100 - 30 - 6, "input_cache_write_12h_tokens": 2, "input_cache_write_30m_tokens": 4}


def path(name):
    return f"/v1/organization/usage/{name}"


async def key_id(stubs, key):
    return (await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))).api_key_id


async def project(stubs, t, name):
    created = await stubs.admin.CreateProject(
        admin_pb2.CreateProjectRequest(organization=t.org.organization_id, name=name), metadata=MASTER)
    return created.project_id


def check_page(page, *, results_object=None):
    assert set(page) == {"object", "data", "has_more", "next_page"} and page["object"] == "page"
    assert isinstance(page["has_more"], bool) and (page["next_page"] is None) == (not page["has_more"])
    for b in page["data"]:
        assert set(b) == {"object", "start_time", "end_time", "results"} and b["object"] == "bucket"
        assert type(b["start_time"]) is int and type(b["end_time"]) is int and b["start_time"] < b["end_time"]
        for r in b["results"]:
            if results_object:
                assert r["object"] == results_object
    starts = [b["start_time"] for b in page["data"]]
    assert [b["end_time"] for b in page["data"]][:-1] == starts[1:]  # contiguous


async def test_every_endpoint_returns_its_result_object(http, new_tenant, stubs):
    t = await new_tenant()
    await record(stubs, t.admin.key, *[
        event(e.kind, DAY + dt.timedelta(hours=5), model="m-1", counters=TWELVE_HOURS, **COUNTERS) for e in ENDPOINTS])
    for e in ENDPOINTS:
        reply = await http.get(path(e.name), params={"start_time": START, "end_time": START + 2 * 86400},
                               headers=t.admin.headers)
        assert reply.status_code == 200, (e.name, reply.text)
        page = reply.json()
        check_page(page, results_object=e.result)
        assert [(b["start_time"], b["end_time"]) for b in page["data"]] == [
            (START, START + 86400), (START + 86400, START + 2 * 86400)]
        [result] = page["data"][0]["results"]
        assert page["data"][1]["results"] == []  # an empty bucket
        assert list(result) == ["object", *e.metrics, *e.keys]
        for name in e.metrics:
            expected = 1 if name == "num_model_requests" else {**COUNTERS, **DERIVED}[name]
            assert result[name] == expected and type(result[name]) is int, (e.name, name)
        assert all(result[k] is None for k in e.keys)  # ungrouped keys present as null
        assert re.search(rf'"{e.metrics[0]}":{result[e.metrics[0]]}\b', reply.text)  # numbers, not strings
    assert {e.result for e in ENDPOINTS} >= {"organization.usage.file_searches.result",
                                             "organization.usage.web_searches.result",
                                             "organization.usage.completions.result",
                                             "organization.usage.decisions.result"}


async def test_decisions_are_their_own_kind_of_usage(http, new_tenant, stubs):
    """`kind: decisions` events (the Decisions API) show in /usage/decisions only, with the parameters,
    grouping and result fields of completions."""
    t = await new_tenant()
    when = DAY + dt.timedelta(hours=2)
    await record(stubs, t.admin.key,
                 event("decisions", when, model="gpt-6-luna", input_tokens=1000, input_cached_tokens=400, batch=True),
                 event("decisions", when, model="gpt-6-luna", input_tokens=10, service_tier="flex"),
                 event("completions", when, model="gpt-6-luna", input_tokens=7))
    base = {"start_time": START, "end_time": START + 86400}

    async def results(name, **params):
        reply = await http.get(path(name), params={**base, **params}, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["data"][0]["results"]

    [decided] = await results("decisions")
    assert decided["object"] == "organization.usage.decisions.result"
    assert (decided["input_tokens"], decided["input_cached_tokens"], decided["input_uncached_tokens"],
            decided["num_model_requests"]) == (1010, 400, 610, 2)
    assert [r["input_tokens"] for r in await results("completions")] == [7]
    assert list(decided) == ["object", *BY_NAME["completions"].metrics, *BY_NAME["completions"].keys]
    assert [(r["batch"], r["service_tier"], r["input_tokens"]) for r in await results(
        "decisions", group_by=["batch", "service_tier", "model"], models="gpt-6-luna")] == [
        (False, "flex", 10), (True, None, 1000)]
    assert [r["input_tokens"] for r in await results("decisions", batch="true", user_ids=t.admin.user_id)] == [1000]


@pytest.mark.parametrize("name", ["completions", "decisions", "web_search_calls"])
async def test_grouping_by_api_source(http, new_tenant, stubs, name):
    """The label api_source=agents_api is `agents_api`; every other value, and no label, is one
    `unlabeled` result; without grouping by it, api_source is null."""
    t = await new_tenant()
    e = BY_NAME[name]
    when = DAY + dt.timedelta(hours=3)
    sources = [("agents_api", "a", 1), ("responses", "a", 2), (None, "a", 4), ("agents_api", "b", 8), (None, "b", 16)]
    await record(stubs, t.admin.key, *[
        event(e.kind, when, model=model, num_requests=n, input_tokens=n, input_cache_write_tokens=n,
              counters={"input_cache_write_12h_tokens": n // 2}, labels={"api_source": source} if source else {})
        for source, model, n in sources])
    base = {"start_time": START, "end_time": START + 86400}
    metric = "num_requests" if name == "web_search_calls" else "input_tokens"

    async def results(**params):
        reply = await http.get(path(name), params={**base, **params}, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        found = reply.json()["data"][0]["results"]
        assert all(list(r) == ["object", *e.metrics, *e.keys] for r in found)
        return found

    [total] = await results()
    assert total["api_source"] is None and total[metric] == 31
    by_source = await results(group_by="api_source")
    assert sorted((r["api_source"], r[metric], r["num_model_requests"]) for r in by_source) == [
        ("agents_api", 9, 2), ("unlabeled", 22, 3)]
    by_both = await results(group_by=["model", "api_source"])
    assert sorted((r["model"], r["api_source"], r[metric]) for r in by_both) == [
        ("a", "agents_api", 1), ("a", "unlabeled", 6), ("b", "agents_api", 8), ("b", "unlabeled", 16)]
    if name != "web_search_calls":
        for r in by_both:  # the derived counters are summed with the rest
            assert r["input_uncached_tokens"] == 0 and r["input_cache_write_tokens"] == r["input_tokens"]
            split = r["input_cache_write_12h_tokens"] + r["input_cache_write_30m_tokens"]
            assert split == r["input_cache_write_tokens"]
        assert {(r["model"], r["api_source"]): r["input_cache_write_12h_tokens"] for r in by_both} == {
            ("a", "agents_api"): 0, ("a", "unlabeled"): 1 + 2, ("b", "agents_api"): 4, ("b", "unlabeled"): 8}
    assert (await http.get(path("embeddings"), params={**base, "group_by": "api_source"},
                           headers=t.admin.headers)).status_code == 400


async def test_input_tokens_add_up(http, new_tenant, stubs):
    """OpenAI's identities, in every result: input = cached + cache write + uncached, and cache
    write = 30-minute + 12-hour writes."""
    t = await new_tenant()
    when = DAY + dt.timedelta(hours=4)
    await record(stubs, t.admin.key, *[
        event("completions", when, model=f"m{i % 3}", input_tokens=100 * i + 50, input_cached_tokens=10 * i,
              input_cache_write_tokens=5 * i, counters={"input_cache_write_12h_tokens": i} if i % 2 else {},
              project_id=f"p{i % 2}")
        for i in range(12)])
    reply = await http.get(path("completions"), params={"start_time": START, "end_time": START + 86400,
                                                        "group_by": ["model", "project_id"]}, headers=t.admin.headers)
    found = reply.json()["data"][0]["results"]
    assert len(found) == 6
    for r in found:
        parts = r["input_cached_tokens"] + r["input_cache_write_tokens"] + r["input_uncached_tokens"]
        assert r["input_tokens"] == parts
        assert r["input_cache_write_tokens"] == r["input_cache_write_30m_tokens"] + r["input_cache_write_12h_tokens"]
    assert sum(r["input_uncached_tokens"] for r in found) == sum(100 * i + 50 - 15 * i for i in range(12))
    assert sum(r["input_cache_write_12h_tokens"] for r in found) == sum(range(1, 12, 2))


async def test_the_seed_calls_with_every_parameter(http, new_tenant, stubs):
    """Each seed call as its TypeScript client sends it: every parameter the seed lists for the
    endpoint, arrays repeated (`k=a&k=b`)."""
    t = await new_tenant()
    proj = await project(stubs, t, "seeded")
    admin_key_id = await key_id(stubs, t.admin.key)
    await record(stubs, t.admin.key, *[
        event(e.kind, DAY + dt.timedelta(hours=1), model="gpt-4o", project_id=proj, user_id=t.admin.user_id,
              labels={"source": "image.generation", "size": "1024x1024"}, **COUNTERS)
        for e in ENDPOINTS
    ])
    values = {
        "start_time": START, "end_time": START + 86400, "bucket_width": "1d", "project_ids": [proj],
        "user_ids": [t.admin.user_id], "api_key_ids": [admin_key_id], "models": ["gpt-4o"], "batch": "false",
        "sources": ["image.generation", "image.edit"], "sizes": ["1024x1024", "512x512"], "limit": 7,
    }
    seed_params = {  # in the seed's order
        "audio_speeches": ["start_time", "end_time", "bucket_width", "project_ids", "user_ids", "api_key_ids",
                           "models", "group_by", "limit"],
        "audio_transcriptions": ["start_time", "end_time", "bucket_width", "project_ids", "user_ids", "api_key_ids",
                                 "models", "group_by", "limit"],
        "code_interpreter_sessions": ["start_time", "end_time", "bucket_width", "project_ids", "group_by", "limit"],
        "completions": ["start_time", "end_time", "bucket_width", "project_ids", "user_ids", "api_key_ids", "models",
                        "batch", "group_by", "limit"],
        "embeddings": ["start_time", "end_time", "bucket_width", "project_ids", "user_ids", "api_key_ids", "models",
                       "group_by", "limit"],
        "images": ["start_time", "end_time", "bucket_width", "sources", "sizes", "project_ids", "user_ids",
                   "api_key_ids", "models", "group_by", "limit"],
        "moderations": ["start_time", "end_time", "bucket_width", "project_ids", "user_ids", "api_key_ids",
                        "models", "group_by", "limit"],
        "vector_stores": ["start_time", "end_time", "bucket_width", "project_ids", "group_by", "limit"],
    }
    assert set(seed_params) == set(SEED_ENDPOINTS)
    for name, names in seed_params.items():
        e = BY_NAME[name]
        query: list[tuple[str, Any]] = []
        for param in names:
            value = list(e.keys) if param == "group_by" else values[param]
            query.extend((param, v) for v in (value if isinstance(value, list) else [value]))
        reply = await http.get(path(name), params=query, headers=t.admin.headers)
        assert reply.status_code == 200, (name, reply.text)
        [b] = reply.json()["data"]
        [result] = b["results"]
        assert result["project_id"] == proj
        if "model" in e.keys:
            assert result["model"] == "gpt-4o" and result["user_id"] == t.admin.user_id
            assert result["api_key_id"] == admin_key_id
        if name == "completions":
            assert result["batch"] is False and result["input_tokens"] == 100
        if name == "images":
            assert (result["size"], result["source"], result["images"]) == ("1024x1024", "image.generation", 2)
        # The filters filter: another project has nothing.
        other = [(k, "proj-none" if k == "project_ids" else v) for k, v in query]
        assert (await http.get(path(name), params=other, headers=t.admin.headers)).json()["data"][0]["results"] == []


async def test_group_by_gives_one_result_per_combination(http, new_tenant, stubs):
    t = await new_tenant()
    await record(
        stubs, t.admin.key,
        event("completions", DAY + dt.timedelta(hours=1), model="a", input_tokens=1, batch=True),
        event("completions", DAY + dt.timedelta(hours=2), model="a", input_tokens=2),
        event("completions", DAY + dt.timedelta(hours=3), model="b", input_tokens=4, service_tier="flex"),
        event("completions", DAY + dt.timedelta(hours=4), input_tokens=8),  # no model
        event("embeddings", DAY + dt.timedelta(hours=4), model="a", input_tokens=16),  # another endpoint
    )
    base = {"start_time": START, "end_time": START + 86400}

    async def results(**params):
        reply = await http.get(path("completions"), params={**base, **params}, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["data"][0]["results"]

    [total] = await results()
    assert total["input_tokens"] == 15 and total["num_model_requests"] == 4
    by_model = await results(group_by="model")
    assert [(r["model"], r["input_tokens"]) for r in by_model] == [(None, 8), ("a", 3), ("b", 4)]
    assert all(r["batch"] is None and r["project_id"] is None for r in by_model)
    by_both = await results(group_by=["model", "batch"])
    assert [(r["model"], r["batch"], r["input_tokens"]) for r in by_both] == [
        (None, False, 8), ("a", False, 2), ("a", True, 1), ("b", False, 4)]
    tiers = await results(group_by="service_tier")
    assert sorted((r["service_tier"] or "", r["input_tokens"]) for r in tiers) == [("", 11), ("flex", 4)]
    assert [r["input_tokens"] for r in await results(batch="true")] == [1]
    assert [r["input_tokens"] for r in await results(batch="false")] == [14]
    assert [r["input_tokens"] for r in await results(models=["a", "b"])] == [7]


async def test_the_four_array_encodings(http, new_tenant, stubs):
    t = await new_tenant()
    await record(stubs, t.admin.key, *[
        event("embeddings", DAY + dt.timedelta(hours=1), model=m, input_tokens=n)
        for m, n in (("a", 1), ("b", 2), ("c", 4))
    ])
    base = f"/v1/organization/usage/embeddings?start_time={START}&end_time={START + 86400}"
    forms = [
        "&models=a&models=b&group_by=model&group_by=project_id",
        "&models[]=a&models[]=b&group_by[]=model&group_by[]=project_id",
        "&models%5B%5D=a&models%5B%5D=b&group_by%5B%5D=model&group_by%5B%5D=project_id",
        "&models=a,b&group_by=model,project_id",
        "&models%5B0%5D=a&models%5B1%5D=b&group_by=model%2Cproject_id",
        "&models=a&models[]=b&group_by[]=model,project_id",
    ]
    for form in forms:
        reply = await http.get(base + form, headers=t.admin.headers)
        assert reply.status_code == 200, (form, reply.text)
        results = reply.json()["data"][0]["results"]
        assert [(r["model"], r["input_tokens"]) for r in results] == [("a", 1), ("b", 2)], form
    scalar_as_array = await http.get(base + "&limit[]=3", headers=t.admin.headers)
    assert scalar_as_array.status_code == 400 and scalar_as_array.json()["error"]["param"] == "limit"


async def test_images_files_and_web_search_filters(http, new_tenant, stubs):
    t = await new_tenant()
    when = DAY + dt.timedelta(hours=1)
    await record(
        stubs, t.admin.key,
        event("images", when, model="dall-e-3", images=1, labels={"source": "image.generation", "size": "1024x1024"}),
        event("images", when, model="dall-e-3", images=2, labels={"source": "image.edit", "size": "512x512"}),
        event("file_search_calls", when, num_requests=3, labels={"vector_store_id": "vs_1"}),
        event("file_search_calls", when, num_requests=5, labels={"vector_store_id": "vs_2"}),
        event("web_search_calls", when, model="gpt-4o", num_requests=7, labels={"context_level": "low"}),
        event("web_search_calls", when, model="gpt-4o", num_requests=11, labels={"context_level": "high"}),
    )
    base = {"start_time": START, "end_time": START + 86400}

    async def first(name, **params):
        reply = await http.get(path(name), params={**base, **params}, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["data"][0]["results"]

    assert [r["images"] for r in await first("images", sizes="512x512")] == [2]
    assert [(r["source"], r["images"]) for r in await first("images", group_by="source")] == [
        ("image.edit", 2), ("image.generation", 1)]
    assert [r["images"] for r in await first("images", sources=["image.generation", "image.variation"])] == [1]
    bad_size = await http.get(path("images"), params={**base, "sizes": "2x2"}, headers=t.admin.headers)
    assert bad_size.status_code == 400 and bad_size.json()["error"]["param"] == "sizes"
    assert [(r["vector_store_id"], r["num_requests"]) for r in await first("file_search_calls",
                                                                          group_by="vector_store_id")] == [
        ("vs_1", 3), ("vs_2", 5)]
    assert [r["num_requests"] for r in await first("file_search_calls", vector_store_ids="vs_2")] == [5]
    levels = await first("web_search_calls", group_by=["context_level", "model"])
    assert [(r["context_level"], r["model"], r["num_requests"], r["num_model_requests"]) for r in levels] == [
        ("high", "gpt-4o", 11, 1), ("low", "gpt-4o", 7, 1)]
    assert [r["num_requests"] for r in await first("web_search_calls", context_levels="low")] == [7]
    vector = await http.get(path("vector_stores"), params={**base, "group_by": "model"}, headers=t.admin.headers)
    assert vector.status_code == 400 and vector.json()["error"]["param"] == "group_by"
    no_models = await http.get(path("vector_stores"), params={**base, "models": "x"}, headers=t.admin.headers)
    assert no_models.status_code == 400
    assert no_models.json()["error"]["message"] == "Unrecognized request argument supplied: models"


async def test_buckets_are_utc_aligned_and_clipped(http, new_tenant, stubs):
    t = await new_tenant()
    await record(stubs, t.admin.key,
                 event("moderations", DAY + dt.timedelta(hours=1, minutes=10), input_tokens=1),
                 event("moderations", DAY + dt.timedelta(hours=2, minutes=50), input_tokens=2))
    start, end = START + 3600 + 1800, START + 3 * 3600 + 60  # 01:30 .. 03:01
    reply = await http.get(path("moderations"), params={"start_time": start, "end_time": end, "bucket_width": "1h"},
                           headers=t.admin.headers)
    page = reply.json()
    check_page(page)
    assert [(b["start_time"], b["end_time"]) for b in page["data"]] == [
        (start, START + 7200), (START + 7200, START + 10800), (START + 10800, end)]
    assert [[r["input_tokens"] for r in b["results"]] for b in page["data"]] == [[], [2], []]
    minutes = await http.get(path("moderations"), params={
        "start_time": START + 2 * 3600 + 49 * 60 + 30, "end_time": START + 2 * 3600 + 51 * 60, "bucket_width": "1m",
    }, headers=t.admin.headers)
    assert [[r["input_tokens"] for r in b["results"]] for b in minutes.json()["data"]] == [[], [2]]
    assert minutes.json()["data"][0]["start_time"] == START + 2 * 3600 + 49 * 60 + 30


@pytest.mark.parametrize(("width", "default", "maximum", "seconds"), [
    ("1d", 7, 31, 86400), ("1h", 24, 168, 3600), ("1m", 60, 1440, 60)])
async def test_limits_per_bucket_width(http, new_tenant, width, default, maximum, seconds):
    t = await new_tenant()
    params = {"start_time": START, "end_time": START + 2000 * seconds, "bucket_width": width}
    first = await http.get(path("embeddings"), params=params, headers=t.admin.headers)
    assert first.status_code == 200, first.text
    assert len(first.json()["data"]) == default and first.json()["has_more"] is True
    most = await http.get(path("embeddings"), params={**params, "limit": maximum}, headers=t.admin.headers)
    assert len(most.json()["data"]) == maximum  # 1m: more than one server page
    check_page(most.json())
    assert most.json()["data"][-1]["end_time"] == START + maximum * seconds
    for bad in (maximum + 1, 0, -1, "x"):
        reply = await http.get(path("embeddings"), params={**params, "limit": bad}, headers=t.admin.headers)
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["error"]["param"] == "limit"


async def test_pages_are_contiguous_and_end_defaults_to_now(http, new_tenant, stubs):
    t = await new_tenant()
    now = dt.datetime.now(UTC)
    start = unix(now - dt.timedelta(days=9, hours=5))
    await record(stubs, t.admin.key, *[
        event("audio_speeches", now - dt.timedelta(days=d, minutes=1), model="tts-1", characters=d + 1)
        for d in range(9)])
    buckets, params, pages = [], {"start_time": start, "limit": 3}, 0
    while True:
        reply = await http.get(path("audio_speeches"), params=params, headers=t.admin.headers)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        check_page(page)
        buckets.extend(page["data"])
        pages += 1
        if not page["has_more"]:
            break
        params = {**params, "page": page["next_page"]}
    days = (buckets[-1]["end_time"] - 1) // 86400 - start // 86400 + 1  # UTC days the range touches
    assert len(buckets) == days and pages == -(-days // 3)
    assert buckets[0]["start_time"] == start
    assert [b["end_time"] for b in buckets][:-1] == [b["start_time"] for b in buckets][1:]
    assert all(b["start_time"] % 86400 == 0 for b in buckets[1:])
    assert unix(now) <= buckets[-1]["end_time"] <= unix(dt.datetime.now(UTC)) + 1  # "now", fixed by the first page
    assert sum(r["characters"] for b in buckets for r in b["results"]) == sum(range(1, 10))


async def test_cursor_errors(http, new_tenant):
    t = await new_tenant()
    params = {"start_time": START, "end_time": START + 20 * 86400}
    first = (await http.get(path("embeddings"), params=params, headers=t.admin.headers)).json()
    cursor = first["next_page"]
    for bad in ("garbage!", "eyJ4IjoxfQ", cursor[:-3]):
        reply = await http.get(path("embeddings"), params={**params, "page": bad}, headers=t.admin.headers)
        assert reply.status_code == 400, bad
        assert reply.json()["error"]["param"] == "page"
    other_request = await http.get(path("embeddings"), params={**params, "page": cursor, "group_by": "model"},
                                   headers=t.admin.headers)
    assert other_request.status_code == 400 and other_request.json()["error"]["param"] == "page"
    other_endpoint = await http.get(path("moderations"), params={**params, "page": cursor}, headers=t.admin.headers)
    assert other_endpoint.status_code == 400 and other_endpoint.json()["error"]["param"] == "page"


async def test_members_see_only_their_own_usage(http, new_tenant, stubs):
    t = await new_tenant()
    when = DAY + dt.timedelta(hours=1)
    await record(stubs, t.member.key, event("completions", when, input_tokens=1))
    await record(stubs, t.other.key, event("completions", when, input_tokens=2))
    params = {"start_time": START, "end_time": START + 86400, "group_by": "user_id"}
    mine = (await http.get(path("completions"), params=params, headers=t.member.headers)).json()
    assert [(r["user_id"], r["input_tokens"]) for r in mine["data"][0]["results"]] == [(t.member.user_id, 1)]
    org = (await http.get(path("completions"), params=params, headers=t.org_admin)).json()
    assert sorted(r["input_tokens"] for r in org["data"][0]["results"]) == [1, 2]


async def test_errors_use_the_openai_envelope(http, new_tenant):
    t = await new_tenant()

    async def error(url, status, headers=t.admin.headers, **params):
        reply = await http.get(url, params=params, headers=headers)
        assert reply.status_code == status, reply.text
        body = reply.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]

    missing = await error(path("completions"), 400)
    assert missing == {"message": "Missing required parameter: 'start_time'.", "type": "invalid_request_error",
                       "param": "start_time", "code": None}
    assert (await error(path("completions"), 400, start_time="yesterday"))["param"] == "start_time"
    assert (await error(path("completions"), 400, start_time=START, bucket_width="1w"))["param"] == "bucket_width"
    assert (await error(path("completions"), 400, start_time=START, end_time=START))["param"] == "end_time"
    assert (await error(path("completions"), 400, start_time=START, group_by="size"))["param"] == "group_by"
    assert (await error(path("completions"), 400, start_time=START, batch="maybe"))["param"] == "batch"
    unknown = await error(path("completions"), 400, start_time=START, project_id="p")
    assert unknown["param"] == "project_id" and "Unrecognized" in unknown["message"]
    no_key = await error(path("completions"), 401, headers={}, start_time=START)
    assert no_key["type"] == "invalid_request_error" and no_key["code"] == "invalid_api_key"
    assert (await error(path("completions"), 401, headers={"Authorization": "Bearer sk-nope"},
                        start_time=START))["code"] == "invalid_api_key"
    await error(path("nope"), 404)
    wrong_method = await http.post(path("completions"), headers=t.admin.headers)
    assert wrong_method.status_code == 405 and set(wrong_method.json()["error"]) == {"message", "type", "param",
                                                                                     "code"}


async def test_openapi_documents_the_dialect(http):
    spec = (await http.get("/openapi.json")).json()
    for e in ENDPOINTS:
        op = spec["paths"][e.path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert params["start_time"]["required"] is True
        assert {"end_time", "bucket_width", "group_by", "limit", "page"} <= set(params)
        items = params["group_by"]["schema"]["items"]
        assert set(items.get("enum", [items.get("const")])) == set(e.keys)
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page_schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(page_schema["properties"]) == {"object", "data", "has_more", "next_page"}
        result = spec["components"]["schemas"][f"Usage{e.camel}Result"]
        assert list(result["properties"]) == ["object", *e.metrics, *e.keys]
        assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    costs = spec["paths"]["/v1/organization/costs"]["get"]
    assert {p["name"] for p in costs["parameters"]} >= {"start_time", "bucket_width", "project_ids", "group_by"}
    assert "/v1/usage" in spec["paths"] and "/v1/usage/tallies" in spec["paths"]  # QueryService, native
    for dialect_path in ("/api/get_usage_tally", "/api/login", "/api/v2/usage/tokens"):
        assert dialect_path in spec["paths"]
    tally = spec["paths"]["/api/get_usage_tally"]
    assert set(tally) == {"get", "post"}
    assert tally["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("TallyRequest")
    tokens = spec["paths"]["/api/v2/usage/tokens"]["get"]
    assert {p["name"] for p in tokens["parameters"]} == {"start_time", "end_time", "group_by"}
    assert json.dumps(tokens["responses"]["200"]).count("TokenUsageResponse") == 1


async def test_native_query_routes_answer_from_the_same_engine(http, new_tenant, stubs):
    t = await new_tenant()
    await record(stubs, t.admin.key, *[
        event("completions", DAY + dt.timedelta(hours=h), model=f"m{h % 2}", input_tokens=h) for h in range(1, 6)])
    native = await http.get("/v1/usage", params={
        "start_time": "2024-03-04T00:00:00Z", "end_time": "2024-03-05T00:00:00Z", "width": "1h", "group_by": "model",
        "page_size": 24}, headers=t.admin.headers)
    assert native.status_code == 200, native.text
    dialect = await http.get(path("completions"), params={
        "start_time": START, "end_time": START + 86400, "bucket_width": "1h", "group_by": "model"},
        headers=t.admin.headers)
    from_native = [[(g["key"].get("model"), g["metrics"]["input_tokens"]) for g in b["groups"]]
                   for b in native.json()["buckets"]]
    from_dialect = [[(r["model"], r["input_tokens"]) for r in b["results"]] for b in dialect.json()["data"]]
    assert from_native == from_dialect and sum(len(b) for b in from_native) == 5
    masked = await http.get("/v1/usage", params=[  # QueryUsageRequest.metrics, as a repeated query parameter
        ("start_time", "2024-03-04T00:00:00Z"), ("end_time", "2024-03-05T00:00:00Z"), ("width", "1h"),
        ("group_by", "model"), ("page_size", "24"), ("metrics", "input_tokens"), ("metrics", "events")],
        headers=t.admin.headers)
    assert masked.status_code == 200, masked.text
    assert [[(g["key"].get("model"), g["metrics"]["input_tokens"]) for g in b["groups"]]
            for b in masked.json()["buckets"]] == from_native
    full = [g["metrics"] for b in native.json()["buckets"] for g in b["groups"]]
    assert all(m["cost"] == "0" for m in full)  # summed: zero (these events have no price)
    assert all(set(g["metrics"]) == {"events", "input_tokens"}  # the others were not asked for: left out
               for b in masked.json()["buckets"] for g in b["groups"])
    bad = await http.get("/v1/usage", params={"start_time": "2024-03-04T00:00:00Z", "metrics": "tokens"},
                         headers=t.admin.headers)
    assert bad.status_code == 400 and "metrics" in bad.json()["message"]
    tallies = await http.get("/v1/usage/tallies", params={"window": "day", "start_time": "2024-03-01T00:00:00Z"},
                             headers=t.admin.headers)
    assert tallies.status_code == 200
    assert tallies.json()["tallies"][0]["value"]["llm"]["models"]["m1"]["counts"]["input_tokens"] == 1 + 3 + 5
