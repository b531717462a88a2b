"""A browser for the dashboard tests: Debian's Chromium driven by Playwright (async API: the gateway
under test runs in the test's own event loop), one per module; and an organization with usage.

Screenshots go to a temporary directory; with METERING_DASHBOARD_SCREENSHOT=1 the usage view is also
written to docs/img/dashboard.png (the README's picture)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from metering.v1 import admin_pb2, budgets_pb2, budgets_pb2_grpc
from server.rollups.recompute import recompute_day
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Stubs
from tests.gateway.conftest import PASSWORD, Person, auth, module_org
from tests.gateway.usage_events import UTC, event, record

CHROMIUM = pathlib.Path("/usr/bin/chromium")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@dataclasses.dataclass
class Usage:
    """An organization whose admin key and two members (users with keys) recorded usage over the last
    three UTC days, settled by the rollup pass (so its buckets have etags)."""

    organization_id: str
    admin_key: str
    member: Person
    other: Person
    days: list[dt.datetime]

    @property
    def admin(self) -> dict[str, str]:
        return auth(self.admin_key)


@pytest.fixture(scope="module")
async def usage(stubs: Stubs, channel: grpc.aio.Channel, db) -> Usage:
    org = await module_org(stubs, "dash")
    people = []
    for prefix in ("member", "other"):
        name = f"{prefix}-{random_text(8).lower()}"
        user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=org.organization_id, username=name, password=PASSWORD, role=admin_pb2.ROLE_MEMBER,
        ), metadata=MASTER)
        key = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=org.organization_id, user_id=user.user_id, name=name), metadata=MASTER)
        people.append(Person(user.user_id, name, key.key))
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    for i, day in enumerate(days):
        for j, person in enumerate(people):
            await record(stubs, person.key, *(
                event("completions", day + dt.timedelta(hours=h), model=MODELS[(h + j) % 3], provider="openai",
                      input_tokens=100 * (i + 1) + h + 7 * j, output_tokens=10 + h, cost="0.0125")
                for h in (1, 5, 13, 22)))
        await record(stubs, org.admin_key, event("embeddings", day + dt.timedelta(hours=9), model="embed-small",
                                                 input_tokens=64 * (i + 1)))  # no cost, no price: unpriced
    budget = budgets_pb2.Budget(name="tokens-per-month", metric="input_tokens", limit="100000",
                                period=budgets_pb2.BUDGET_PERIOD_MONTH, time_zone="UTC")
    await budgets_pb2_grpc.BudgetServiceStub(channel).CreateBudget(
        budgets_pb2.CreateBudgetRequest(budget=budget), metadata=org.auth)
    number = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    for day in days:
        await recompute_day(db, number, day)
    return Usage(org.organization_id, org.admin_key, people[0], people[1], days)


async def api_query(base: str, headers: dict[str, str], query: dict) -> list[dict]:
    """Every bucket of a QueryUsage, over the REST API (what the dashboard must show)."""
    async with httpx.AsyncClient(base_url=base) as http:
        reply = await http.post("/v1/usage:query", json={**query, "page_size": 1000}, headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert not body["next_page_token"]
    return list(body["buckets"])
