"""A cap on request bodies. Too large a body raises HTTPException(413) where the
endpoint reads it, so the route's dialect renders the error in its own shape
(Starlette's own max_body_size answers in plain text)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.middleware import HTTPMiddleware


class BodyLimitMiddleware(HTTPMiddleware):
    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        super().__init__(app)
        self.max_body_size = max_body_size

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length", "")
        too_large = HTTPException(413, f"request body larger than {self.max_body_size} bytes")
        if declared.isdigit() and int(declared) > self.max_body_size:

            async def refuse() -> Message:
                raise too_large

            await self.app(scope, refuse, send)
            return
        total = 0

        async def counted() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_body_size:
                    raise too_large
            return message

        await self.app(scope, counted, send)
