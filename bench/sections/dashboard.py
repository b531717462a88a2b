"""Dashboard benchmark (issue 20): in headless Chromium (Debian's, driven by Playwright), the time from
navigation to the usage view of the query data set's month (31 x 1d buckets, stacked by model) drawn,
and of a refresh (known_etags: the settled month comes back not_modified and is taken from the page);
baseline: the same query as one REST call (POST /v1/usage:query) from Python, in the same run.

Data: bench/query_data.py's set (10M events by default, 1M with --quick; reused from
METERING_BENCH_QUERY_DSN as the query section does). The key goes into the tab's sessionStorage before
the page loads (an init script), as the login form would put it there.

Timings: `drawn` is the page's own performance.now() when the chart and its table are in the DOM
(milliseconds since the navigation started); the first navigation fetches the static files, the
later ones revalidate them (ETag, 304). A refresh is timed from the click to the redraw.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Browser

from bench.query_data import DAYS, database_state, load, mark_reusable, settle
from bench.stack import Stack
from bench.stats import latency_note, pct

CHROMIUM = "/usr/bin/chromium"
RUNS = 10
Row = tuple[str, str, str]


async def data_set(st: Stack, events: int) -> tuple[dt.datetime, list[Row]]:
    """The query data set's first day, loading (and settling) it unless a reusable one is there."""
    reuse = os.environ.get("METERING_BENCH_QUERY_DSN")
    state = await database_state(st.dsn) if reuse else None
    if state is not None and state[0] == events:
        settled = await settle(st.dsn)
        return state[1], [(f"dashboard: reused database of {events:,} events", "", f"settle {settled:.0f} s")]
    if reuse:
        conn = await asyncpg.connect(st.dsn)
        try:
            if await conn.fetchval("select exists (select 1 from events)"):
                raise RuntimeError(f"METERING_BENCH_QUERY_DSN holds other data (not {events:,} bench events)")
        finally:
            await conn.close()
    day0, loaded = await load(st.dsn, events)
    if reuse:
        await mark_reusable(st.dsn, events, day0)
    settled = await settle(st.dsn)
    return day0, [(f"dashboard: load {events:,} events (SQL) + rollups", f"{loaded + settled:,.0f} s", "")]


async def run(st: Stack, events: int) -> list[Row]:
    from playwright.async_api import async_playwright

    day0, rows = await data_set(st, events)
    first, last = day0.date(), (day0 + dt.timedelta(days=DAYS)).date()
    view = f"{st.http}/dashboard#usage?width=1d&group=model&metric=input_tokens&tz=UTC&from={first}&to={last}"
    refresh: list[float] = []
    reused: list[int] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # fresh: every navigation starts with nothing held (a new tab); revisit: the tab holds the buckets
        # of its last read, so the page asks with known_etags (a reload, or back from another view).
        fresh, cold = await _navigations(browser, st.key, view, keep=False)
        revisit, _ = await _navigations(browser, st.key, view, keep=True)
        page = browser.contexts[-1].pages[0]
        query = json.loads(await page.eval_on_selector("#usage-table", "t => t.dataset.query"))
        for i in range(RUNS):
            await page.click("#usage-refresh")
            await page.wait_for_selector(f"#view[data-renders='{2 + i}']")
            refresh.append(float(await page.eval_on_selector("#view", "v => v.dataset.refreshMs")) / 1000)
            reused.append(int(await page.eval_on_selector("#view", "v => v.dataset.reused")))
        await browser.close()
    rest = await rest_calls(st, {**query, "page_size": 1000}, RUNS)
    known = await rest_calls(st, {**query, "page_size": 1000}, RUNS, known=True)
    answer = await _buckets(st, query)
    models = len({g["key"].get("model") for b in answer for g in b["groups"]})
    rows += [
        (f"dashboard: {len(answer)} x 1d by {models} models, navigation to drawn", f"{pct(fresh, .5):.0f} ms",
         f"{latency_note(fresh)}; new tab, nothing held; the browser's very first page {cold:.0f} ms; "
         "target 1,000 ms"),
        ("dashboard: the same, revisited in the tab (known_etags)", f"{pct(revisit, .5):.0f} ms",
         latency_note(revisit)),
        ("dashboard: refresh (known_etags) to redrawn", f"{pct(refresh, .5):.0f} ms",
         f"{latency_note(refresh)}; {min(reused)}-{max(reused)} of {len(answer)} buckets unchanged; target 200 ms"),
        ("  baseline: the same query, one REST call from Python", f"{pct(rest, .5):.0f} ms", latency_note(rest)),
        ("  baseline: the refresh's REST call (known_etags)", f"{pct(known, .5):.0f} ms", latency_note(known)),
    ]
    return rows


async def _navigations(browser: Browser, key: str, view: str, *, keep: bool) -> tuple[list[float], float]:
    """Seconds from navigation to drawn of RUNS navigations after a first one (its ms returned apart)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    drop = "" if keep else "sessionStorage.removeItem('metering.usage.held');"
    await context.add_init_script(f"sessionStorage.setItem('metering.credential', {json.dumps(key)});{drop}")
    page = await context.new_page()
    drawn: list[float] = []
    first = 0.0
    for i in range(RUNS + 1):
        await page.goto("about:blank")
        await page.goto(view)
        await page.wait_for_selector("#view[data-renders='1']")
        at = float(await page.eval_on_selector("#view", "v => v.dataset.drawnAt"))
        if i == 0:
            first = at
        else:
            drawn.append(at / 1000)
    return drawn, first


async def _buckets(st: Stack, query: dict[str, Any]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=st.http, timeout=60) as http:
        reply = await http.post("/v1/usage:query", json={**query, "page_size": 1000}, headers=_auth(st))
        reply.raise_for_status()
        return list(reply.json()["buckets"])


async def rest_calls(st: Stack, body: dict[str, Any], runs: int, known: bool = False) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=st.http, timeout=60) as http:
        etags = [b["etag"] for b in (await http.post("/v1/usage:query", json=body, headers=_auth(st))).json()["buckets"]
                 if b["etag"]]
        for _ in range(runs):
            started = time.perf_counter()
            reply = await http.post("/v1/usage:query", json={**body, "known_etags": etags if known else []},
                                    headers=_auth(st))
            reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def _auth(st: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {st.key}"}
