"""RecordService: get, list, update and void stored events, and read an event's history."""

from __future__ import annotations

from metering.v1 import event_pb2, records_pb2, records_pb2_grpc
from server.api.context import Context, Core, caller


class RecordsServicer(records_pb2_grpc.RecordServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    async def GetEvent(self, request: records_pb2.GetEventRequest, context: Context) -> event_pb2.UsageEvent:
        principal = await caller(self.core, context)
        return await self.core.records.get(principal, request.event_id, request.request_id)

    async def GetEventHistory(
        self, request: records_pb2.GetEventHistoryRequest, context: Context
    ) -> records_pb2.EventHistory:
        principal = await caller(self.core, context)
        return await self.core.records.history(principal, request.event_id, request.request_id)

    async def ListEvents(
        self, request: records_pb2.ListEventsRequest, context: Context
    ) -> records_pb2.ListEventsResponse:
        return await self.core.records.list(await caller(self.core, context), request)

    async def UpdateEvent(
        self, request: records_pb2.UpdateEventRequest, context: Context
    ) -> event_pb2.UsageEvent:
        principal = await caller(self.core, context)
        return await self.core.records.update(principal, request.event, list(request.update_mask.paths), request.reason)

    async def VoidEvent(self, request: records_pb2.VoidEventRequest, context: Context) -> event_pb2.UsageEvent:
        principal = await caller(self.core, context)
        return await self.core.records.void(principal, request.event_id, request.reason)
