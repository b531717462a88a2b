"""Rendered query answers, revalidated by the server on every request.

A grouped month of OpenAI usage is ~10,000 results; reading them from the server and
rendering them costs most of a request. But a dashboard asks the same question again and
again while most of the answer, over settled history, does not change. So a dialect keeps
what it rendered of each bucket of a `QueryUsage` page under the bucket's etag
(UsageBucket.etag), and sends the etags it holds for a caller's question back as
`known_etags` when the caller asks it again. The server leaves a bucket empty and marks it
`not_modified` only when, in its own snapshot, no window of the bucket is dirty and no
rollup pass has changed its days since the etag was made (server/query/etags.py): then the
kept rendering is exactly what rendering the bucket would give. Only the other buckets
(typically today, while it is being written) are read and rendered.

* Never stale: every request still goes to the server, which authenticates the caller (a
  revoked key fails as before) and decides from Postgres what changed.
* An etag names the organization and read scope with the answer, so a rendering is only
  ever used for a bucket the server named with that etag for this caller: either
  `not_modified` for one the caller sent, or a bucket sent in full with that etag (another
  caller of the same scope asked first, so its rendering is reused).
* Keys hold everything else that shapes a rendering: the endpoint and the request without
  its end time and page fields (whose effect on a bucket is in its etag). Which etags a
  caller holds is kept under a hash of its credentials (never the secret itself).
* Bounded by the bytes of the renderings, least recently used dropped first.

Each lookup of a rendering counts as a hit or a miss in
metering_query_cache_lookups{cache="gateway_answers"} (gateway/http/metrics.py).
"""

from __future__ import annotations

import hashlib

from gateway.http.metrics import ANSWER_CACHE
from gateway.upstream.ingest_batcher import Metadata, lane_digest
from metering.lru import LRU

MAX_BYTES = 64 << 20
MAX_ENTRY_BYTES = 16 << 20  # larger renderings are not kept
MAX_CALLERS = 10_000
Buckets = dict[str, bytes]  # etag -> the bucket as rendered


class AnswerCache:
    def __init__(self, max_bytes: int = MAX_BYTES, max_callers: int = MAX_CALLERS) -> None:
        # (shape, etag) -> rendering; caller -> (shape, etags)
        self._rendered: LRU[tuple[bytes, str], bytes] = LRU(max_bytes, len, max_item_size=MAX_ENTRY_BYTES)
        self._held: LRU[bytes, tuple[bytes, list[str]]] = LRU(max_callers)

    @property
    def size(self) -> int:
        """The bytes of the renderings kept."""
        return self._rendered.size

    @staticmethod
    def shape(*parts: bytes | str) -> bytes:
        """What shapes a rendering (e.g. the endpoint and the request without range and page)."""
        digest = hashlib.sha256()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.digest()

    @staticmethod
    def caller(metadata: Metadata, shape: bytes) -> bytes:
        """A caller's question: its credentials (hashed: the cache never holds a secret) and shape."""
        return hashlib.sha256(lane_digest(metadata) + shape).digest()

    def held(self, caller: bytes) -> Buckets:
        """The renderings still kept of the buckets `caller` was last answered."""
        found = self._held.get(caller)
        if found is None:
            return {}
        shape, etags = found
        return {etag: body for etag in etags if (body := self.rendered(shape, etag)) is not None}

    def rendered(self, shape: bytes, etag: str) -> bytes | None:
        found = self._rendered.get((shape, etag))
        ANSWER_CACHE["miss" if found is None else "hit"].inc()
        return found

    def keep(self, caller: bytes, shape: bytes, buckets: Buckets) -> None:
        """`buckets` (the settled ones of `caller`'s latest answer) replace what it held."""
        self._held.pop(caller)
        if not buckets:
            return
        self._held.put(caller, (shape, list(buckets)))
        for etag, body in buckets.items():
            if (shape, etag) not in self._rendered:  # an etag names one rendering: kept as it was
                self._rendered.put((shape, etag), body)

    def __len__(self) -> int:
        return len(self._rendered)
