"""Encoded buckets of settled query answers, by etag, and replies put together from them.

A bucket's etag names its answer exactly (server/query_etags.py): the organization, the
read scope, the query, the bucket's range and the rollup stamp of its days. So the bucket
as encoded for one reply is the bucket for any later reply that computes the same etag,
whoever asks: QueryUsage keeps each settled bucket it encodes here, and a later call that
finds its etags here neither reads nor encodes those buckets again. The engine computes
the etags in the call's own snapshot first, so a kept bucket is only ever sent while its
answer is unchanged.

Replies are then sent as bytes (server/wire.py): a reply is the kept buckets' bytes put
together, then the other fields.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from metering.v1 import query_pb2
from server import wire

MAX_BYTES = 32 << 20  # per server process
_BUCKETS_TAG = wire.tag(query_pb2.QueryUsageResponse, "buckets")


class BucketCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    def get(self, etag: str) -> bytes | None:
        found = self._kept.get(etag)
        if found is not None:
            self._kept.move_to_end(etag)
        return found

    def put(self, etag: str, encoded: bytes) -> None:
        if not etag or etag in self._kept or len(encoded) > self.max_bytes // 8:
            return
        self._kept[etag] = encoded
        self.size += len(encoded)
        while self.size > self.max_bytes:
            self.size -= len(self._kept.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._kept)


def usage_reply(buckets: Iterable[bytes], rest: query_pb2.QueryUsageResponse) -> bytes:
    """A QueryUsageResponse's encoding: `buckets` (encoded UsageBuckets), then `rest`'s fields."""
    return wire.repeated(_BUCKETS_TAG, buckets) + rest.SerializeToString()
