"""Budget CRUD over gRPC: defaults, validation naming the field (nothing written), AIP-158
pages, update masks, and who may read or write which budget."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from metering.v1 import budgets_pb2, query_pb2
from tests.conftest import MASTER


async def _ids(team, auth=None) -> list[str]:
    reply = await team.budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(), metadata=auth or team.admin)
    return [b.budget_id for b in reply.budgets]


async def test_a_budget_is_created_with_its_defaults_and_read_back_with_its_state(new_team):
    team = await new_team()
    created = await team.create(name="team spend", limit="12.50")
    assert created.budget_id.startswith("bud_") and created.organization_id == team.org.organization_id
    assert (created.metric, created.currency, created.period, created.mode, created.time_zone, created.week_start) == (
        "cost", "usd", budgets_pb2.BUDGET_PERIOD_MONTH, budgets_pb2.BUDGET_MODE_ALERT, "UTC", 1)
    assert created.limit == "12.5" and created.HasField("create_time") and not created.HasField("state")
    await team.record(cost="2.25")
    got = await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=created.budget_id), metadata=team.admin)
    assert (got.name, got.state.used, got.state.remaining, got.state.allowed) == ("team spend", "2.25", "10.25", True)
    assert got.state.period_start.seconds > 0 and got.state.resets_at.seconds > got.state.period_start.seconds


INVALID = [
    ({"limit": ""}, "budget.limit"),
    ({"limit": "-1"}, "budget.limit"),
    ({"limit": "1e3"}, "budget.limit"),
    ({"limit": "0." + "1" * 19}, "budget.limit"),
    ({"metric": "tokens"}, "budget.metric"),
    ({"metric": "counters.input_tokens"}, "budget.metric"),
    ({"scope": [query_pb2.Filter(field="color", values=["red"])]}, "budget.scope.field"),
    ({"scope": [query_pb2.Filter(field="model", values=[])]}, "budget.scope.values"),
    ({"scope": [query_pb2.Filter(field="model", values=["a"]), query_pb2.Filter(field="model", values=["b"])]},
     "budget.scope.field"),
    ({"scope": [query_pb2.Filter(field="currency", values=["eur"])]}, "budget.scope"),
    ({"currency": "euro"}, "budget.currency"),
    ({"metric": "input_tokens", "currency": "usd"}, "budget.currency"),
    ({"time_zone": "Mars/Olympus_Mons"}, "budget.time_zone"),
    ({"week_start": 8}, "budget.week_start"),
    ({"period": budgets_pb2.BUDGET_PERIOD_ROLLING}, "budget.rolling_window"),
    ({"period": budgets_pb2.BUDGET_PERIOD_ROLLING, "rolling_window": duration_pb2.Duration(seconds=30)},
     "budget.rolling_window"),
    ({"rolling_window": duration_pb2.Duration(seconds=3600)}, "budget.rolling_window"),
    ({"thresholds": ["80", "0"]}, "budget.thresholds"),
    ({"name": "x" * 300}, "budget.name"),
]


@pytest.mark.parametrize(("fields", "field"), INVALID)
async def test_bad_budgets_name_the_field_and_write_nothing(new_team, fields, field):
    team = await new_team()
    fields = {"limit": "10", **fields}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(**fields)),
                                        metadata=team.admin)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err.value.details()).startswith(field + ":"), str(err.value.details())
    assert not any(word in str(err.value.details()) for word in ("SQLSTATE", "asyncpg", "select ", "insert "))
    assert await _ids(team) == []


async def test_every_period_mode_and_policy_round_trips(new_team):
    team = await new_team()
    rolling = await team.create(period=budgets_pb2.BUDGET_PERIOD_ROLLING, rolling_window=duration_pb2.Duration(
        seconds=7200), mode=budgets_pb2.BUDGET_MODE_ENFORCE, on_unpriced=budgets_pb2.UNPRICED_POLICY_DENY,
        on_unavailable=budgets_pb2.UNAVAILABLE_POLICY_FAIL_CLOSED, thresholds=["100", "50", "80.0"],
        scope={"labels.team": ["a", "b"], "batch": "false"}, metric="counters.inference", limit="7")
    assert rolling.rolling_window.seconds == 7200 and list(rolling.thresholds) == ["50", "80", "100"]
    assert (rolling.on_unpriced, rolling.on_unavailable) == (budgets_pb2.UNPRICED_POLICY_DENY,
                                                             budgets_pb2.UNAVAILABLE_POLICY_FAIL_CLOSED)
    assert [(f.field, list(f.values)) for f in rolling.scope] == [("batch", ["false"]), ("labels.team", ["a", "b"])]
    assert rolling.currency == ""
    for period in (budgets_pb2.BUDGET_PERIOD_DAY, budgets_pb2.BUDGET_PERIOD_WEEK, budgets_pb2.BUDGET_PERIOD_QUARTER,
                   budgets_pb2.BUDGET_PERIOD_YEAR, budgets_pb2.BUDGET_PERIOD_TOTAL):
        made = await team.create(period=period, time_zone="Asia/Kathmandu", week_start=7)
        got = await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=made.budget_id),
                                           metadata=team.admin)
        assert got.period == period and got.state.used == "0"
        assert got.state.HasField("resets_at") == (period != budgets_pb2.BUDGET_PERIOD_TOTAL)


async def test_pages_follow_create_time_and_tokens_belong_to_their_request(new_team):
    team = await new_team()
    made = [(await team.create(name=f"b{i}")).budget_id for i in range(5)]
    seen, token = [], ""
    while True:
        page = await team.budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(page_size=2, page_token=token),
                                              metadata=team.admin)
        seen += [b.budget_id for b in page.budgets]
        assert all(b.HasField("state") for b in page.budgets)
        token = page.next_page_token
        if not token:
            break
    assert seen == made
    first = await team.budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(page_size=2), metadata=team.admin)
    for bad, auth in ((first.next_page_token, team.member), ("not-a-token!", team.admin)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await team.budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(page_token=bad), metadata=auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in str(err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(page_size=1001), metadata=team.admin)
    assert str(err.value.details()).startswith("page_size")


async def test_update_changes_the_masked_fields_or_all_and_delete_removes(new_team):
    team = await new_team()
    made = await team.create(name="n", limit="10", scope={"model": "a"}, mode=budgets_pb2.BUDGET_MODE_ENFORCE)
    patch = budgets_pb2.Budget(budget_id=made.budget_id, limit="20", name="ignored")
    updated = await team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(budget=patch, update_mask=["limit"]),
                                              metadata=team.admin)
    assert (updated.limit, updated.name, updated.mode, len(updated.scope)) == (
        "20", "n", budgets_pb2.BUDGET_MODE_ENFORCE, 1)
    assert updated.update_time.ToDatetime() >= made.update_time.ToDatetime()
    whole = await team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(
        budget=budgets_pb2.Budget(budget_id=made.budget_id, limit="5")), metadata=team.admin)
    assert (whole.limit, whole.name, whole.mode, len(whole.scope)) == ("5", "", budgets_pb2.BUDGET_MODE_ALERT, 0)
    for mask, field in ((["budget_id"], "update_mask"), (["limit"], "budget.limit")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(
                budget=budgets_pb2.Budget(budget_id=made.budget_id, limit="-5"), update_mask=mask),
                metadata=team.admin)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and str(err.value.details()).startswith(field)
    got = await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=made.budget_id), metadata=team.admin)
    assert got.limit == "5"  # nothing written by the refused updates
    await team.budgets.DeleteBudget(budgets_pb2.DeleteBudgetRequest(budget_id=made.budget_id), metadata=team.admin)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=made.budget_id), metadata=team.admin)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_members_read_their_own_budgets_only_and_write_none(new_team):
    team = await new_team()
    mine = await team.create(scope={"user_id": team.member_user})
    theirs = await team.create(scope={"user_id": team.other_user})
    org_wide = await team.create()
    assert await _ids(team, team.member) == [mine.budget_id]
    assert await _ids(team, team.other) == [theirs.budget_id]
    assert await _ids(team) == [mine.budget_id, theirs.budget_id, org_wide.budget_id]
    for budget_id in (theirs.budget_id, org_wide.budget_id):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=budget_id), metadata=team.member)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    denied = [
        team.budgets.CreateBudget(budgets_pb2.CreateBudgetRequest(budget=budgets_pb2.Budget(limit="1")),
                                  metadata=team.member),
        team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(
            budget=budgets_pb2.Budget(budget_id=mine.budget_id, limit="1000")), metadata=team.member),
        team.budgets.DeleteBudget(budgets_pb2.DeleteBudgetRequest(budget_id=theirs.budget_id), metadata=team.member),
    ]
    for call in denied:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # a member's Check covers the organization's budget too: the verdict, not its numbers
    await team.record(cost="3", auth=team.other)
    reply = await team.check(auth=team.member, estimated_cost="1")
    states = {s.budget_id: s for s in reply.budgets}
    assert set(states) == {mine.budget_id, org_wide.budget_id}
    assert states[mine.budget_id].limit == "50" and states[mine.budget_id].used == "0"
    assert states[org_wide.budget_id].allowed and not states[org_wide.budget_id].used
    assert not states[org_wide.budget_id].limit
    with pytest.raises(grpc.aio.AioRpcError) as err:  # nor may it check another user's usage
        await team.check(auth=team.member, user_id=team.other_user)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_another_organization_sees_nothing_and_the_master_key_acts_anywhere(new_team):
    team, stranger = await new_team(), await new_team()
    made = await team.create()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.GetBudget(budgets_pb2.GetBudgetRequest(budget_id=made.budget_id), metadata=stranger.admin)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _ids(stranger) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await team.budgets.DeleteBudget(budgets_pb2.DeleteBudgetRequest(budget_id=made.budget_id),
                                        metadata=stranger.admin)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    reply = await stranger.check(estimated_cost="1000")
    assert reply.allowed and not reply.budgets
    by_master = await team.budgets.CreateBudget(budgets_pb2.CreateBudgetRequest(
        organization=team.org.organization_id, budget=budgets_pb2.Budget(limit="3")), metadata=MASTER)
    assert by_master.organization_id == team.org.organization_id
    assert by_master.budget_id in await _ids(team)
