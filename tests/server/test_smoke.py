from metering.v1 import event_pb2, ingest_pb2


async def test_record_one(stubs, new_org):
    org = await new_org()
    resp = await stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(kind="completions", model="m", request_id="a", input_tokens=3)),
        metadata=org.auth,
    )
    assert resp.outcome == ingest_pb2.OUTCOME_RECORDED
