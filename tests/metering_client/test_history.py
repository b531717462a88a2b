"""get_event_history, sync and async: an event's recording and its void, read back through the SDK."""

from __future__ import annotations

import asyncio

import pytest

from metering.v1 import records_pb2
from metering_client import AsyncMeteringClient, MeteringClient, NotFoundError

Change = records_pb2.EventChange


async def test_history_of_an_event_sync_and_async(target, new_org, stubs):
    org = await new_org()
    async with AsyncMeteringClient(target, org.admin_key) as client:
        receipt = await client.record(request_id="sdk-h", kind="completions", model="m", input_tokens=3)
        event_id = (await receipt).event_id
        await stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=event_id, reason="sdk test"),
                                      metadata=org.auth)
        by_request = await client.get_event_history(request_id="sdk-h")
        assert await client.get_event_history(event_id=event_id) == by_request
        with pytest.raises(NotFoundError):
            await client.get_event_history(request_id="no-such-request")

    def read() -> records_pb2.EventHistory:
        with MeteringClient(target, org.admin_key) as sync_client:
            with pytest.raises(NotFoundError):
                sync_client.get_event_history(request_id="no-such-request")
            return sync_client.get_event_history(request_id="sdk-h")

    assert await asyncio.to_thread(read) == by_request
    assert by_request.event_id == event_id
    assert [(c.action, c.reason) for c in by_request.changes] == [(Change.ACTION_RECORDED, ""),
                                                                  (Change.ACTION_VOIDED, "sdk test")]
    assert [(f.field, f.before, f.after) for f in by_request.changes[1].fields] == [("active", "true", "false")]
