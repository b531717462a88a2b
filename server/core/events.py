"""The usage event as the core sees it (DESIGN §2), after validation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid

from asyncpg.pgproto import pgproto

KINDS = frozenset({
    "completions", "embeddings", "moderations", "images", "audio_speeches",
    "audio_transcriptions", "vector_stores", "code_interpreter_sessions",
    "file_search_calls", "web_search_calls", "rerank", "api_call", "decisions",
})
STATUSES = frozenset({"success", "error"})

# Fixed counters, in the column order of the events table.
COUNTER_FIELDS: tuple[str, ...] = (
    "input_tokens", "output_tokens", "input_cached_tokens", "input_cache_write_tokens",
    "input_text_tokens", "output_text_tokens", "input_cached_text_tokens",
    "input_audio_tokens", "input_cached_audio_tokens", "output_audio_tokens",
    "input_image_tokens", "input_cached_image_tokens", "output_image_tokens",
    "num_model_requests", "num_requests", "images", "characters", "seconds",
    "usage_bytes", "num_sessions", "units_used",
)
# Text dimensions of a series, in the column order of the series table.
TEXT_DIMENSIONS: tuple[str, ...] = (
    "project_id", "user_id", "api_key_id", "client_id", "model", "provider",
    "endpoint", "api_name", "service_tier",
)
MONEY_FIELDS: tuple[str, ...] = ("input_cost", "output_cost", "cost")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PAYLOAD_FIELDS: tuple[str, ...] = (
    "error_message", "config_json", "request_raw", "request_json", "response_json", "response_raw",
)


@dataclasses.dataclass(frozen=True)
class SeriesKey:
    """Everything an event is grouped or filtered by; dictionary-encoded as a series row."""

    kind: str
    dims: tuple[str | None, ...]  # TEXT_DIMENSIONS order
    batch: bool
    status: str
    currency: str
    labels: tuple[tuple[str, str], ...]  # sorted by name
    # The price book version that priced the events, "unpriced" when there was
    # neither a cost nor a price, None for caller-given costs (server/pricing/pricer.py).
    price_version: str | None = None

    def __post_init__(self) -> None:
        # Keys are hashed for every event of a batch (series ids, prices): hash once.
        object.__setattr__(self, "_hash", hash((
            self.kind, self.dims, self.batch, self.status, self.currency, self.labels, self.price_version,
        )))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def get(self, name: str) -> str | None:
        return self.dims[TEXT_DIMENSIONS.index(name)]


@dataclasses.dataclass(slots=True)
class NewEvent:
    """Treated as immutable (not frozen only because frozen construction costs
    about a microsecond an event on the ingest path)."""

    request_id: str
    ts: dt.datetime
    event_id: uuid.UUID
    series: SeriesKey
    counters: tuple[int, ...]  # COUNTER_FIELDS order
    extra_counters: dict[str, int] | None
    input_cost: decimal.Decimal | None
    output_cost: decimal.Decimal | None
    cost: decimal.Decimal | None
    payload: tuple[str | None, ...] | None  # PAYLOAD_FIELDS order; None when all empty
    price_version: str | None = None  # set by server/pricing/pricer.py when it priced the event
    reservation_id: str | None = None  # the budget reservation its write settles (server/budgets/)

    @property
    def unpriced(self) -> bool:
        """Neither given a cost nor priced (the events column of the same name)."""
        return self.cost is None

    @property
    def has_payload(self) -> bool:
        return self.payload is not None


def event_uuid(ts: dt.datetime, random_bits: bytes) -> uuid.UUID:
    """A UUIDv7-shaped id whose 48-bit millisecond prefix is the *event* time."""
    millis = (ts - EPOCH) // dt.timedelta(milliseconds=1)
    raw = bytearray(millis.to_bytes(6, "big") + random_bits[:10])
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return uuid.UUID(bytes=bytes(raw))


_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_LOW_62 = (1 << 62) - 1


def event_uuid_from_millis(millis: int, random74: int) -> uuid.UUID:
    """event_uuid from Unix milliseconds and 74 random bits, built without the
    datetime and byte arithmetic (asyncpg's UUID: a uuid.UUID, ~10x cheaper)."""
    value = millis << 80 | _VERSION_7 | (random74 >> 62) << 64 | _VARIANT | random74 & _LOW_62
    return pgproto.UUID(value.to_bytes(16, "big"))


def uuid_millis(event_id: uuid.UUID) -> int:
    return int.from_bytes(event_id.bytes[:6], "big")
