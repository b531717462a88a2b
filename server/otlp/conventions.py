"""The span attributes read as usage, by the event field each one fills (docs/otlp.md has the
table). For each field the names are tried in order and the first one present wins: the
current GenAI semantic conventions (open-telemetry/semantic-conventions-genai,
model/gen-ai/registry.yaml) first, then the older or instrumentation-specific spellings:
OpenLLMetry (Traceloop), OpenLIT, Pydantic AI / Logfire, OpenInference."""

from __future__ import annotations

# Fixed event counters. Per the conventions, input tokens include cache reads and cache writes
# and output tokens include reasoning tokens: the event counters mean the same (docs/prices.md).
COUNTERS: dict[str, tuple[str, ...]] = {
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",  # conventions before 1.27, OpenLLMetry, OpenLIT
        "llm.usage.prompt_tokens",  # early OpenLLMetry
        "llm.token_count.prompt",  # OpenInference
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "input_cached_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry
        "llm.usage.cache_read_input_tokens",
        "gen_ai.usage.details.cache_read_tokens",  # Pydantic AI / Logfire
        "llm.token_count.prompt_details.cache_read",
    ),
    "input_cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.usage.cache_creation_input_tokens",
        "gen_ai.usage.details.cache_write_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "input_audio_tokens": ("gen_ai.usage.details.input_audio_tokens", "llm.token_count.prompt_details.audio"),
    "input_cached_audio_tokens": ("gen_ai.usage.details.cache_audio_read_tokens",),
    "output_audio_tokens": ("gen_ai.usage.details.output_audio_tokens", "llm.token_count.completion_details.audio"),
}
# Extra counters (the event's `counters` map).
EXTRA_COUNTERS: dict[str, tuple[str, ...]] = {
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",  # OpenLLMetry, OpenLIT
        "gen_ai.usage.details.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
}
MODEL = (
    "gen_ai.response.model",  # the model that answered (a dated snapshot prices as its model)
    "gen_ai.request.model",
    "llm.response.model",
    "llm.request.model",
    "llm.model_name",
)
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
OPERATION = ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind")
SERVICE_TIER = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "gen_ai.response.service_tier",  # OpenLIT
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
    "gen_ai.request.service_tier",
)
ERROR_TYPE = "error.type"
# Who: span attributes first, then the resource's. metering.* names the event's fields directly.
USER = ("metering.user_id", "user.id", "enduser.id", "gen_ai.request.user", "llm.user")
PROJECT = ("metering.project_id",)
CLIENT = ("metering.client_id", "service.name")

# gen_ai.operation.name (and the other instrumentations' words for it) -> the event's kind.
KINDS: dict[str, str] = {
    "chat": "completions",
    "text_completion": "completions",
    "generate_content": "completions",
    "completion": "completions",  # OpenLLMetry llm.request.type
    "llm": "completions",  # OpenInference span kind LLM (lower-cased)
    "embeddings": "embeddings",
    "embedding": "embeddings",
    "rerank": "rerank",
    "reranker": "rerank",
    "image": "images",  # OpenLIT
    "audio": "audio_speeches",  # OpenLIT (text to speech)
}
# Operations that are not one model call: an agent, workflow or tool span may carry the usage of
# the model calls inside it (Pydantic AI's agent run, OpenLLMetry's workflow), which their own
# spans report: counting both would count twice.
NOT_MODEL_CALLS = frozenset({
    "invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "plan", "retrieval",
    "workflow", "task", "agent", "tool", "chain", "retriever", "guardrail", "evaluator",  # OpenLLMetry, OpenInference
    "framework", "vectordb", "execute_task",  # OpenLIT
})
NOT_MODEL_CALL_MARKERS = ("traceloop.span.kind",)  # OpenLLMetry: set on workflow/task/agent/tool spans only

# gen_ai.provider.name (and gen_ai.system's older values) -> the price book's provider ids
# (genai-prices' ids). Others are kept as sent.
PROVIDERS: dict[str, str] = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "google.ai.studio": "google",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "aws.bedrock": "aws",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "mistral_ai": "mistral",
    "ibm.watsonx.ai": "ibm",
}
