"""Fixtures of the query tests: the QueryService stub and a pool set up as the server's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from metering.v1 import query_pb2_grpc
from server.storage.db import create_pool


@pytest.fixture(scope="module")
def query(channel: grpc.aio.Channel) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(channel)


@pytest.fixture(scope="module")
async def pool(database_url: str, server: object) -> AsyncIterator[asyncpg.Pool]:
    """A pool set up as the server's (binary jsonb codec), but reset on release (asyncpg's
    default, reset=None): the tests prepare statements alone, and asyncpg's prepare() ends
    with a Flush, not a Sync, so a connection released after one would stay in its implicit
    transaction, holding locks on every table the statement names, and the partition DDL of
    a later ingest would wait for it (the server never releases a connection after a bare prepare)."""
    made = await create_pool(database_url, min_size=1, max_size=2, reset=None)
    yield made
    await made.close()
