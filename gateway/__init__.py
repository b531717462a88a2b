"""The REST gateway: a Starlette app that speaks the seed APIs' dialects and the
native REST routes, calling the server only over gRPC (never Postgres).

Packages: http (plumbing: errors, limits, request ids, JSON, openapi), upstream (the
gRPC channel, the ingest batcher, caches), native (routes from google.api.http),
dialects (QueryLake, token usage, usage log, OpenAI). dialects and native never import
each other; app.py composes them all.
"""
