"""Property: walking `next_page` covers the requested range exactly once, page after page,
with every bucket's numbers equal to the events recorded in it."""

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import auth, module_org
from tests.gateway.usage_events import UTC, event, record, unix

BASE = unix(dt.datetime(2024, 2, 10, tzinfo=UTC))
SPAN = 3 * 86400  # events lie in [BASE, BASE + SPAN)
SECONDS = {"1m": 60, "1h": 3600, "1d": 86400}
MAX_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}
MAX_RANGE = {"1m": 8 * 3600, "1h": 5 * 86400, "1d": 60 * 86400}
MAX_PAGES = 12


@pytest.fixture(scope="module")
async def tenant(stubs):
    """An organization with events at known instants: (headers, {unix time: input_tokens})."""
    key = (await module_org(stubs, "pages")).admin_key
    rng = random.Random(20240210)
    times = sorted({BASE + rng.randrange(SPAN) for _ in range(80)} | {BASE, BASE + 3600, BASE + 86400 - 1})
    tokens = {t: i + 1 for i, t in enumerate(times)}
    await record(stubs, key, *[
        event("completions", dt.datetime.fromtimestamp(t, UTC), model=f"m{t % 3}", input_tokens=n)
        for t, n in tokens.items()
    ])
    return auth(key), tokens


@st.composite
def requests(draw):
    width = draw(st.sampled_from(sorted(SECONDS)))
    start = BASE - 86400 + draw(st.integers(0, SPAN + 86400))
    length = draw(st.integers(1, MAX_RANGE[width]))
    buckets = -(-(start + length) // SECONDS[width]) - start // SECONDS[width]
    limit = draw(st.integers(max(1, -(-buckets // MAX_PAGES)), MAX_LIMIT[width]))
    group_by = draw(st.sampled_from([[], ["model"]]))
    return width, start, start + length, limit, group_by


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests())
async def test_pages_cover_the_range_exactly_once(request, http, tenant):
    headers, tokens = tenant
    width, start, end, limit, group_by = request
    step = SECONDS[width]
    params = {"start_time": start, "end_time": end, "bucket_width": width, "limit": limit, "group_by": group_by}
    buckets, pages = [], []
    while True:
        reply = await http.get("/v1/organization/usage/completions", params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        pages.append(page)
        assert 1 <= len(page["data"]) <= limit
        buckets.extend(page["data"])
        if not page["has_more"]:
            assert page["next_page"] is None
            break
        assert len(page["data"]) == limit and isinstance(page["next_page"], str)
        params["page"] = page["next_page"]
    edges = [b["start_time"] for b in buckets] + [buckets[-1]["end_time"]]
    assert edges[0] == start and edges[-1] == end
    assert [b["end_time"] for b in buckets] == edges[1:]  # no gap, no overlap, nothing twice
    assert all(lo < hi for lo, hi in zip(edges, edges[1:], strict=False))
    assert all(edge % step == 0 for edge in edges[1:-1])  # UTC-aligned inside the range
    assert len(pages) == -(-len(buckets) // limit)
    for b in buckets:
        inside = {t: n for t, n in tokens.items() if b["start_time"] <= t < b["end_time"]}
        got = sum(r["input_tokens"] for r in b["results"])
        assert got == sum(inside.values()), b
        assert sum(r["num_model_requests"] for r in b["results"]) == len(inside)
        if group_by:
            assert sorted(r["model"] for r in b["results"]) == sorted({f"m{t % 3}" for t in inside})
        else:
            assert len(b["results"]) == (1 if inside else 0)
