"""Who a set of credentials is (`WhoAmI`), cached, for replies the gateway builds itself.

`POST /usage` answers with the stored record without reading it back: the server fills in
`user_id` and `api_key_id` from the caller's credentials when the request omits them (an API key's
user and id, a login token's user), and both are fixed for given credentials: a key is never
re-bound (only revoked), a token names its user. So one `WhoAmI` per credentials is enough; the
answer is cached in memory, keyed by a hash of the credentials (the cache never holds a secret),
least recently used dropped first. Revocation is not the cache's concern: every ingest call is
authenticated by the server itself, and a failed lookup is never cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.upstream.ingest_batcher import Metadata, lane_digest
from metering.lru import LRU
from metering.v1 import admin_pb2

MAX_ENTRIES = 10_000
Fetch = Callable[[Metadata], Awaitable[admin_pb2.Principal]]  # raises GatewayError


class Identities:
    def __init__(self, fetch: Fetch, max_entries: int = MAX_ENTRIES) -> None:
        self._fetch = fetch
        self._known: LRU[bytes, admin_pb2.Principal] = LRU(max_entries)
        self._pending: dict[bytes, asyncio.Task[admin_pb2.Principal]] = {}

    async def of(self, metadata: Metadata) -> admin_pb2.Principal:
        key = lane_digest(metadata)
        known = self._known.get(key)
        if known is not None:
            return known
        lookup = self._pending.get(key)
        if lookup is None:  # else a lookup for the same credentials is on its way: share it
            lookup = self._pending[key] = asyncio.get_running_loop().create_task(self._lookup(key, metadata))
            lookup.add_done_callback(_retrieve)
        return await asyncio.shield(lookup)  # a caller that goes away does not cancel the others' lookup

    async def _lookup(self, key: bytes, metadata: Metadata) -> admin_pb2.Principal:
        try:
            principal = await self._fetch(metadata)
        finally:
            del self._pending[key]
        self._known.put(key, principal)
        return principal


def _retrieve(task: asyncio.Task[admin_pb2.Principal]) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: no "never retrieved" report when every caller left
