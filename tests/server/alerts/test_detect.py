"""Detection from committed data: each threshold triggered once when crossed, resolved once
when a void brings the usage back under it, nothing written twice by repeated detections;
a new period starts clean; unpriced usage told once."""

from __future__ import annotations

import datetime as dt

from metering.v1 import records_pb2
from server.alerts.detect import Detector

EVENTS = "select type, payload from alert_events where org_id = $1 order by create_time, event_id"


async def _events(pool, org_id: int) -> list[tuple[str, str]]:
    return [(r["type"], r["payload"]["data"].get("threshold", "")) for r in await pool.fetch(EVENTS, org_id)]


async def test_thresholds_trigger_once_and_a_void_resolves_once(new_team, detector, org_number, pool):
    team = await new_team()
    org_id = await org_number(team)
    await team.create(limit="10", thresholds=["50", "100"])
    await team.record(cost="6")
    assert await detector.organization(org_id) == 1
    assert await detector.organization(org_id) == 0  # nothing new: nothing written
    second = await team.record(cost="5")
    assert await detector.organization(org_id) == 1
    assert await _events(pool, org_id) == [("budget.threshold.triggered", "50"), ("budget.threshold.triggered", "100")]
    await team.stubs.records.VoidEvent(records_pb2.VoidEventRequest(event_id=second), metadata=team.admin)
    assert await detector.organization(org_id) == 1
    assert await detector.organization(org_id) == 0
    events = await _events(pool, org_id)
    assert events[2:] == [("budget.threshold.resolved", "100")]
    [row] = [r for r in await pool.fetch(EVENTS, org_id) if r["type"] == "budget.threshold.resolved"]
    data = row["payload"]["data"]
    assert (data["used"], data["limit"], data["threshold_amount"]) == ("6", "10", "10")


async def test_a_new_period_starts_clean(new_team, org_number, pool):
    team = await new_team()
    org_id = await org_number(team)
    await team.create(limit="1", thresholds=["100"], period=1)  # DAY
    await team.record(cost="2")
    now = dt.datetime.now(dt.UTC)
    assert await Detector(pool, clock=lambda: now).organization(org_id) == 1
    tomorrow = now + dt.timedelta(days=1)  # no usage yet in that day: nothing to tell, nothing resolved
    assert await Detector(pool, clock=lambda: tomorrow).organization(org_id) == 0
    assert await Detector(pool, clock=lambda: now).organization(org_id) == 0


async def test_unpriced_usage_is_told_once(new_team, detector, org_number, pool):
    team = await new_team()
    org_id = await org_number(team)
    await team.create(limit="100")  # a cost budget without thresholds still watches for unpriced usage
    await team.record(model="no-such-model-" + str(org_id), input_tokens=10)
    assert await detector.organization(org_id) == 1
    await team.record(model="no-such-model-" + str(org_id), input_tokens=10)
    assert await detector.organization(org_id) == 0
    [(kind, _)] = await _events(pool, org_id)
    assert kind == "usage.unpriced"
