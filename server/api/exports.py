"""ExportService: every page of a usage query or an event listing, streamed.

No export logic of its own: a usage chunk is the page QueryUsage answers (encoded as
QueryUsageResponse, whose field numbers ExportUsageChunk shares), an event chunk the page
ListEvents answers (the same for ListEventsResponse and ExportEventsChunk). Each chunk's
cursor is that page's next_page_token, so the next page starts right after the chunk's last
row (keyset pagination), and a client that resumes with it gets every row exactly once.

Memory: one page at a time. Each chunk is yielded to grpc, which sends it as the client's
flow-control window allows; the next page is read only after that (the async generator is
not resumed before the write completes), so a slow client slows the export, never grows it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from metering.v1 import query_pb2, records_pb2
from server.api.bucket_cache import usage_reply
from server.api.context import Context, Core, caller
from server.api.query import QueryServicer
from server.core.errors import InvalidArgument
from server.records.store import MAX_PAGE_SIZE

DEFAULT_EVENTS_CHUNK = MAX_PAGE_SIZE  # events per chunk unless the request says otherwise
# An event chunk stays under gRPC's default 4 MiB receive limit: with payloads (up to 1 MiB a field)
# a page that encodes larger is read again with a quarter of the events (page_size is an upper bound).
MAX_CHUNK_BYTES = 4 << 20


class ExportServicer:
    """Registered with server.api.wire.add_service: usage chunks are sent as QueryUsage encoded them."""

    def __init__(self, core: Core, query: QueryServicer) -> None:
        self.core = core
        self.query = query

    async def ExportUsage(self, request: query_pb2.QueryUsageRequest, context: Context) -> AsyncIterator[bytes]:
        if request.if_none_match:
            raise InvalidArgument("if_none_match", "not taken by an export, which sends every bucket")
        if request.known_etags:
            raise InvalidArgument("known_etags", "not taken by an export, which sends every bucket")
        page = query_pb2.QueryUsageRequest()
        page.CopyFrom(request)
        while True:
            buckets, rest = await self.query.usage_page(page, context)
            yield usage_reply(buckets, rest)
            if not rest.next_page_token:
                return
            page.page_token = rest.next_page_token

    async def ExportEvents(self, request: records_pb2.ListEventsRequest, context: Context) -> AsyncIterator[bytes]:
        principal = await caller(self.core, context)
        page = records_pb2.ListEventsRequest()
        page.CopyFrom(request)
        asked = page.page_size = page.page_size or DEFAULT_EVENTS_CHUNK
        while True:
            reply = await self.core.records.list(principal, page)
            encoded = reply.SerializeToString()
            if len(encoded) > MAX_CHUNK_BYTES and page.page_size > 1:  # large payloads: read fewer again
                page.page_size = max(1, page.page_size // 4)
                continue
            yield encoded
            if not reply.next_page_token:
                return
            page.page_token = reply.next_page_token
            page.skip = 0  # skip applies before the first chunk only
            if len(encoded) < MAX_CHUNK_BYTES // 4:
                page.page_size = min(asked, page.page_size * 2)

