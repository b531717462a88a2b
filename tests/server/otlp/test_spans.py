"""The span -> usage event mapping (server/otlp/spans.py), on spans made by the official SDK: the
current GenAI conventions and the variants OpenLLMetry, OpenLIT, Pydantic AI/Logfire and
OpenInference emit, and the spans that are skipped."""

from __future__ import annotations

import pytest

from metering.v1 import event_pb2
from server.otlp import spans
from tests.server.otlp.spans_support import CHAT, ERROR, Attrs, export_request, make_spans, request_id


def _one(attributes: Attrs, **kwargs: object) -> event_pb2.UsageEvent:
    made = make_spans([("call", attributes)], **kwargs)  # type: ignore[arg-type]
    mapped = spans.events(export_request(made))
    assert mapped.rejected == []
    [(_, event)] = mapped.events
    return event


def test_current_conventions_map_to_every_field() -> None:
    made = make_spans([("chat gpt-4o", {**CHAT, "user.id": "u-7", "openai.response.service_tier": "default"})],
                      resource={"metering.project_id": "proj-a"})
    [(source, event)] = spans.events(export_request(made)).events
    span = made[0]
    assert span.end_time is not None
    expected = event_pb2.UsageEvent(
        request_id=request_id(span), kind="completions", model="gpt-4o-2024-08-06", provider="openai",
        service_tier="default", client_id="chatbot", user_id="u-7", project_id="proj-a",
        input_tokens=1200, output_tokens=300, input_cached_tokens=1000, input_cache_write_tokens=100,
        counters={"reasoning_tokens": 120},
    )
    expected.timestamp.FromNanoseconds(span.end_time)
    assert event == expected
    assert spans.describe(source).startswith("'chat gpt-4o' (")


@pytest.mark.parametrize("attributes", [
    # OpenLLMetry (Traceloop) before the 1.27 names
    {"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
     "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 300,
     "gen_ai.usage.cache_read_input_tokens": 1000, "gen_ai.usage.cache_creation_input_tokens": 100,
     "gen_ai.usage.reasoning_tokens": 120, "llm.usage.total_tokens": 1500},
    # OpenLIT
    {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
     "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning_tokens": 120,
     "gen_ai.usage.cache_read_input_tokens": 1000, "gen_ai.usage.cache_creation_input_tokens": 100,
     "gen_ai.usage.total_tokens": 1500, "gen_ai.usage.cost": 0.0123},
    # Pydantic AI / Logfire
    {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
     "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
     "gen_ai.usage.details.cache_read_tokens": 1000, "gen_ai.usage.details.cache_write_tokens": 100,
     "gen_ai.usage.details.reasoning_tokens": 120},
    # OpenInference
    {"openinference.span.kind": "LLM", "llm.provider": "openai", "llm.model_name": "gpt-4o",
     "llm.token_count.prompt": 1200, "llm.token_count.completion": 300,
     "llm.token_count.prompt_details.cache_read": 1000, "llm.token_count.prompt_details.cache_write": 100,
     "llm.token_count.completion_details.reasoning": 120},
], ids=["openllmetry", "openlit", "logfire", "openinference"])
def test_instrumentation_variants_map_alike(attributes: Attrs) -> None:
    event = _one(attributes)
    assert (event.kind, event.model, event.provider) == ("completions", "gpt-4o", "openai")
    assert (event.input_tokens, event.output_tokens, event.input_cached_tokens, event.input_cache_write_tokens) == (
        1200, 300, 1000, 100)
    assert dict(event.counters) == {"reasoning_tokens": 120}
    assert not event.cost  # an instrumentation's own estimate is not our price book's


@pytest.mark.parametrize(("operation", "kind"), [
    ("chat", "completions"), ("text_completion", "completions"), ("generate_content", "completions"),
    ("embeddings", "embeddings"), ("embedding", "embeddings"), ("rerank", "rerank"), ("", "completions"),
])
def test_operation_names_become_kinds(operation: str, kind: str) -> None:
    attributes: dict[str, str | int] = {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 5}
    if operation:
        attributes["gen_ai.operation.name"] = operation
    assert _one(attributes).kind == kind


@pytest.mark.parametrize(("sent", "provider"), [
    ("gcp.gemini", "google"), ("gcp.vertex_ai", "google"), ("aws.bedrock", "aws"), ("azure.ai.openai", "azure"),
    ("anthropic", "anthropic"), ("x_ai", "x-ai"), ("someone-new", "someone-new"),
])
def test_provider_names_become_price_book_providers(sent: str, provider: str) -> None:
    assert _one({"gen_ai.provider.name": sent, "gen_ai.usage.input_tokens": 1}).provider == provider


def test_counts_sent_as_doubles_or_strings_are_taken_when_whole() -> None:
    event = _one({"gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.output_tokens": "7"})
    assert (event.input_tokens, event.output_tokens) == (12, 7)


def test_an_error_span_of_a_model_call_is_an_error_event_without_tokens() -> None:
    made = make_spans([("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                 "error.type": "RateLimitError"}, ERROR)])
    [(_, event)] = spans.events(export_request(made)).events
    assert (event.status, event.error_message, event.model, event.input_tokens) == (
        "error", "rate limited", "gpt-4o", 0)


def test_spans_without_usage_and_aggregates_are_skipped_with_reasons() -> None:
    made = make_spans([
        ("GET /health", {"http.request.method": "GET"}),
        ("invoke_agent tutor", {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 900}),
        ("workflow", {"traceloop.span.kind": "workflow", "gen_ai.usage.prompt_tokens": 900}),
        ("chat", CHAT),
        ("bad", {"gen_ai.usage.input_tokens": -1}),
        ("worse", {"gen_ai.usage.output_tokens": "many"}),
    ])
    mapped = spans.events(export_request(made))
    assert [span.name for span, _ in mapped.events] == ["chat"]
    reasons = [reason for _, reason in mapped.rejected]
    assert reasons == [
        spans.NO_USAGE, spans.NOT_A_MODEL_CALL, spans.NOT_A_MODEL_CALL,
        "gen_ai.usage.input_tokens: must be between 0 and 1000000000000",
        "gen_ai.usage.output_tokens: must be a whole number of tokens",
    ]
    reply = mapped.response()
    assert reply.partial_success.rejected_spans == 5
    message = reply.partial_success.error_message
    assert message.startswith("5 spans not recorded: no GenAI usage (no gen_ai.usage.* token counts) (1): "
                              "'GET /health' (")
    assert "not a model call" in message and "gen_ai.usage.input_tokens: must be between" in message


def test_a_request_with_only_genai_spans_has_no_partial_success() -> None:
    reply = spans.events(export_request(make_spans([("chat", CHAT)]))).response()
    assert not reply.HasField("partial_success")


def test_the_summary_is_bounded() -> None:
    rejected = [(f"'span {i}' ({'0' * 32}/{'0' * 16})", f"reason {i}") for i in range(100)]
    assert len(spans.summary(rejected)) == spans.MAX_MESSAGE
