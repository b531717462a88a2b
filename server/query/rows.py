"""One group's aggregate as the engine reads it, and a bucket's groups.

GroupRow is a NamedTuple: the columns of the aggregate statement after the bucket and the
group key (server/query/sql.py), in its order. A grouped month is ~10,000 of them per call,
made from the statement's records as they come (`from_record`: no per-field copy) and
encoded straight into UsageMetrics (server/api/query.py) or read as Metrics
(server.query.engine.Group.metrics).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, NamedTuple, TypeAlias

import asyncpg

Key = tuple[str | None, ...]  # the group's values of the group_by fields, in their order (None: unset)


class GroupRow(NamedTuple):
    events: int
    unpriced_events: int
    counters: list[int]  # in server.core.events.COUNTER_FIELDS order
    input_cost: decimal.Decimal | None  # None: not asked for (QueryUsageRequest.metrics), in every row alike
    output_cost: decimal.Decimal | None
    cost: decimal.Decimal | None
    last_event_at: dt.datetime | None
    extra: dict[str, int] | None  # the other counters by name; None: the group has none (or not asked for)


Groups = dict[Key, GroupRow]
# A record of the aggregate statement: as asyncpg reads it, or read wide and made ints
# (server.query.sql.usage_rows).
Record: TypeAlias = "asyncpg.Record | tuple[Any, ...]"

_FIRST = 2  # columns before the row: bucket, group key
_new_tuple = tuple.__new__


def from_record(record: Record) -> GroupRow:
    """The row of an aggregate statement's record (an asyncpg record, or a tuple read wide:
    server.query.sql.usage_rows): its slice as the tuple (half the cost of
    GroupRow._make, which checks the length; tests/server/query/test_query_tails.py checks
    the statement's columns are GroupRow's fields)."""
    return _new_tuple(GroupRow, record[_FIRST:])
