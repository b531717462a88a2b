"""Rendered query answers, revalidated by the server on every request.

A grouped month of OpenAI usage is ~10,000 results; reading them from the server and
rendering them costs most of a request. But a dashboard asks the same question again and
again while most of the answer, over settled history, does not change. So a dialect keeps
what it rendered of each bucket of a `QueryUsage` page, with the bucket's etag
(UsageBucket.etag), and sends those etags back as `known_etags` the next time the same
question is asked. The server leaves a bucket empty and marks it `not_modified` only when,
in its own snapshot, no window of the bucket is dirty and no rollup pass has changed its
days since the etag was made (server/query_etags.py): then the kept rendering is exactly
what rendering the bucket would give. Only the other buckets (typically today, while it is
being written) are read and rendered.

* Never stale: every request still goes to the server, which authenticates the caller (a
  revoked key fails as before) and decides from Postgres what changed.
* Never shared across callers: the key starts with a hash of the caller's credentials, and
  the etags also name the organization and read scope.
* The key holds everything else that shapes the rendering (the endpoint, the request
  without its end time and page fields, whose effect on a bucket its etag covers).
* Bounded by the bytes it holds, least recently used dropped first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from gateway.ingest_batcher import Metadata, lane_key

MAX_BYTES = 64 << 20
MAX_ENTRY_BYTES = 16 << 20  # larger renderings are not kept


Buckets = dict[str, bytes]  # etag -> the bucket as rendered


class AnswerCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._answers: OrderedDict[bytes, Buckets] = OrderedDict()

    @staticmethod
    def key(metadata: Metadata, *parts: bytes | str) -> bytes:
        """The caller's credentials (hashed: the cache never holds a secret) and `parts`."""
        digest = hashlib.sha256(repr(lane_key(metadata)).encode())
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.digest()

    def get(self, key: bytes) -> Buckets:
        found = self._answers.get(key)
        if found is None:
            return {}
        self._answers.move_to_end(key)
        return found

    def put(self, key: bytes, buckets: Buckets) -> None:
        """Keeps `buckets` (those of the latest page) in place of what `key` had."""
        old = self._answers.pop(key, None)
        if old is not None:
            self.size -= _size(old)
        size = _size(buckets)
        if not buckets or size > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        self._answers[key] = buckets
        self.size += size
        while self.size > self.max_bytes:
            _, dropped = self._answers.popitem(last=False)
            self.size -= _size(dropped)

    def __len__(self) -> int:
        return len(self._answers)


def _size(buckets: Buckets) -> int:
    return sum(len(body) for body in buckets.values())
