"""The server's limits in one place (each enforced where it is named)."""

from server.app import MAX_MESSAGE_BYTES  # grpc.max_receive/send_message_length (16 MiB)
from server.ratelimit import RateLimiter, from_env as rate_limiter_from_env
from server.services.ingest import MAX_BATCH, STREAM_WINDOW  # events per RecordEvents / unacked per stream

__all__ = ["MAX_BATCH", "MAX_MESSAGE_BYTES", "STREAM_WINDOW", "RateLimiter", "rate_limiter_from_env"]
