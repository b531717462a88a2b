"""Dashboard benchmark (issue 20): in headless Chromium (Debian's, driven by Playwright), the time from
navigation to the usage view of the query data set's month (31 x 1d buckets, stacked by model) drawn,
and of a refresh (known_etags: the settled month comes back not_modified and is taken from the page);
baseline: the same query as one REST call (POST /v1/usage:query) from Python, in the same run.

Data: bench/query_data.py's set (10M events by default, 1M with --quick), loaded before the stack starts
into METERING_BENCH_QUERY_DSN or metering_bench_data_<events> and kept there: a later run with the same
fingerprint reuses it (bench/query_data.py, prepare). The key goes into the tab's sessionStorage before
the page loads (an init script), as the login form would put it there.

Exact: after the timed runs, every number of the page's table (#usage-table: a cell per bucket and drawn
group, "other" summing the groups past the twelfth, and the total) is compared with the same query's REST
answer; the section fails on any difference.

Timings: `drawn` is the page's own performance.now() when the chart and its table are in the DOM
(milliseconds since the navigation started); the first navigation fetches the static files, the
later ones revalidate them (ETag, 304). A refresh is timed from the click to the redraw.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import httpx
from playwright.async_api import Browser

from bench.query_data import DAYS, prepare, reusable_dsn
from bench.stack import Stack
from bench.stats import latency_note, pct

CHROMIUM = "/usr/bin/chromium"
RUNS = 10
Row = tuple[str, str, str]


async def data_set(events: int) -> tuple[str, dt.datetime, list[Row]]:
    """The database of the query data set (loaded, or reused: bench/query_data.py), before the stack starts."""
    dsn = reusable_dsn(events)
    day0, rows = await prepare(dsn, events)
    return dsn, day0, [(f"dashboard: {name}", value, note) for name, value, note in rows]


async def run(st: Stack, day0: dt.datetime) -> list[Row]:
    from playwright.async_api import async_playwright

    first, last = day0.date(), (day0 + dt.timedelta(days=DAYS)).date()
    view = f"{st.http}/dashboard#usage?width=1d&group=model&metric=input_tokens&tz=UTC&from={first}&to={last}"
    refresh: list[float] = []
    reused: list[int] = []
    rows: list[Row] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # fresh: every navigation starts with nothing held (a new tab); revisit: the tab holds the buckets
        # of its last read, so the page asks with known_etags (a reload, or back from another view).
        fresh, cold, fresh_split = await _navigations(browser, st.key, view, keep=False)
        revisit, _, revisit_split = await _navigations(browser, st.key, view, keep=True)
        page = browser.contexts[-1].pages[0]
        query = json.loads(await page.eval_on_selector("#usage-table", "t => t.dataset.query"))
        for i in range(RUNS):
            await page.click("#usage-refresh")
            await page.wait_for_selector(f"#view[data-renders='{2 + i}']")
            refresh.append(float(await page.eval_on_selector("#view", "v => v.dataset.refreshMs")) / 1000)
            reused.append(int(await page.eval_on_selector("#view", "v => v.dataset.reused")))
        drawn = await page.eval_on_selector_all("#usage-table tbody tr", """rows => rows.map(r => [r.dataset.start,
            [...r.querySelectorAll("td[data-group]")].map(c => [c.dataset.group, c.dataset.value]),
            r.querySelector("td.total").textContent.replaceAll(",", "")])""")
        await browser.close()
    rest = await rest_calls(st, {**query, "page_size": 1000}, RUNS)
    known = await rest_calls(st, {**query, "page_size": 1000}, RUNS, known=True)
    answer = await _buckets(st, query)
    check_drawn(drawn, answer, query["metrics"][0])
    models = len({g["key"].get("model") for b in answer for g in b["groups"]})
    rows += [
        (f"dashboard: {len(answer)} x 1d by {models} models, navigation to drawn", f"{pct(fresh, .5):.0f} ms",
         f"{latency_note(fresh)}; {fresh_split}; new tab, nothing held; the browser's very first page "
         f"{cold:.0f} ms; target 1,000 ms"),
        ("dashboard: the same, revisited in the tab (known_etags)", f"{pct(revisit, .5):.0f} ms",
         f"{latency_note(revisit)}; {revisit_split}"),
        ("dashboard: refresh (known_etags) to redrawn", f"{pct(refresh, .5):.0f} ms",
         f"{latency_note(refresh)}; {min(reused)}-{max(reused)} of {len(answer)} buckets unchanged; target 200 ms"),
        ("  baseline: the same query, one REST call from Python", f"{pct(rest, .5):.0f} ms", latency_note(rest)),
        ("  baseline: the refresh's REST call (known_etags)", f"{pct(known, .5):.0f} ms", latency_note(known)),
    ]
    return rows


def check_drawn(drawn: list[Any], answer: list[dict[str, Any]], metric: str) -> None:
    """Every number of the page's table equals the API's: a drawn group's cell its value, "other"
    the sum of the groups not drawn, the total the sum of all; raises AssertionError on a difference."""
    if [start for start, _, _ in drawn] != [b["start_time"] for b in answer]:
        raise AssertionError("dashboard: the table's buckets are not the API's")
    for (start, cells, total), bucket in zip(drawn, answer, strict=True):
        api = {g["key"].get("model", "(unset)"): int(g["metrics"].get(metric, 0)) for g in bucket["groups"]}
        named = {group: int(value) for group, value in cells if group != "other"}
        expect = {group: api.get(group, 0) for group in named}
        if "other" in dict(cells):
            named["other"] = int(dict(cells)["other"])
            expect["other"] = sum(v for group, v in api.items() if group not in expect)
        elif set(api) - set(named):
            raise AssertionError(f"dashboard: {start}: groups {sorted(set(api) - set(named))} not drawn")
        if named != expect or int(total) != sum(api.values()):
            raise AssertionError(f"dashboard: {start}: drawn {named} total {total}, the API says {expect} "
                                 f"total {sum(api.values())}")


async def _navigations(browser: Browser, key: str, view: str, *, keep: bool) -> tuple[list[float], float, str]:
    """Seconds from navigation to drawn of RUNS navigations after a first one (its ms returned apart),
    and where their time went (p50s, from the page's clock: loading the page and its modules until the
    view asks, the view's query, drawing the chart and the table)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    drop = "" if keep else "sessionStorage.removeItem('metering.usage.held');"
    await context.add_init_script(f"sessionStorage.setItem('metering.credential', {json.dumps(key)});{drop}")
    page = await context.new_page()
    drawn: list[float] = []
    parts: list[list[float]] = [[], [], []]
    first = 0.0
    for i in range(RUNS + 1):
        await page.goto("about:blank")
        await page.goto(view)
        await page.wait_for_selector("#view[data-renders='1']")
        at, took = map(float, await page.eval_on_selector("#view", "v => [v.dataset.drawnAt, v.dataset.loadMs]"))
        status = re.search(r"fetched in (\d+) ms, drawn in (\d+) ms", await page.inner_text("#usage-status"))
        if i == 0:
            first = at
        else:
            drawn.append(at / 1000)
            for part, ms in zip(parts, (at - took, *map(float, status.groups() if status else (0, 0))), strict=True):
                part.append(ms / 1000)
    split = ", ".join(f"{name} {pct(part, .5):.0f} ms" for name, part in zip(("page", "query", "draw"), parts,
                                                                            strict=True))
    return drawn, first, split


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
