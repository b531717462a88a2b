"""Many budgets read at once (server/budgets/usage.py read_many, how alert detection reads an
organization's rules): one grouped reading per period, each budget's share equal to its own
reading, whatever its scope (several fields, labels, unset values, several values), metric
and period; rolling budgets are left to read()."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2

from metering.v1 import budgets_pb2
from server.budgets.budget import from_row
from server.budgets.usage import read, read_many
from server.core.principal import Principal
from server.query.engine import QueryEngine

P = budgets_pb2


async def test_many_budgets_read_at_once_equal_each_read_alone(new_team, db, server):
    team = await new_team()
    user = team.member_user
    scopes = [
        {}, {"model": "m1"}, {"model": ["m1", "m2"]}, {"user_id": user}, {"user_id": user, "model": "m2"},
        {"labels.team": "a"}, {"labels.team": ""}, {"provider": "p"}, {"project_id": ""}, {"kind": "embeddings"},
    ]
    for i, scope in enumerate(scopes):
        await team.create(name=f"cost-{i}", scope=scope, thresholds=["50"])
        await team.create(name=f"tokens-{i}", scope=scope, metric="input_tokens", period=P.BUDGET_PERIOD_DAY,
                          time_zone="Asia/Kathmandu")
        await team.create(name=f"extra-{i}", scope=scope, metric="counters.inference", period=P.BUDGET_PERIOD_WEEK,
                          week_start=7, time_zone="America/New_York")
    await team.create(name="eur", currency="eur", scope={"model": "m1"})
    await team.create(name="rolling", period=P.BUDGET_PERIOD_ROLLING,
                      rolling_window=duration_pb2.Duration(seconds=3600))
    await team.record(model="m1", cost="1.25", input_tokens=10, labels={"team": "a"}, counters={"inference": 2})
    await team.record(model="m2", cost="0.5", input_tokens=7, user_id=user, provider="p")
    await team.record(model="m2", input_tokens=3, user_id=user, labels={"team": "b"})  # unpriced
    await team.record(model="m1", cost="2", currency="eur", kind="embeddings", counters={"inference": 5})
    await team.record(model="m3", cost="0.001", labels={"team": "a"}, provider="p")

    number = await db.fetchval("select org_id from organizations where id = $1", team.org.organization_id)
    org = Principal(org_id=number, organization_id=team.org.organization_id, role="admin")
    budgets = [from_row(r) for r in await server.pool.fetch("select * from budgets where org_id = $1", number)]
    engine, now = QueryEngine(server.pool), dt.datetime.now(dt.UTC)
    many = await read_many(engine, org, budgets, now)
    assert len(many) == len(budgets) - 1  # all but the rolling one
    nonzero = 0
    for budget in budgets:
        alone = await read(engine, org, budget, now)
        if budget.rolling_window is not None:
            assert budget.budget_id not in many
            continue
        got = many[budget.budget_id]
        assert (got.usage, got.unpriced, got.period) == (alone.usage, alone.unpriced, alone.period), budget.name
        nonzero += bool(got.usage)
    assert nonzero >= 20  # the scopes do select usage
