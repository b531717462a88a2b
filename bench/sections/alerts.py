"""The alerts section: from the acknowledgement of the event that crosses a threshold to the
signed webhook's arrival at a receiver on loopback (verified with `standardwebhooks`), while
events are ingested in the background; the same with no background ingest as the baseline.

Each crossing has a budget of its own (scope model = "alert-<i>", limit $1, threshold 100%):
one event of $2 crosses it; the time runs from RecordEvent's reply to the receiver's reading
of the delivery naming that budget. The path: the server enqueues the rollup of the event's
windows (METERING_ROLLUP_DELAY, default 1 s), the worker's rollup job runs detection of the
organization's rules, the outbox's NOTIFY wakes the delivery loop, which signs and POSTs.
"""

from __future__ import annotations

import asyncio
import time

import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bench.budgets import background_ingest
from bench.stack import Stack, channel, free_port
from bench.stats import latency_note, pct
from metering.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    event_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    query_pb2,
)

Row = tuple[str, str, str]
INGEST_RATE = 20_000  # the background rate (events/s); the row says what was reached


class Arrivals:
    """A webhook receiver: when each budget's event arrived (perf_counter), signatures verified."""

    def __init__(self) -> None:
        self.secret = ""
        self.at: dict[str, float] = {}
        self.bad = 0
        self.port = free_port()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad += 1
            return PlainTextResponse("bad signature", status_code=400)
        self.at.setdefault(event["data"]["budget_id"], time.perf_counter())
        return PlainTextResponse("ok")

    def server(self) -> uvicorn.Server:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        return uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                             lifespan="off"))


async def _crossings(st: Stack, arrivals: Arrivals, tag: str, n: int) -> list[float]:
    """n crossings one after another; the latency of each in seconds."""
    latencies = []
    async with channel(st.target) as ch:
        budgets = budgets_pb2_grpc.BudgetServiceStub(ch)
        ingest = ingest_pb2_grpc.IngestServiceStub(ch)
        ids = []
        for i in range(n):
            made = await budgets.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(
                limit="1", thresholds=["100"],
                scope=[query_pb2.Filter(field="model", values=[f"alert-{tag}-{i}"])])), metadata=st.auth)
            ids.append(made.budget_id)
        for i, budget_id in enumerate(ids):
            await ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
                kind="completions", model=f"alert-{tag}-{i}", cost="2")), metadata=st.auth)
            acked = time.perf_counter()
            deadline = acked + 60
            while budget_id not in arrivals.at and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            if budget_id in arrivals.at:
                latencies.append(arrivals.at[budget_id] - acked)
    return latencies


async def run(st: Stack, quick: bool) -> list[Row]:
    n = 20 if quick else 100
    arrivals = Arrivals()
    server = arrivals.server()
    serving = asyncio.create_task(server.serve())
    try:
        async with channel(st.target) as ch:
            endpoint = await alerts_pb2_grpc.AlertServiceStub(ch).CreateWebhookEndpoint(
                alerts_pb2.CreateWebhookEndpointRequest(endpoint=alerts_pb2.WebhookEndpoint(
                    url=f"http://127.0.0.1:{arrivals.port}/hook", event_types=["budget.threshold.triggered"])),
                metadata=st.auth)
        arrivals.secret = endpoint.secret
        alone = await _crossings(st, arrivals, "alone", n)
        async with background_ingest(st, INGEST_RATE) as ingested:
            await asyncio.sleep(2)  # today's windows dirty, the rollup worker busy
            loaded = await _crossings(st, arrivals, "loaded", n)
            rate = ingested()
    finally:
        server.should_exit = True
        await serving
    p99 = pct(loaded, .99) if loaded else float("nan")
    return [
        (f"alerts: event ack -> signed webhook, {n} crossings, background ingest", f"p99 {p99:,.0f} ms",
         f"{latency_note(loaded)}; {len(loaded)} of {n} arrived; target p99 <= 2,000 ms: "
         f"{'met' if p99 <= 2000 else 'missed'}; {arrivals.bad} bad signatures"),
        ("  background ingest meanwhile", f"{rate:,.0f} events/s", f"target {INGEST_RATE:,}"),
        ("  baseline: the same, no background ingest", f"p99 {pct(alone, .99) if alone else float('nan'):,.0f} ms",
         f"{latency_note(alone)}; {len(alone)} of {n} arrived"),
    ]
