"""TraceService (OTLP/gRPC `opentelemetry.proto.collector.trace.v1.TraceService/Export`): GenAI
spans recorded as usage events.

Thin: the spans are mapped by server/otlp/spans.py, each event checked by the ingest Validator
with the caller's scope, and the valid ones written by the IngestServicer's writer (one span: its
group commit, shared with concurrent unary calls; more: one batch write, as RecordEvents).
Credentials come as for every call: `authorization: Bearer <key>` metadata, which the OTLP
exporters send from OTEL_EXPORTER_OTLP_HEADERS. The spans not recorded (no GenAI usage, not a
model call, invalid) are counted in partial_success with their reasons; a duplicate span (a
retried export) is no rejection: it was recorded the first time."""

from __future__ import annotations

import datetime as dt

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from server.api.context import Context, Core, caller
from server.api.ingest import MAX_BATCH, IngestServicer, count_outcomes
from server.core.errors import InvalidArgument, MeteringError
from server.core.events import NewEvent
from server.core.metrics import INGESTED
from server.ingest.validation import Validator
from server.otlp import spans

SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]


class TraceServicer:
    """Registered with server/api/wire.add_service (typed, unlike the generated helper)."""

    def __init__(self, core: Core, ingest: IngestServicer) -> None:
        self.core = core
        self.ingest = ingest

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Context
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        principal = await caller(self.core, context)
        mapped = spans.events(request)
        if len(mapped.events) > MAX_BATCH:
            raise InvalidArgument("resource_spans", f"at most {MAX_BATCH} GenAI spans per export")
        horizon = await self.core.records.horizons.of(principal.org_id)  # retention (docs/storage.md)
        check = Validator(principal, dt.datetime.now(dt.UTC), self.ingest.series_memo, horizon)
        valid: list[tuple[int, NewEvent]] = []
        for span, event in mapped.events:
            try:
                valid.append((principal.org_id, check(event)))
            except MeteringError as error:
                mapped.reject(span, error.message)  # names the event field (model, user_id, timestamp, ...)
        counted = INGESTED["otlp"]
        try:
            if len(valid) == 1:
                written = [await self.ingest.committer.submit(valid[0])]
            else:
                written = await self.ingest.writer.write(valid) if valid else []
        except Exception:
            counted["failed"].inc(len(valid))
            raise
        count_outcomes(counted, written, len(mapped.events) - len(valid))
        return mapped.response()
