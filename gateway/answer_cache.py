"""Rendered query answers, revalidated by the server on every request.

A grouped month of OpenAI usage is ~10,000 results; reading them from the server and
rendering them costs most of a request. But a dashboard asks the same question again and
again while the answer, over settled history, does not change. So a dialect keeps what it
rendered for a `QueryUsage` page, with the page's etag (QueryUsageResponse.etag), and sends
the etag back as `if_none_match` the next time the same question is asked. The server
answers `not_modified` with no buckets only when, in its own snapshot, no window of the page
is dirty and no rollup pass has changed its days since the etag was made
(server/query.py): then the stored rendering is exactly what rendering the answer would give.

* Never stale: every request still goes to the server, which authenticates the caller (a
  revoked key fails as before) and decides from Postgres whether the answer changed.
* Never shared across callers: the key starts with a hash of the caller's credentials, and
  the etag also names the organization and read scope.
* The key holds everything else that shapes the rendering (the endpoint, the request
  without its end time and page fields, whose effect on the answer the etag covers).
* Bounded by the bytes it holds, least recently used dropped first.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

from gateway.ingest_batcher import Metadata, lane_key

MAX_BYTES = 64 << 20
MAX_ENTRY_BYTES = 16 << 20  # larger renderings are not kept


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    etag: str
    body: bytes


class AnswerCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()

    @staticmethod
    def key(metadata: Metadata, *parts: bytes | str) -> bytes:
        """The caller's credentials (hashed: the cache never holds a secret) and `parts`."""
        digest = hashlib.sha256(repr(lane_key(metadata)).encode())
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.digest()

    def get(self, key: bytes) -> Answer | None:
        found = self._answers.get(key)
        if found is not None:
            self._answers.move_to_end(key)
        return found

    def put(self, key: bytes, etag: str, body: bytes) -> None:
        old = self._answers.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        if not etag or len(body) > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        self._answers[key] = Answer(etag, body)
        self.size += len(body)
        while self.size > self.max_bytes:
            _, dropped = self._answers.popitem(last=False)
            self.size -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._answers)
