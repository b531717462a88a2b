"""Stored events: read, list (AIP-158 pages), adjust and void, with an audit trail (read back as an
event's history: server/records/history.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from asyncpg.pool import PoolConnectionProxy
from google.protobuf import json_format

from metering import page_token as tokens
from metering.v1 import event_pb2, records_pb2
from server.core import convert
from server.core.errors import InvalidArgument, NotFound, PermissionDenied, refuse_nul
from server.core.events import EPOCH, PAYLOAD_FIELDS, uuid_millis
from server.core.principal import Principal
from server.core.windows import window_start
from server.ingest.validation import validate
from server.ingest.writer import EventWriter
from server.records.history import history
from server.storage.db import planned_per_call, q
from server.storage.horizons import OUTSIDE_RETENTION, Horizon, Horizons

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Fields an update may not touch: identity, time (void and re-record to move an event) and server state.
FROZEN_FIELDS = frozenset({
    "event_id", "request_id", "timestamp", "received_at", "updated_at", "organization_id",
    "active", "price_version", "unpriced",
})
UPDATABLE_FIELDS = frozenset(event_pb2.UsageEvent.DESCRIPTOR.fields_by_name) - FROZEN_FIELDS
MAP_FIELDS = frozenset({"counters", "labels"})  # an update_mask path may name one entry: "labels.size"
ANY_EVENT = "-"  # as an event_id with a request_id: the event of that request_id
LIST_FILTERS = ("project_ids", "user_ids", "api_key_ids", "client_ids", "models", "kinds")


def _id_millis(event_id: uuid.UUID) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=uuid_millis(event_id))


class Records:
    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.pool = writer.pool
        self.horizons = Horizons(self.pool)  # retention: events past it are gone (docs/storage.md)

    async def _event_id(self, principal: Principal, event_id: str, request_id: str = "") -> uuid.UUID:
        """The event named by `event_id`, or by `request_id` when event_id is empty or "-" (AIP-159's
        wildcard: `GET /v1/events/-?request_id=...` over REST). Both given: they must name the same event."""
        if event_id == ANY_EVENT:
            event_id = ""
        eid: uuid.UUID | None = None
        if event_id:
            try:
                eid = uuid.UUID(event_id)
                _id_millis(eid)  # an id whose time prefix is past year 9999 names no event
            except (ValueError, OverflowError):
                raise NotFound(f"event {event_id[:64]!r} not found") from None
        if request_id:
            refuse_nul("request_id", request_id)
            found: uuid.UUID | None = await self.pool.fetchval(q("event_by_request_id"), principal.org_id, request_id)
            if found is None or eid not in (None, found):
                also = f" and id {event_id[:64]!r}" if eid else ""
                raise NotFound(f"no event with request_id {request_id[:64]!r}{also}")
            return found
        if eid is None:
            raise InvalidArgument("event_id", "required", reason="REQUIRED")
        return eid

    async def get(self, principal: Principal, event_id: str, request_id: str = "") -> event_pb2.UsageEvent:
        eid = await self._event_id(principal, event_id, request_id)
        horizon = await self.horizons.of(principal.org_id)
        if horizon.events is not None and _id_millis(eid) < horizon.events:
            raise NotFound(f"event {event_id or request_id!r} is past the organization's retention",
                           reason=OUTSIDE_RETENTION, field="event_id")
        row = await self.pool.fetchrow(q("get_event"), principal.org_id, eid, _id_millis(eid), *principal.read_scope())
        if row is None:
            raise NotFound(f"event {event_id or request_id!r} not found")
        return _retained(convert.event(row, principal.organization_id), horizon)

    async def history(self, principal: Principal, event_id: str, request_id: str = "") -> records_pb2.EventHistory:
        """The event's recording and audit trail, if the caller may read the event (as get)."""
        event = await self.get(principal, event_id, request_id)
        trail = await self.pool.fetch(q("event_history"), principal.org_id, uuid.UUID(event.event_id))
        return history(event, trail)

    async def list(self, principal: Principal, req: records_pb2.ListEventsRequest) -> records_pb2.ListEventsResponse:
        size = req.page_size or DEFAULT_PAGE_SIZE
        if not 0 < size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"between 1 and {MAX_PAGE_SIZE}")
        if req.skip < 0:
            raise InvalidArgument("skip", "must be >= 0")
        start = req.start_time.ToDatetime(dt.UTC) if req.HasField("start_time") else None
        end = req.end_time.ToDatetime(dt.UTC) if req.HasField("end_time") else None
        filters = [list(getattr(req, f)) or None for f in LIST_FILTERS]
        for name, values in zip(LIST_FILTERS, filters, strict=True):
            if values:
                refuse_nul(name, *values)
        digest = tokens.request_digest(start and start.isoformat(), end and end.isoformat(), filters,
                                       req.include_voided, principal.read_scope(), principal.org_id)
        after_ts, after_id = after_event(req.page_token, digest) if req.page_token else (None, None)
        horizon = await self.horizons.of(principal.org_id)
        if horizon.events is not None and (start is None or start < horizon.events):
            start = horizon.events  # what is past the retention is gone (the page token's digest keeps the asked start)
        async with planned_per_call(self.pool) as conn:
            rows = await conn.fetch(
                q("list_events"), principal.org_id, start, end, after_ts, after_id, *principal.read_scope(),
                *filters, req.include_voided, size + 1, req.include_payload, req.skip,
            )
        more = len(rows) > size
        rows = rows[:size]
        token = event_token(rows[-1]["ts"], rows[-1]["event_id"], digest) if more else ""
        return records_pb2.ListEventsResponse(
            events=[_retained(convert.event(r, principal.organization_id), horizon) for r in rows],
            next_page_token=token,
        )

    async def update(
        self, principal: Principal, patch: event_pb2.UsageEvent, paths: Sequence[str], reason: str
    ) -> event_pb2.UsageEvent:
        _require_admin(principal)
        refuse_nul("reason", reason)
        if not paths:
            raise InvalidArgument("update_mask", "name at least one field to change", reason="REQUIRED")
        for path in paths:
            top, dot, key = path.partition(".")
            if top in FROZEN_FIELDS:
                raise InvalidArgument("update_mask", f"{top} cannot change; void the event and record it again")
            if top not in UPDATABLE_FIELDS or (dot and (top not in MAP_FIELDS or not key)):
                raise InvalidArgument("update_mask", f"unknown field {path[:64]!r}")
        current = await self.get(principal, patch.event_id)
        payloads_before = (await self.horizons.of(principal.org_id)).payloads
        payload_gone = payloads_before is not None and current.timestamp.ToDatetime(dt.UTC) < payloads_before
        if payload_gone:
            for path in paths:
                if path in PAYLOAD_FIELDS:
                    raise InvalidArgument(path, "the event's payload is past the organization's payload retention",
                                          reason=OUTSIDE_RETENTION)
        merged = event_pb2.UsageEvent()
        merged.CopyFrom(current)
        whole = {p for p in paths if "." not in p}
        for path in whole:
            merged.ClearField(path)
            if patch.HasField(path) if _has_presence(path) else True:
                _copy_field(patch, merged, path)
        for path in paths:  # "labels.size": that one entry (set, or removed when absent from the patch)
            top, _, key = path.partition(".")
            if key and top not in whole:
                target, source = getattr(merged, top), getattr(patch, top)
                if key in source:
                    target[key] = source[key]
                elif key in target:
                    del target[key]
        if {"input_cost", "output_cost"} & set(paths) and "cost" not in paths:
            merged.ClearField("cost")  # recomputed from the parts
        if current.price_version and not {"input_cost", "output_cost", "cost"} & set(paths):
            for name in ("input_cost", "output_cost", "cost"):  # priced by the book: priced again below
                merged.ClearField(name)
        new = validate(merged, _as_admin(principal), dt.datetime.now(dt.UTC))
        if new.cost is None:  # keeps its price version if that still fits (server/pricing/pricer.py)
            await self.writer.pricer.refresh(self.pool, [principal.org_id])
            new = self.writer.pricer.price_one(principal.org_id, new, prefer=current.price_version or None)
        eid = uuid.UUID(current.event_id)
        ts = current.timestamp.ToDatetime(dt.UTC)
        series = await self.writer.series.resolve(self.pool, {(principal.org_id, new.series)})
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(q("lock_event"), principal.org_id, eid, _id_millis(eid))
            if locked is None:
                raise NotFound(f"event {patch.event_id!r} not found")
            await conn.execute(
                q("update_event"), principal.org_id, locked["ts"], eid, series[(principal.org_id, new.series)],
                *new.counters, new.extra_counters, new.input_cost, new.output_cost, new.cost, new.cost is None,
                new.payload is not None, new.price_version,
            )
            if (new.payload is not None or locked["has_payload"]) and not payload_gone:
                await conn.execute(q("upsert_payload"), principal.org_id, locked["ts"], eid,
                                   *(new.payload or (None,) * len(PAYLOAD_FIELDS)))
            after = await self._audit(conn, principal, eid, ts, "update", reason, current)
        self._committed(principal.org_id, ts)
        return after

    async def void(self, principal: Principal, event_id: str, reason: str) -> event_pb2.UsageEvent:
        _require_admin(principal)
        refuse_nul("reason", reason)
        current = await self.get(principal, event_id)
        eid = uuid.UUID(current.event_id)
        ts = current.timestamp.ToDatetime(dt.UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(q("lock_event"), principal.org_id, eid, _id_millis(eid))
            if locked is None:
                raise NotFound(f"event {event_id!r} not found")
            if not locked["active"]:
                return current
            await conn.execute(q("void_event"), principal.org_id, locked["ts"], eid)
            after = await self._audit(conn, principal, eid, ts, "void", reason, current)
        self._committed(principal.org_id, ts)
        return after

    def _committed(self, org_id: int, ts: dt.datetime) -> None:
        """After an adjustment commits: the writer's hook (rollup enqueue) for the window _audit marked dirty."""
        if self.writer.after_commit is not None:
            self.writer.after_commit([(org_id, window_start(ts))])

    async def _audit(
        self, conn: PoolConnectionProxy, principal: Principal, eid: uuid.UUID, ts: dt.datetime,
        action: str, reason: str, before: event_pb2.UsageEvent,
    ) -> event_pb2.UsageEvent:
        row = await conn.fetchrow(q("get_event"), principal.org_id, eid, _id_millis(eid), None, None, None)
        if row is None:  # locked in this transaction: cannot happen
            raise NotFound(f"event {str(eid)!r} not found")
        after = convert.event(row, principal.organization_id)
        actor = principal.api_key_id or principal.user_id or ("master" if principal.master else "")
        await conn.execute(
            q("insert_adjustment"), principal.org_id, eid, ts, actor, action, reason[:1024],
            _audit_json(before), _audit_json(after),
        )
        await conn.execute(q("mark_window_dirty"), principal.org_id, window_start(ts))
        return after


def _retained(event: event_pb2.UsageEvent, horizon: Horizon) -> event_pb2.UsageEvent:
    """The event without its payload once that is past the payload retention."""
    if horizon.payloads is not None and event.timestamp.ToDatetime(dt.UTC) < horizon.payloads:
        for name in PAYLOAD_FIELDS:  # error_message included: it is kept in event_payloads
            event.ClearField(name)
    return event


def _audit_json(msg: event_pb2.UsageEvent) -> dict[str, Any]:
    trimmed = event_pb2.UsageEvent()
    trimmed.CopyFrom(msg)
    for name in PAYLOAD_FIELDS[1:]:  # keep the audit row small; payloads are not money
        trimmed.ClearField(name)
    return json_format.MessageToDict(trimmed, preserving_proto_field_name=True)


def _has_presence(name: str) -> bool:
    field = event_pb2.UsageEvent.DESCRIPTOR.fields_by_name[name]
    return field.has_presence and field.message_type is None


def _copy_field(src: event_pb2.UsageEvent, dst: event_pb2.UsageEvent, name: str) -> None:
    value = getattr(src, name)
    if name in ("counters", "labels"):
        getattr(dst, name).update(value)
    else:
        setattr(dst, name, value)


def _as_admin(principal: Principal) -> Principal:
    """Re-validation of an adjusted event must not re-apply the caller's ingest defaults."""
    return Principal(org_id=principal.org_id, organization_id=principal.organization_id, role="admin")


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("only an admin may adjust or void usage records")


def event_token(ts: dt.datetime, event_id: uuid.UUID, digest: str) -> str:
    """The page token of a list of events newest first: the last event listed (metering/page_token.py)."""
    return tokens.encode({"t": ts.isoformat(), "i": str(event_id)}, digest)


def after_event(token: str, digest: str) -> tuple[dt.datetime, uuid.UUID]:
    """Where the page of `token` starts (after that event); InvalidArgument on page_token."""
    try:
        fields = tokens.decode(token, digest)
        return fields.instant("t"), fields.uuid("i")
    except tokens.PageTokenError as err:
        raise InvalidArgument("page_token", str(err)) from None
