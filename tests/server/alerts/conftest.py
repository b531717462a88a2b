"""Alerts on the session's real server and database: a detector, the organization's
internal number, and the budgets fixtures (tests/server/budgets/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from server.alerts.detect import Detector
from server.runtime.app import MeteringServer
from server.storage.db import create_pool
from tests.server.budgets.conftest import Team, budgets, new_team

__all__ = ["budgets", "new_team"]


@pytest.fixture(scope="session")
async def pool(database_url: str, server: MeteringServer) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the server and the worker make them (jsonb decoded)."""
    made = await create_pool(database_url, min_size=1, max_size=6, application_name="metering-test-alerts")
    yield made
    await made.close()


@pytest.fixture
def detector(pool: asyncpg.Pool) -> Detector:
    return Detector(pool)


@pytest.fixture
def org_number(db: asyncpg.Pool) -> Callable[[Team], Awaitable[int]]:
    async def number(team: Team) -> int:
        value: int = await db.fetchval("select org_id from organizations where id = $1", team.org.organization_id)
        return value

    return number
