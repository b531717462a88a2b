"""The OpenAI organization usage endpoints (seed 004), `GET /v1/organization/usage/<kind>`:
one table row per endpoint, one QueryService.QueryUsage query behind each.

Every endpoint reads the events of its kind, in UTC buckets of `bucket_width`, filtered by
its array parameters and grouped by `group_by`. Without `group_by` a bucket with usage has one
result whose grouping keys are all present as null; with it, one result per combination of the
grouped keys (a key not grouped on stays null). Counters are JSON integers.

Parameters, pages, cursors and errors: gateway/dialects/openai/common.py. Shared with the seed: every
parameter of every endpoint. Beyond the seed, as the official SDK (openai 3.51) sends them:
`service_tier` and `api_source` in completions' `group_by`; the file-search / web-search endpoints
of DESIGN §7 with `vector_store_ids` / `context_levels` (web search also grouped by `api_source`);
and `decisions` (events of kind `decisions`: the Decisions API), with the parameters, grouping and
result fields of completions.

Where the SDK's newer fields come from (docs/api.md, "OpenAI usage and costs"):
- `api_source`: the event label `api_source`. Grouped by it, usage labelled `agents_api` is
  `agents_api` and all other usage (another value or no label) is `unlabeled`, one result for all of
  it; not grouped by it, null.
- `input_uncached_tokens` = input_tokens - input_cached_tokens - input_cache_write_tokens, so
  input = cached + cache write + uncached holds in every result.
- `input_cache_write_12h_tokens`: the extra counter `input_cache_write_12h_tokens`;
  `input_cache_write_30m_tokens` = input_cache_write_tokens - the 12-hour ones (30 minutes is the
  default retention), so the two add up to input_cache_write_tokens.
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
    "api_source": "labels.api_source",
}
AGENTS_API = "agents_api"  # the one attributed api_source; every other label value (or none) is "unlabeled"
API_SOURCES = (AGENTS_API, "unlabeled")
CACHE_WRITE_12H = "input_cache_write_12h_tokens"  # the extra counter of 12-hour cache writes
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
    metrics: tuple[str, ...]  # counters, in the result in this order: UsageMetrics fields or DERIVED ones
    keys: tuple[str, ...]  # grouping keys, in the result in this order
    filters: tuple[str, ...]  # array parameters (and "batch")
    summary: str

    @property
    def engine_metrics(self) -> tuple[str, ...]:
        """The UsageMetrics fields the results are computed from (what the query asks for)."""
        needed = dict.fromkeys(m for name in self.metrics for m in DERIVED.get(name, (name,)))
        return tuple(needed)

    @property
    def path(self) -> str:
        return f"/v1/organization/usage/{self.name}"

    @property
    def camel(self) -> str:
        return "".join(part.title() for part in self.name.split("_"))


# Result counters computed from UsageMetrics fields (results()), with the fields each one reads.
DERIVED: dict[str, tuple[str, ...]] = {
    "input_uncached_tokens": ("input_tokens", "input_cached_tokens", "input_cache_write_tokens"),
    "input_cache_write_30m_tokens": ("input_cache_write_tokens", "counters"),
    "input_cache_write_12h_tokens": ("counters",),
}
COMPLETIONS_FIELDS = (  # OpenAI's order (its published schema), the SDK's newer fields where they belong
    "input_tokens", "input_cached_tokens", "input_cache_write_tokens", "input_cache_write_30m_tokens",
    "input_cache_write_12h_tokens", "input_uncached_tokens", "output_tokens", "input_text_tokens",
    "output_text_tokens", "input_cached_text_tokens", "input_audio_tokens", "input_cached_audio_tokens",
    "output_audio_tokens", "input_image_tokens", "input_cached_image_tokens", "output_image_tokens",
    "num_model_requests",
)
COMPLETIONS_KEYS = (*ALL, "batch", "service_tier", "api_source")
ENDPOINTS = (
    UsageEndpoint("completions", "completions", "organization.usage.completions.result", COMPLETIONS_FIELDS,
                  COMPLETIONS_KEYS, (*ALL_FILTERS, "batch"), "Get completions usage details for the organization."),
    UsageEndpoint("decisions", "decisions", "organization.usage.decisions.result", COMPLETIONS_FIELDS,
                  COMPLETIONS_KEYS, (*ALL_FILTERS, "batch"), "Get Decisions API usage details for the organization."),
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
                  ("num_model_requests", "num_requests"), (*ALL, "context_level", "api_source"),
                  (*ALL_FILTERS, "context_levels"),
                  "Get web search calls usage details for the organization."),
)

# The UsageMetrics fields a completions page asks the engine for (bench/sections/query.py measures that query).
COMPLETIONS_METRICS = ENDPOINTS[0].engine_metrics


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
    key_types: dict[str, Any] = {"batch": bool | None, "api_source": Literal[API_SOURCES] | None}
    fields.update({key: (key_types.get(key, str | None), ...) for key in endpoint.keys})
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
        metrics=endpoint.engine_metrics,  # only what the page shows is summed
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


def results(endpoint: UsageEndpoint, grouped: set[str]) -> Callable[[query_pb2.UsageBucket], list[dict[str, Any]]]:
    """The results of one bucket, one per group. A grouped month holds ~10,000 groups, so the
    metrics are read with one attrgetter call per group rather than one getattr per metric.
    Grouped by api_source, the groups of every label value but agents_api are one result
    (`unlabeled`): their counters are summed."""
    fields = tuple(name for name in endpoint.metrics if name not in DERIVED)
    read = operator.attrgetter(*fields) if len(fields) > 1 else (lambda m, name=fields[0]: (getattr(m, name),))
    derived = [name for name in endpoint.metrics if name in DERIVED]
    keys = [(key, KEY_FIELDS[key] if key in grouped else None) for key in endpoint.keys]
    merge = "api_source" in grouped and "api_source" in endpoint.keys

    def result(group: query_pb2.UsageGroup) -> dict[str, Any]:
        m = group.metrics
        out: dict[str, Any] = {"object": endpoint.result}
        if derived:
            twelve = m.counters.get(CACHE_WRITE_12H, 0)
            values = dict(zip(fields, read(m), strict=True))
            values.update(input_uncached_tokens=m.input_tokens - m.input_cached_tokens - m.input_cache_write_tokens,
                          input_cache_write_12h_tokens=twelve,
                          input_cache_write_30m_tokens=m.input_cache_write_tokens - twelve)
            out.update((name, values[name]) for name in endpoint.metrics)
        else:
            out.update(zip(fields, read(m), strict=True))
        found = group.key
        for key, field in keys:
            value = found.get(field) if field is not None else None
            if key == "batch" and value is not None:
                out[key] = value == "true"
            elif key == "api_source" and field is not None:
                out[key] = AGENTS_API if value == AGENTS_API else "unlabeled"
            else:
                out[key] = value
        return out

    def of_bucket(b: query_pb2.UsageBucket) -> list[dict[str, Any]]:
        if not merge:
            return [result(g) for g in b.groups]
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for g in b.groups:
            r = result(g)
            same = tuple(r[key] for key in endpoint.keys)
            if same in merged:
                into = merged[same]
                for name in endpoint.metrics:
                    into[name] += r[name]
            else:
                merged[same] = r
        return list(merged.values())

    return of_bucket


def endpoint_for(endpoint: UsageEndpoint) -> Endpoint:
    model = query_model(endpoint)
    arrays = frozenset(name for name in endpoint.filters if name != "batch") | {"group_by"}

    async def usage(request: Request) -> Response:
        args = cast(UsageArguments, validate(model, query_arguments(request.query_params, arrays)))
        win = window(args.start_time, args.end_time, args.bucket_width, args.limit, args.page, USAGE_LIMITS)
        of_bucket = results(endpoint, set(args.group_by))

        def one(b: query_pb2.UsageBucket) -> dict[str, Any]:
            return bucket(b.start_time.seconds, b.end_time.seconds, of_bucket(b))

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
