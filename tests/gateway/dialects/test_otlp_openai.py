"""End to end, with no code of ours in the application: the official `openai` client, instrumented by
`opentelemetry-instrumentation-openai-v2`, calls a chat-completions stub on loopback that answers
known usage; the SDK's BatchSpanProcessor sends the spans with the OTLP HTTP exporter to the gateway's
/v1/traces. Exactly those tokens are recorded, once, even when the export is sent again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
import uvicorn
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import Org, Stubs
from tests.gateway.conftest import LoopbackServer
from tests.gateway.dialects.test_otlp import http_export, stored
from tests.server.otlp.spans_support import request_id

USAGE = {"prompt_tokens": 37, "completion_tokens": 12, "total_tokens": 49,
         "prompt_tokens_details": {"cached_tokens": 16}, "completion_tokens_details": {"reasoning_tokens": 5}}


async def chat_completion(request: Request) -> JSONResponse:
    asked = await request.json()
    return JSONResponse({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
        "model": f"{asked['model']}-2024-07-18", "system_fingerprint": "fp_stub",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "Hello.", "refusal": None}}],
        "usage": USAGE,
    })


@pytest.fixture
async def model_stub() -> AsyncIterator[str]:
    """A chat-completions endpoint on an ephemeral loopback port; yields its base URL (…/v1)."""
    app = Starlette(routes=[Route("/v1/chat/completions", chat_completion, methods=["POST"])])
    server = LoopbackServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def instrumented() -> Any:
    """openai instrumented for the test only (the instrumentor patches the module)."""
    instrumentor = OpenAIInstrumentor()
    yield instrumentor
    instrumentor.uninstrument()


async def test_an_instrumented_openai_app_is_metered_once(
    live_gateway: str, model_stub: str, instrumented: OpenAIInstrumentor, stubs: Stubs,
    new_org: Callable[[], Awaitable[Org]],
) -> None:
    org = await new_org()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    exporter = OTLPSpanExporter(endpoint=f"{live_gateway}/v1/traces",
                                headers={"authorization": f"Bearer {org.admin_key}"}, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent))
    instrumented.instrument(tracer_provider=provider)

    client = openai.AsyncOpenAI(base_url=model_stub, api_key="sk-stub", max_retries=0)
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert reply.usage is not None and reply.usage.prompt_tokens == 37
    assert await asyncio.to_thread(provider.force_flush, 10_000)  # the exporter blocks: not on this loop
    await asyncio.to_thread(provider.shutdown)
    await client.close()

    [span] = sent.get_finished_spans()
    assert await http_export(live_gateway, org.admin_key, (span,)) == SpanExportResult.SUCCESS  # sent again
    [event] = await stored(stubs, org)
    assert (event.request_id, event.kind, event.model, event.provider, event.client_id, event.status) == (
        request_id(span), "completions", "gpt-4o-mini-2024-07-18", "openai", "support-bot", "success")
    assert (event.input_tokens, event.output_tokens, event.num_model_requests) == (37, 12, 1)
    # Cached tokens count when the span carries them (this version's chat path does not emit them).
    assert event.input_cached_tokens == (span.attributes or {}).get("gen_ai.usage.cache_read.input_tokens", 0)
