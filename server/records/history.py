"""An event's history (RecordService.GetEventHistory): its recording, then the rows of its audit
trail (event_adjustments: UpdateEvent, VoidEvent, ApplyRepricing), each as the fields it changed.

An audit row keeps the event before and after as JSON (UsageEvent's, proto field names; a
repricing's only the fields it moves). Each side is parsed back into a UsageEvent and compared
field by field, so a field absent from the JSON because it held its default (0, false, "")
reads as that default, and only a field with presence (the costs, num_model_requests) or a map
entry can be unset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format

from metering.v1 import event_pb2, records_pb2
from server.core import convert

_ACTIONS = {
    "update": records_pb2.EventChange.ACTION_UPDATED,
    "void": records_pb2.EventChange.ACTION_VOIDED,
    "reprice": records_pb2.EventChange.ACTION_REPRICED,
}
_UNLISTED = frozenset({"updated_at"})  # every change moves it; the change's own time says when
_FIELDS = [f for f in event_pb2.UsageEvent.DESCRIPTOR.fields if f.name not in _UNLISTED]


def history(event: event_pb2.UsageEvent, trail: Iterable[convert.Row]) -> records_pb2.EventHistory:
    """The history of `event` (as GetEvent read it) from its audit rows, oldest first."""
    reply = records_pb2.EventHistory(event_id=event.event_id)
    reply.changes.add(action=records_pb2.EventChange.ACTION_RECORDED, time=event.received_at)
    for row in trail:
        reply.changes.add(action=_ACTIONS.get(row["action"], records_pb2.EventChange.ACTION_UNSPECIFIED),
                          time=convert.timestamp(row["at"]), actor=row["actor"], reason=row["reason"],
                          fields=changed(row["before"], row["after"]))
    return reply


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[records_pb2.FieldChange]:
    """The fields whose value differs between two JSON forms of a UsageEvent (those either names)."""
    named = set(before) | set(after)
    old, new = _event(before), _event(after)
    found = []
    for field in _FIELDS:
        if field.name not in named:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            old_map, new_map = getattr(old, field.name), getattr(new, field.name)
            for key in sorted(set(old_map) | set(new_map)):
                was, now = old_map.get(key), new_map.get(key)
                if was != now:
                    found.append(_change(f"{field.name}.{key}", _text(was), _text(now)))
        else:
            was_text, now_text = _value(old, field), _value(new, field)
            if was_text != now_text:
                found.append(_change(field.name, was_text, now_text))
    return found


def _event(fields: dict[str, Any]) -> event_pb2.UsageEvent:
    return json_format.ParseDict(fields, event_pb2.UsageEvent(), ignore_unknown_fields=True)


def _value(msg: event_pb2.UsageEvent, field: Any) -> str | None:
    if field.has_presence and not msg.HasField(field.name):
        return None
    value = getattr(msg, field.name)
    if field.message_type is not None:  # a Timestamp
        return str(value.ToJsonString())
    return _text(value)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _change(name: str, before: str | None, after: str | None) -> records_pb2.FieldChange:
    change = records_pb2.FieldChange(field=name)
    if before is not None:
        change.before = before
    if after is not None:
        change.after = after
    return change
