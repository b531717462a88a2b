"""X-Request-Id: taken from the client (or made up), echoed in the response and
forwarded to the server as `x-request-id` metadata."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from gateway.http.middleware import HTTPMiddleware
from metering.logs import request_id

HEADER = "x-request-id"
SCOPE_KEY = "metering.request_id"
_VALID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def request_id_of(conn: HTTPConnection) -> str:
    rid = conn.scope.get(SCOPE_KEY)
    return rid if isinstance(rid, str) else new_request_id()


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware(HTTPMiddleware):
    """Pure ASGI, so it sees every response, errors and 404s included."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = HTTPConnection(scope).headers.get(HEADER, "").strip()
        rid = given if _VALID.match(given) else new_request_id()
        scope[SCOPE_KEY] = rid
        request_id.set(rid)  # in every log line of the request (metering/logs.py)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)
