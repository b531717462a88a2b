"""BudgetService through the gateway's native REST routes (from the protos' google.api.http
options): snake_case JSON both ways, gRPC status as HTTP status."""

from __future__ import annotations

from typing import Any

Headers = dict[str, str]


def _headers(metadata: tuple[tuple[str, str], ...]) -> Headers:
    return {"Authorization": dict(metadata)["authorization"]}


async def test_a_budget_round_trip_and_a_check_over_rest(new_team, http):
    team = await new_team()
    admin = _headers(team.admin)
    budget: dict[str, Any] = {
        "name": "gpt-4o daily", "limit": "5", "mode": "BUDGET_MODE_ENFORCE", "period": "BUDGET_PERIOD_DAY",
        "time_zone": "America/New_York", "scope": [{"field": "model", "values": ["gpt-4o"]}],
        "thresholds": ["80", "100"],
    }
    created = await http.post("/v1/budgets", json=budget, headers=admin)
    assert created.status_code == 200, created.text
    body = created.json()
    budget_id = body["budget_id"]
    assert (body["limit"], body["time_zone"], body["week_start"], body["on_unavailable"]) == (
        "5", "America/New_York", 1, "UNAVAILABLE_POLICY_FAIL_OPEN")
    assert body["scope"] == [{"field": "model", "values": ["gpt-4o"]}]

    patched = await http.patch(f"/v1/budgets/{budget_id}?update_mask=limit", json={"limit": "10"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["limit"] == "10" and patched.json()["name"] == "gpt-4o daily"

    check = await http.post("/v1/budgets:check", json={
        "model": "gpt-4o", "estimated_cost": "0.02", "reserve": True, "reservation_ttl": "60s"}, headers=admin)
    assert check.status_code == 200, check.text
    answer = check.json()
    assert answer["allowed"] is True and answer["reservation_id"].startswith("res_")
    [state] = answer["budgets"]
    assert (state["budget_id"], state["used"], state["reserved"], state["remaining"]) == (
        budget_id, "0.02", "0.02", "9.98")
    assert state["unpriced_events"] == 0 and state["resets_at"].endswith("Z")

    event = {"kind": "completions", "model": "gpt-4o", "cost": "0.015", "reservation_id": answer["reservation_id"]}
    recorded = await http.post("/v1/events", json=event, headers=admin)
    assert recorded.status_code == 200, recorded.text
    got = await http.get(f"/v1/budgets/{budget_id}", headers=admin)
    assert got.status_code == 200 and (got.json()["state"]["used"], got.json()["state"]["reserved"]) == ("0.015", "0")

    listed = await http.get("/v1/budgets?page_size=10", headers=admin)
    assert [b["budget_id"] for b in listed.json()["budgets"]] == [budget_id]
    again = await http.post(f"/v1/reservations/{answer['reservation_id']}:release", json={}, headers=admin)
    assert again.status_code == 200 and again.json()["released"] is False  # settled already

    deleted = await http.delete(f"/v1/budgets/{budget_id}", headers=admin)
    assert deleted.status_code == 200
    gone = await http.get(f"/v1/budgets/{budget_id}", headers=admin)
    assert gone.status_code == 404


async def test_rest_errors_name_the_field_and_keep_scopes(new_team, http):
    team = await new_team()
    bad = await http.post("/v1/budgets", json={"limit": "-3"}, headers=_headers(team.admin))
    assert bad.status_code == 400 and bad.json()["message"].startswith("budget.limit")
    assert "SQLSTATE" not in bad.text
    bad_check = await http.post("/v1/budgets:check", json={"estimated_cost": "NaN"}, headers=_headers(team.admin))
    assert bad_check.status_code == 400 and bad_check.json()["message"].startswith("estimated_cost")
    theirs = (await team.create(scope={"user_id": team.other_user})).budget_id
    hidden = await http.get(f"/v1/budgets/{theirs}", headers=_headers(team.member))
    assert hidden.status_code == 404
    written = await http.post("/v1/budgets", json={"limit": "1"}, headers=_headers(team.member))
    assert written.status_code == 403
