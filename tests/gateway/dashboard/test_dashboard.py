"""The dashboard in a real browser (Chromium, headless) against the gateway and server on loopback:
log in with a key, the usage chart's numbers (its table) equal the API's for the query the view
states, in the browser's zone and after switching zone and grouping; a refresh reads only what changed
(known_etags); costs never show unpriced usage as 0; a member sees only its own usage; an admin creates
a key (shown once) and revokes it; every view draws without errors and without leaving the origin;
/docs is Swagger UI (vendored) drawing the reference without leaving the origin."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import pathlib
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.gateway.conftest import PASSWORD
from tests.gateway.dashboard.conftest import Usage, api_query

ROOT = pathlib.Path(__file__).resolve().parents[3]
ZONE = "America/New_York"
VIEWS = ("usage", "costs", "budgets", "events", "keys", "prices")
WAIT_MS = 90_000  # a ceiling for waits on a shared machine, not a speed check (bench/sections/dashboard.py)


@pytest.fixture
async def page(browser: Browser, live_gateway: str, tmp_path: pathlib.Path) -> AsyncIterator[Page]:
    """A fresh tab (own sessionStorage) in New York time; it fails the test on a page error, an error on
    the console (a Content-Security-Policy refusal among them) or a request leaving the gateway's origin."""
    context = await browser.new_context(timezone_id=ZONE, viewport={"width": 1280, "height": 900},
                                        accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    tab.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    tab.on("request", lambda r: None if r.url.startswith(live_gateway) or r.url.startswith("blob:")
           else problems.append(f"left the origin: {r.url}"))
    yield tab
    await context.close()
    assert problems == []


async def log_in(page: Page, base: str, key: str, view: str = "") -> None:
    await page.goto(f"{base}/dashboard{'#' + view if view else ''}")
    await page.fill("#key", key)
    await page.click("#key-form button")
    await page.wait_for_selector("#nav:not([hidden])")


async def shown(page: Page) -> tuple[dict, dict[tuple[str, str], str]]:
    """The query the usage view states and its table: (bucket start, group) -> value as shown."""
    table = await page.wait_for_selector("#usage-table")
    assert table is not None
    query = json.loads(await table.get_attribute("data-query") or "{}")
    cells = await page.eval_on_selector_all("#usage-table tbody td[data-group]", """cells => cells.map(c =>
        [c.closest('tr').dataset.start, c.dataset.group, c.dataset.value])""")
    return query, {(start, group): value for start, group, value in cells if value not in ("0", "")}


def expected(buckets: list[dict], group: str, metric: str) -> dict[tuple[str, str], str]:
    return {(b["start_time"], g["key"].get(group, "(unset)") if group else "all"): str(g["metrics"][metric])
            for b in buckets for g in b["groups"] if str(g["metrics"][metric]) != "0"}


async def redrawn(page: Page, renders: int) -> None:
    await page.wait_for_selector(f"#view[data-renders='{renders + 1}']")  # (the page's CSP forbids eval)


async def test_usage_chart_matches_the_api_in_any_zone_and_grouping(page, live_gateway, usage: Usage, tmp_path):
    await log_in(page, live_gateway, usage.admin_key)
    await page.wait_for_selector("#usage-chart .uplot")
    query, cells = await shown(page)
    assert query["time_zone"] == ZONE and query["group_by"] == ["model"] and query["width"] == "1d"
    assert query["metrics"] == ["input_tokens"]
    want = expected(await api_query(live_gateway, usage.admin, query), "model", "input_tokens")
    assert cells == want and len({g for _, g in want}) == 4  # three chat models and the embeddings
    kept = await page.evaluate("Object.fromEntries(Object.entries(sessionStorage))")
    assert kept["metering.credential"] == usage.admin_key and usage.admin_key not in page.url
    assert set(kept) <= {"metering.credential", "metering.usage.held", "metering.zone"}
    await page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
    if os.environ.get("METERING_DASHBOARD_SCREENSHOT") == "1":
        await page.screenshot(path=str(ROOT / "docs" / "img" / "dashboard.png"))

    renders = int(await page.eval_on_selector("#view", "v => v.dataset.renders"))
    await page.fill("#usage-zone", "Asia/Kolkata")
    await page.press("#usage-zone", "Enter")
    await redrawn(page, renders)
    query, cells = await shown(page)
    assert query["time_zone"] == "Asia/Kolkata"
    buckets = await api_query(live_gateway, usage.admin, query)
    assert cells == expected(buckets, "model", "input_tokens")
    assert {start for start, _ in cells} <= {b["start_time"] for b in buckets}
    assert all(start.endswith("T18:30:00Z") for start, _ in cells)  # local midnights in India

    renders = int(await page.eval_on_selector("#view", "v => v.dataset.renders"))
    await page.select_option("#usage-group", "user_id")
    await redrawn(page, renders)
    query, cells = await shown(page)
    assert query["group_by"] == ["user_id"]
    assert cells == expected(await api_query(live_gateway, usage.admin, query), "user_id", "input_tokens")
    assert {usage.member.user_id, usage.other.user_id} <= {g for _, g in cells}

    # Refresh: every bucket is settled, so all come back not_modified and are taken from the page.
    renders = int(await page.eval_on_selector("#view", "v => v.dataset.renders"))
    await page.click("#usage-refresh")
    await redrawn(page, renders)
    reused = int(await page.eval_on_selector("#view", "v => v.dataset.reused"))
    assert reused == len(await api_query(live_gateway, usage.admin, query))
    assert (await shown(page))[1] == cells


async def test_costs_never_show_unpriced_usage_as_zero(page, live_gateway, usage: Usage):
    await log_in(page, live_gateway, usage.admin_key, "usage?metric=cost&group=model")
    query, cells = await shown(page)
    assert query["metrics"] == ["cost", "unpriced_events"]
    assert cells == expected(await api_query(live_gateway, usage.admin, query), "model", "cost")
    unpriced = await page.eval_on_selector_all("#usage-table td[data-group='embed-small'][data-unpriced='1']",
                                               "cells => cells.map(c => c.textContent)")
    assert unpriced and all(text.startswith("unpriced") for text in unpriced)  # not "0"
    await page.click("nav a[data-view=costs]")
    await page.wait_for_selector("#costs-table")
    text = await page.inner_text("#costs-table")
    assert "unpriced" in text


async def test_a_member_sees_only_its_own_usage(page, live_gateway, usage: Usage):
    """Logged in with a username and password (a login token, AdminService.Login)."""
    await page.goto(f"{live_gateway}/dashboard#usage?group=user_id")
    await page.fill("#username", usage.member.username)
    await page.fill("#password", PASSWORD)
    await page.click("#password-form button")
    await page.wait_for_selector("#nav:not([hidden])")
    assert (await page.evaluate("sessionStorage.getItem('metering.credential')")).startswith("mlt.")
    query, cells = await shown(page)
    assert {group for _, group in cells} == {usage.member.user_id}
    assert cells == expected(await api_query(live_gateway, usage.admin, {
        **query, "filters": [{"field": "user_id", "values": [usage.member.user_id]}]}), "user_id", "input_tokens")
    assert await page.is_hidden("nav a[data-view=keys]")


async def test_an_admin_creates_a_key_shown_once_and_revokes_it(page, live_gateway, usage: Usage, tmp_path):
    await log_in(page, live_gateway, usage.admin_key, "keys")
    await page.fill("#key-name", "made-in-the-browser")
    await page.click("#key-create button[type=submit]")
    key = (await page.inner_text("#new-key-value")).strip()
    assert key.startswith("mk_")
    async with httpx.AsyncClient(base_url=live_gateway) as http:
        assert (await http.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})).status_code == 200
        row = page.locator("#keys-table tr", has_text="made-in-the-browser")
        key_id = await row.get_attribute("data-key")
        await page.screenshot(path=str(tmp_path / "keys.png"), full_page=True)
        button = row.locator("button.revoke")
        await button.click()
        await button.click()  # the second click revokes
        await page.wait_for_selector(f"#keys-table tr[data-key='{key_id}'] td.revoked")
        assert (await http.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})).status_code == 401
    await page.reload()  # the key was shown once: the page holds it no more
    await page.wait_for_selector("#keys-table")
    assert key not in await page.content()


async def test_every_view_draws(page, live_gateway, usage: Usage, tmp_path):
    await log_in(page, live_gateway, usage.admin_key)
    await page.wait_for_selector("#usage-table")
    for view in VIEWS:
        await page.click(f"nav a[data-view={view}]")
        await page.wait_for_selector(f"#view[data-view='{view}']")
        await page.wait_for_load_state("networkidle")
        assert await page.locator("#view .error").count() == 0, await page.inner_text("#view")
        await page.screenshot(path=str(tmp_path / f"{view}.png"), full_page=True)
    await page.click("nav a[data-view=budgets]")
    await page.wait_for_selector("#budgets-table")
    budget = page.locator("#budgets-table tr", has_text="tokens-per-month")
    now = dt.datetime.now(dt.UTC)
    resets = dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=dt.UTC)  # the UTC month's end
    cells = await budget.locator("td").all_inner_texts()
    assert "100,000" in cells[4] and resets.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S") in cells
    share = float(await budget.locator(".bar").get_attribute("data-share") or "nan")
    assert 0 < share < 1  # the month's input tokens against the limit
    await page.click("nav a[data-view=events]")
    await page.click("#events-table tbody tr >> nth=0")
    await page.wait_for_selector("#event-card")
    assert "Event " in await page.inner_text("#event-card h2")
    # An event recorded, adjusted and voided: its history lists the three, in order, with what changed.
    async with httpx.AsyncClient(base_url=live_gateway, headers=usage.admin) as client:
        recorded = await client.post("/v1/events", json={
            "request_id": f"trail-{dt.datetime.now().timestamp()}", "kind": "completions", "model": "gpt-4o",
            "input_tokens": 10})
        event_id = recorded.json()["event_id"]
        adjusted = await client.patch(f"/v1/events/{event_id}", params={"reason": "corrected"},
                                      json={"input_tokens": 12})
        voided = await client.post(f"/v1/events/{event_id}:void", json={"reason": "a test call"})
        assert (adjusted.status_code, voided.status_code) == (200, 200), (adjusted.text, voided.text)
        key_id = (await client.get("/v1/whoami")).json()["api_key_id"]
    await page.evaluate(f"location.hash = 'events?voided=1&event={event_id}'")
    await page.wait_for_selector(f"#event-card:has(h2:has-text('{event_id}')) #event-history")
    rows = await page.locator("#event-history tbody tr").all()
    assert [await row.get_attribute("data-action") for row in rows] == ["recorded", "updated", "voided"]
    cells = [await row.locator("td").all_inner_texts() for row in rows]
    assert [c[1:] for c in cells] == [["recorded", "", "", ""],
                                      ["updated", key_id, "corrected", "input_tokens: 10 → 12"],
                                      ["voided", key_id, "a test call", "active: true → false"]]
    assert [c[0] for c in cells] == sorted(c[0] for c in cells)  # times in the page's zone, oldest first
    await page.screenshot(path=str(tmp_path / "event.png"), full_page=True)


async def test_download_csv_equals_the_api(page, live_gateway, usage: Usage, http):
    if "/v1/usage:export" not in (await http.get("/openapi.json")).json()["paths"]:
        pytest.skip("this gateway has no GET /v1/usage:export")
    await log_in(page, live_gateway, usage.admin_key, "usage?group=model&metric=output_tokens")
    query, cells = await shown(page)
    await page.wait_for_selector("#usage-csv:not([hidden])")
    async with page.expect_download() as info:
        await page.click("#usage-csv")
    download = await info.value
    rows = list(csv.DictReader(io.StringIO(pathlib.Path(await download.path()).read_text())))
    got = {(utc(r["start_time"]), r["model"]): r["output_tokens"] for r in rows if r["output_tokens"] not in ("", "0")}
    want = expected(await api_query(live_gateway, usage.admin, query), "model", "output_tokens")
    assert got == {(utc(start), group): value for (start, group), value in want.items()} and cells == want


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_reference_is_swagger_ui_over_the_document(browser, live_gateway):
    context = await browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(live_gateway) else outside.append(r.url))
    page.on("console", lambda m: outside.append(f"console: {m.text}") if m.type == "error" else None)
    try:
        await page.goto(f"{live_gateway}/docs")
        await page.wait_for_selector(".swagger-ui .opblock-tag")
        text = await page.inner_text(".swagger-ui")
        assert "Authentication" in text and "Authorization: Bearer" in text
        assert await page.locator(".swagger-ui .btn.authorize").count() == 1
        await page.click(".opblock-tag[data-tag=QueryService]")
        await page.wait_for_selector("#operations-QueryService-QueryService_QueryUsage_1, .opblock-summary-path")
        assert "/v1/usage" in await page.inner_text(".swagger-ui")
    finally:
        await context.close()
    assert outside == []
