"""Dictionary encoding of event dimensions: one `series` row per distinct
(kind, project, user, key, client, model, provider, endpoint, api name, tier,
batch, status, currency, labels), shared by all events that have them."""

from __future__ import annotations

import hashlib

import asyncpg

from server.db import q
from server.events import SeriesKey


def fingerprint(key: SeriesKey) -> bytes:
    # repr of a tuple of str/None/bool is canonical and stable across Python versions.
    canonical = repr((key.kind, key.dims, key.batch, key.status, key.currency, key.labels))
    if key.price_version is not None:  # appended only when set: older fingerprints stay valid
        canonical += "|" + key.price_version
    return hashlib.sha256(canonical.encode()).digest()[:16]


class SeriesCache:
    """Maps (org_id, SeriesKey) to series_id; misses are upserted in their own
    statement (outside the ingest transaction, so a rolled-back write never
    leaves a cached id that does not exist)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._ids: dict[tuple[int, SeriesKey], int] = {}
        self._max = max_entries

    async def resolve(self, pool: asyncpg.Pool, keys: set[tuple[int, SeriesKey]]) -> dict[tuple[int, SeriesKey], int]:
        found = {k: self._ids[k] for k in keys if k in self._ids}
        missing = [k for k in keys if k not in found]
        if missing:
            loaded = await self._load(pool, missing)
            if len(self._ids) + len(loaded) > self._max:
                self._ids.clear()
            self._ids.update(loaded)
            found.update(loaded)
        return found

    async def _load(self, pool: asyncpg.Pool, missing: list[tuple[int, SeriesKey]]) -> dict[tuple[int, SeriesKey], int]:
        prints = {(org, fingerprint(key)): (org, key) for org, key in missing}
        keys = [key for _, key in prints.values()]
        orgs = [org for org, _ in prints]
        fps = [fp for _, fp in prints]
        dims = [[key.dims[i] for key in keys] for i in range(len(keys[0].dims))]
        async with pool.acquire() as conn:
            await conn.execute(
                q("insert_series"), orgs, fps, [k.kind for k in keys], *dims,
                [k.batch for k in keys], [k.status for k in keys], [k.currency for k in keys],
                [dict(k.labels) for k in keys], [k.price_version for k in keys],
            )
            rows = await conn.fetch(q("find_series"), orgs, fps)
        return {prints[(row["org_id"], bytes(row["fingerprint"]))]: row["series_id"] for row in rows}
