"""Rate-limit answers over REST: a 429 (the server's RESOURCE_EXHAUSTED) always carries `Retry-After`.

The server's status carries a `google.rpc.RetryInfo`; `GatewayError.from_rpc` keeps it among the
details. This middleware reads it from the rendered body when the dialect shows details (native
routes), else uses 1 second, and rounds up to whole seconds as RFC 9110 wants. The request body
limit (16 MiB, 413) is `gateway.http.body_limit`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from gateway.http.middleware import HTTPMiddleware

_DELAY = re.compile(r'"retry_?[dD]elay"\s*:\s*"(\d+(?:\.\d+)?)s"')
MAX_BUFFERED = 64 * 1024


def retry_after_seconds(body: bytes, default: int = 1) -> int:
    match = _DELAY.search(body[:MAX_BUFFERED].decode("utf-8", "replace"))
    if match is None:
        return default
    return max(1, math.ceil(float(match.group(1))))


class RetryAfterMiddleware(HTTPMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def wrapped(message: Message) -> None:
            if held or (message["type"] == "http.response.start" and message["status"] == 429
                        and not any(k.lower() == b"retry-after" for k, _ in message.get("headers", []))):
                held.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await _flush(held, send)
                return
            await send(message)

        await self.app(scope, receive, wrapped)


async def _flush(held: list[Message], send: Send) -> None:
    start, bodies = held[0], held[1:]
    body = b"".join(m.get("body", b"") for m in bodies)
    headers: list[Any] = list(start.get("headers", []))
    headers.append((b"retry-after", str(retry_after_seconds(body)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["RetryAfterMiddleware", "retry_after_seconds"]
