"""A webhook receiver on loopback that verifies every delivery with the `standardwebhooks`
package, as a receiver would; it can be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclasses.dataclass
class Received:
    webhook_id: str
    payload: dict[str, Any]


class Receiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []  # the received must verify with each of these
        self.received: list[Received] = []
        self.rejected = 0
        self.delay = 0.0
        self.arrived = asyncio.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            payloads = [Webhook(secret).verify(body, dict(request.headers)) for secret in self.secrets]
        except WebhookVerificationError:
            self.rejected += 1
            return PlainTextResponse("bad signature", status_code=400)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(Received(request.headers["webhook-id"], payloads[0]))
        self.arrived.set()
        return PlainTextResponse("thanks")

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._task = asyncio.ensure_future(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
