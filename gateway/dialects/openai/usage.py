"""The OpenAI organization usage endpoints (seed 004), `GET /v1/organization/usage/<kind>`:
one table row per endpoint, one QueryService.QueryUsage query behind each.

Every endpoint reads the events of its kind, in UTC buckets of `bucket_width`, filtered by
its array parameters and grouped by `group_by`. Without `group_by` a bucket with usage has one
result whose grouping keys are all present as null; with it, one result per combination of the
grouped keys (a key not grouped on stays null). Counters are JSON integers.

Parameters, pages, cursors and errors: gateway/dialects/openai/common.py. Shared with the seed: every
parameter of every endpoint. Beyond the seed, as the official SDK sends them: `service_tier` in
completions' `group_by`, and the file-search / web-search endpoints of DESIGN §7 with
`vector_store_ids` / `context_levels`. The SDK's `api_source` grouping is not supported (the
events carry no such dimension) and answers 400.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call, query_method
from gateway.dialects.openai.common import (
    ERRORS,
    TAG,
    USAGE_LIMITS,
    Window,
    bucket,
    page,
    page_model,
    query_arguments,
    range_fields,
    render_error,
    validate,
    window,
)
from gateway.http.errors import Endpoint, renders_errors
from gateway.http.json_response import fast_json
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import metadata, upstream
from metering.v1 import query_pb2

SERVER_MAX_PAGE = 1000  # QueryUsageRequest.page_size: "default 100, max 1000"
IMAGE_SOURCES = ("image.generation", "image.edit", "image.variation")
IMAGE_SIZES = ("256x256", "512x512", "1024x1024", "1792x1792", "1024x1792")
CONTEXT_LEVELS = ("low", "medium", "high")

# Result key -> the engine's dimension or label.
KEY_FIELDS = {
    "project_id": "project_id", "user_id": "user_id", "api_key_id": "api_key_id", "model": "model",
    "batch": "batch", "service_tier": "service_tier", "size": "labels.size", "source": "labels.source",
    "vector_store_id": "labels.vector_store_id", "context_level": "labels.context_level",
}
# Array parameter -> (the engine's dimension or label, allowed values or None for any).
ARRAY_FILTERS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "project_ids": ("project_id", None), "user_ids": ("user_id", None), "api_key_ids": ("api_key_id", None),
    "models": ("model", None), "sources": ("labels.source", IMAGE_SOURCES), "sizes": ("labels.size", IMAGE_SIZES),
    "vector_store_ids": ("labels.vector_store_id", None), "context_levels": ("labels.context_level", CONTEXT_LEVELS),
}
FILTER_DOCS = {
    "project_ids": "Return only usage for these projects.", "user_ids": "Return only usage for these users.",
    "api_key_ids": "Return only usage for these API keys.", "models": "Return only usage for these models.",
    "sources": "Return only usages for these sources.", "sizes": "Return only usages for these image sizes.",
    "vector_store_ids": "Return only usage for these vector stores.",
    "context_levels": "Return only web search usage for these context levels.",
}
ALL = ("project_id", "user_id", "api_key_id", "model")
ALL_FILTERS = ("project_ids", "user_ids", "api_key_ids", "models")


@dataclasses.dataclass(frozen=True)
class UsageEndpoint:
    name: str  # the path segment
    kind: str  # the events' kind
    result: str  # the results' `object`
    metrics: tuple[str, ...]  # UsageMetrics fields, in the result in this order
    keys: tuple[str, ...]  # grouping keys, in the result in this order
    filters: tuple[str, ...]  # array parameters (and "batch")
    summary: str

    @property
    def path(self) -> str:
        return f"/v1/organization/usage/{self.name}"

    @property
    def camel(self) -> str:
        return "".join(part.title() for part in self.name.split("_"))


COMPLETIONS_METRICS = (
    "input_tokens", "output_tokens", "input_cached_tokens", "input_audio_tokens", "output_audio_tokens",
    "num_model_requests", "input_cache_write_tokens", "input_text_tokens", "output_text_tokens",
    "input_cached_text_tokens", "input_cached_audio_tokens", "input_image_tokens", "input_cached_image_tokens",
    "output_image_tokens",
)
ENDPOINTS = (
    UsageEndpoint("completions", "completions", "organization.usage.completions.result", COMPLETIONS_METRICS,
                  (*ALL, "batch", "service_tier"), (*ALL_FILTERS, "batch"),
                  "Get completions usage details for the organization."),
    UsageEndpoint("embeddings", "embeddings", "organization.usage.embeddings.result",
                  ("input_tokens", "num_model_requests"), ALL, ALL_FILTERS,
                  "Get embeddings usage details for the organization."),
    UsageEndpoint("moderations", "moderations", "organization.usage.moderations.result",
                  ("input_tokens", "num_model_requests"), ALL, ALL_FILTERS,
                  "Get moderations usage details for the organization."),
    UsageEndpoint("images", "images", "organization.usage.images.result", ("images", "num_model_requests"),
                  (*ALL, "size", "source"), ("sources", "sizes", *ALL_FILTERS),
                  "Get images usage details for the organization."),
    UsageEndpoint("audio_speeches", "audio_speeches", "organization.usage.audio_speeches.result",
                  ("characters", "num_model_requests"), ALL, ALL_FILTERS,
                  "Get audio speeches usage details for the organization."),
    UsageEndpoint("audio_transcriptions", "audio_transcriptions", "organization.usage.audio_transcriptions.result",
                  ("seconds", "num_model_requests"), ALL, ALL_FILTERS,
                  "Get audio transcriptions usage details for the organization."),
    UsageEndpoint("vector_stores", "vector_stores", "organization.usage.vector_stores.result", ("usage_bytes",),
                  ("project_id",), ("project_ids",), "Get vector stores usage details for the organization."),
    UsageEndpoint("code_interpreter_sessions", "code_interpreter_sessions",
                  "organization.usage.code_interpreter_sessions.result", ("num_sessions",), ("project_id",),
                  ("project_ids",), "Get code interpreter sessions usage details for the organization."),
    UsageEndpoint("file_search_calls", "file_search_calls", "organization.usage.file_searches.result",
                  ("num_requests",), ("project_id", "user_id", "api_key_id", "vector_store_id"),
                  ("project_ids", "user_ids", "api_key_ids", "vector_store_ids"),
                  "Get file search calls usage details for the organization."),
    UsageEndpoint("web_search_calls", "web_search_calls", "organization.usage.web_searches.result",
                  ("num_model_requests", "num_requests"), (*ALL, "context_level"), (*ALL_FILTERS, "context_levels"),
                  "Get web search calls usage details for the organization."),
)


def query_model(endpoint: UsageEndpoint) -> type[BaseModel]:
    fields: dict[str, Any] = range_fields(("1m", "1h", "1d"))
    for name in endpoint.filters:
        if name == "batch":
            fields[name] = (bool | None, Field(None, description="true: batch jobs only; false: non-batch only."))
            continue
        allowed = ARRAY_FILTERS[name][1]
        item: Any = Literal[allowed] if allowed else str
        fields[name] = (list[item], Field(default_factory=list, description=FILTER_DOCS[name]))
    key: Any = Literal[endpoint.keys]
    fields["group_by"] = (list[key], Field(
        default_factory=list, description="Group the usage data by these fields, in any combination."))
    return create_model(f"Usage{endpoint.camel}Query", __config__=ConfigDict(extra="forbid"), **fields)


def result_model(endpoint: UsageEndpoint) -> type[BaseModel]:
    fields: dict[str, Any] = {"object": (Literal[endpoint.result], ...)}
    fields.update({name: (int, ...) for name in endpoint.metrics})
    fields.update({key: (bool | None if key == "batch" else str | None, ...) for key in endpoint.keys})
    return create_model(f"Usage{endpoint.camel}Result", **fields)


class UsageArguments(Protocol):
    """What every endpoint's query model (query_model) holds besides its filters, read by name."""

    start_time: int
    end_time: int | None
    bucket_width: str
    limit: int | None
    page: str | None
    group_by: list[str]


def query_request(endpoint: UsageEndpoint, args: UsageArguments, win: Window) -> query_pb2.QueryUsageRequest:
    filters = [query_pb2.Filter(field="kind", values=[endpoint.kind])]
    for name in endpoint.filters:
        value = getattr(args, name)
        if name == "batch":
            if value is not None:
                filters.append(query_pb2.Filter(field="batch", values=["true" if value else "false"]))
        elif value:
            filters.append(query_pb2.Filter(field=ARRAY_FILTERS[name][0], values=list(dict.fromkeys(value))))
    grouped = list(dict.fromkeys(args.group_by))
    return query_pb2.QueryUsageRequest(
        start_time=win.start_stamp(), end_time=win.end_stamp(), width=win.width, time_zone="UTC",
        filters=filters, group_by=[KEY_FIELDS[key] for key in grouped], page_token=win.token,
        metrics=endpoint.metrics,  # only what the page shows is summed
    )


async def rendered(request: Request, endpoint: UsageEndpoint, message: query_pb2.QueryUsageRequest, limit: int,
                   render_bucket: Callable[[query_pb2.UsageBucket], bytes]) -> tuple[bytes, str]:
    """`limit` (at most SERVER_MAX_PAGE) buckets in one server page, rendered as a JSON array
    of `render_bucket`'s, and the next page's token. Settled buckets' renderings are kept by
    their etags and reused where the server names the same etag (gateway/upstream/answer_cache.py).
    The shape leaves out the end time and page fields: their effect on a bucket is in its etag."""
    answers = upstream(request).answers
    question = query_pb2.QueryUsageRequest()
    question.CopyFrom(message)
    for name in ("end_time", "page_size", "page_token", "if_none_match", "known_etags"):
        question.ClearField(name)
    shape = answers.shape(endpoint.name, question.SerializeToString(deterministic=True))
    caller = answers.caller(metadata(request), shape)
    held = answers.held(caller)
    message.page_size = limit
    message.known_etags[:] = list(held)
    reply = await call(request, query_method(request, "QueryUsage"), message)
    parts, kept = [], {}
    for b in reply.buckets:
        if b.not_modified:
            part = held[b.etag]
        else:
            part = (b.etag and answers.rendered(shape, b.etag)) or render_bucket(b)
        if b.etag:
            kept[b.etag] = part
        parts.append(part)
    answers.keep(caller, shape, kept)
    return b"[" + b",".join(parts) + b"]", reply.next_page_token


async def collect(request: Request, message: query_pb2.QueryUsageRequest,
                  limit: int) -> tuple[list[query_pb2.UsageBucket], str]:
    """Up to `limit` buckets from message.page_token on, in as many server pages as that takes
    (a server page holds at most SERVER_MAX_PAGE); and the token of what follows ("" at the end)."""
    method = query_method(request, "QueryUsage")
    found: list[query_pb2.UsageBucket] = []
    while True:
        message.page_size = min(limit - len(found), SERVER_MAX_PAGE)
        reply = await call(request, method, message)
        found.extend(reply.buckets)
        if not reply.next_page_token or len(found) >= limit:
            return found, reply.next_page_token
        message.page_token = reply.next_page_token


def results(endpoint: UsageEndpoint, grouped: set[str]) -> Callable[[query_pb2.UsageGroup], dict[str, Any]]:
    """The result of one group. A grouped month holds ~10,000 groups, so the metrics are
    read with one attrgetter call per group rather than one getattr per metric."""
    names = endpoint.metrics
    read = operator.attrgetter(*names) if len(names) > 1 else (lambda m, name=names[0]: (getattr(m, name),))
    keys = [(key, KEY_FIELDS[key] if key in grouped else None, key == "batch") for key in endpoint.keys]

    def result(group: query_pb2.UsageGroup) -> dict[str, Any]:
        out: dict[str, Any] = {"object": endpoint.result}
        out.update(zip(names, read(group.metrics), strict=True))
        found = group.key
        for key, field, is_batch in keys:
            value = found.get(field) if field is not None else None
            out[key] = value == "true" if is_batch and value is not None else value
        return out

    return result


def endpoint_for(endpoint: UsageEndpoint) -> Endpoint:
    model = query_model(endpoint)
    arrays = frozenset(name for name in endpoint.filters if name != "batch") | {"group_by"}

    async def usage(request: Request) -> Response:
        args = cast(UsageArguments, validate(model, query_arguments(request.query_params, arrays)))
        win = window(args.start_time, args.end_time, args.bucket_width, args.limit, args.page, USAGE_LIMITS)
        result = results(endpoint, set(args.group_by))

        def one(b: query_pb2.UsageBucket) -> dict[str, Any]:
            return bucket(b.start_time.seconds, b.end_time.seconds, [result(g) for g in b.groups])

        message = query_request(endpoint, args, win)
        if win.limit <= SERVER_MAX_PAGE:  # one server page: buckets kept and revalidated by their etags
            body, next_token = await rendered(request, endpoint, message, win.limit, lambda b: orjson.dumps(one(b)))
        else:
            buckets, next_token = await collect(request, message, win.limit)
            body = orjson.dumps([one(b) for b in buckets])
        # orjson (fast_json): a grouped month can hold ~10,000 results, where the generic encoder would
        # spend most of the request; the buckets, rendered already, go in as they are.
        content = page([], win, next_token)
        content["data"] = orjson.Fragment(body)
        return fast_json(content)

    usage.__name__ = usage.__qualname__ = f"usage_{endpoint.name}"
    usage.__doc__ = endpoint.summary
    doc = Doc(endpoint.summary, tags=(TAG,), query=model, response=page_model(f"Usage{endpoint.camel}",
                                                                             result_model(endpoint)),
              errors=ERRORS)
    return documented(doc)(renders_errors(render_error)(usage))


def routes() -> list[Route]:
    return [Route(e.path, endpoint_for(e), methods=["GET"], name=f"usage_{e.name}") for e in ENDPOINTS]
