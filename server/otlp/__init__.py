"""OpenTelemetry in: the pure mapping from OTLP trace spans (the GenAI semantic conventions
and the variants common instrumentations emit) to usage events, and the reasons the spans
that are not model calls are skipped. No I/O: the TraceService servicer (server/api/otlp.py)
validates and writes what it returns through the one ingest path. May import core and ingest."""
