"""Encoded buckets of settled query answers, by etag, and replies put together from them.

A bucket's etag names its answer exactly (server/query/etags.py): the organization, the
read scope, the query, the bucket's range and the rollup stamp of its days. So the bucket
as encoded for one reply is the bucket for any later reply that computes the same etag,
whoever asks: QueryUsage keeps each settled bucket it encodes here, and a later call that
finds its etags here neither reads nor encodes those buckets again. The engine computes
the etags in the call's own snapshot first, so a kept bucket is only ever sent while its
answer is unchanged.

Replies are then sent as bytes (server/api/wire.py): a reply is the kept buckets' bytes put
together, then the other fields.

Each lookup counts as a hit or a miss in metering_query_cache_lookups{cache="server_buckets"}.
"""

from __future__ import annotations

from collections.abc import Iterable

from metering.lru import LRU
from metering.v1 import query_pb2
from server.api import wire
from server.core.metrics import SERVER_CACHE

MAX_BYTES = 32 << 20  # per server process
_BUCKETS_TAG = wire.tag(query_pb2.QueryUsageResponse, "buckets")


class CountedLRU(LRU[str, bytes]):
    """An LRU whose lookups are counted as hits and misses."""

    __slots__ = ()

    def get(self, key: str) -> bytes | None:
        found = super().get(key)
        SERVER_CACHE["miss" if found is None else "hit"].inc()
        return found


def bucket_cache(max_bytes: int = MAX_BYTES) -> LRU[str, bytes]:
    """Encoded UsageBuckets by etag, at most max_bytes of them (a bucket's at most an eighth)."""
    return CountedLRU(max_bytes, len, max_item_size=max_bytes // 8)


def usage_reply(buckets: Iterable[bytes], rest: query_pb2.QueryUsageResponse) -> bytes:
    """A QueryUsageResponse's encoding: `buckets` (encoded UsageBuckets), then `rest`'s fields."""
    return wire.repeated(_BUCKETS_TAG, buckets) + rest.SerializeToString()
