"""OpenAI's spend limits on budgets: the official `openai` SDK's `admin.organization.spend_limit` and
`admin.organization.projects.spend_limit`, unchanged, against the gateway served on loopback; the budget
each limit is (read back over gRPC); who may call them; bad input; enforcement after recorded spend."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import zoneinfo

import openai
import pytest

from gateway.dialects.openai.spend_limits import MAX_CENTS, ORGANIZATION_PATH, PROJECT_PATH
from metering.v1 import admin_pb2, budgets_pb2, budgets_pb2_grpc
from tests.conftest import MASTER, bearer
from tests.gateway.usage_events import event, record

ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def budgets(channel) -> budgets_pb2_grpc.BudgetServiceStub:
    return budgets_pb2_grpc.BudgetServiceStub(channel)


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(admin_api_key=key, base_url=f"{url}/v1", max_retries=0)


async def run(method, *args, **kwargs):
    """An SDK call in a thread: the event loop serves the gateway and the server meanwhile."""
    return await asyncio.to_thread(method, *args, **kwargs)


async def project_of(stubs, org, name: str = "p") -> str:
    made = await stubs.admin.CreateProject(
        admin_pb2.CreateProjectRequest(organization=org.organization_id, name=name), metadata=MASTER)
    return str(made.project_id)


async def stored(budgets, key: str, name: str) -> list[budgets_pb2.Budget]:
    """The organization's budgets of that name, as BudgetService has them."""
    reply = await budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(page_size=1000), metadata=bearer(key))
    return [b for b in reply.budgets if b.name == name]


def path_of(project_id: str) -> str:
    return PROJECT_PATH.format(project_id=project_id)


async def test_organization_round_trip_through_the_sdk(live_gateway, new_tenant, budgets):
    t = await new_tenant()
    key = t.org.admin_key
    with sdk(live_gateway, key) as client:
        limits = client.admin.organization.spend_limit
        with pytest.raises(openai.NotFoundError) as none_yet:
            await run(limits.retrieve)
        created = await run(limits.update, currency="USD", interval="month", threshold_amount=12345)
        read = await run(limits.retrieve)
        replaced = await run(limits.update, currency="USD", interval="month", threshold_amount=500)
        after_replace = await stored(budgets, key, ORGANIZATION_PATH)
        deleted = await run(limits.delete)
        with pytest.raises(openai.NotFoundError):
            await run(limits.retrieve)
        with pytest.raises(openai.NotFoundError):
            await run(limits.delete)
    assert none_yet.value.status_code == 404 and none_yet.value.type == "invalid_request_error"
    assert type(created).__name__ == "OrganizationSpendLimit"
    assert created.model_dump() == {"object": "organization.spend_limit", "threshold_amount": 12345,
                                    "currency": "USD", "interval": "month", "enforcement": {"status": "inactive"}}
    assert read == created
    assert replaced.threshold_amount == 500
    [budget] = after_replace  # POST replaced the limit: still one budget
    assert (budget.limit, budget.metric, budget.currency, list(budget.scope)) == ("5", "cost", "usd", [])
    assert (budget.period, budget.time_zone, budget.mode) == (
        budgets_pb2.BUDGET_PERIOD_MONTH, "UTC", budgets_pb2.BUDGET_MODE_ENFORCE)
    assert type(deleted).__name__ == "OrganizationSpendLimitDeleted"
    assert (deleted.object, deleted.deleted) == ("organization.spend_limit.deleted", True)
    assert await stored(budgets, key, ORGANIZATION_PATH) == []


async def test_project_round_trip_through_the_sdk(live_gateway, new_tenant, budgets, stubs):
    t = await new_tenant()
    project_id, other_project = await project_of(stubs, t.org, "a"), await project_of(stubs, t.org, "b")
    with sdk(live_gateway, t.admin.key) as client:
        limits = client.admin.organization.projects.spend_limit
        created = await run(limits.update, project_id, currency="USD", interval="month", threshold_amount=250)
        read = await run(limits.retrieve, project_id)
        with pytest.raises(openai.NotFoundError):  # limits are per project
            await run(limits.retrieve, other_project)
        with pytest.raises(openai.NotFoundError):  # and the organization has none
            await run(client.admin.organization.spend_limit.retrieve)
        [budget] = await stored(budgets, t.admin.key, path_of(project_id))
        deleted = await run(limits.delete, project_id)
        with pytest.raises(openai.NotFoundError):
            await run(limits.retrieve, project_id)
    assert type(created).__name__ == "ProjectSpendLimit"
    assert created.model_dump() == {"object": "project.spend_limit", "threshold_amount": 250, "currency": "USD",
                                    "interval": "month", "enforcement": {"status": "inactive"}}
    assert read == created
    assert [(f.field, list(f.values)) for f in budget.scope] == [("project_id", [project_id])]
    assert (budget.limit, budget.period, budget.mode) == ("2.5", budgets_pb2.BUDGET_PERIOD_MONTH,
                                                          budgets_pb2.BUDGET_MODE_ENFORCE)
    assert type(deleted).__name__ == "ProjectSpendLimitDeleted"
    assert (deleted.object, deleted.deleted) == ("project.spend_limit.deleted", True)


@pytest.mark.parametrize(("cents", "limit"), [
    (1, "0.01"), (10, "0.1"), (100, "1"), (12345, "123.45"), (MAX_CENTS, "90071992547409.91"),
])
async def test_cents_and_the_budget_limit_are_exact(http, new_org, budgets, cents, limit):
    org = await new_org()
    headers = {"Authorization": f"Bearer {org.admin_key}"}
    reply = await http.post(ORGANIZATION_PATH, json={"currency": "USD", "interval": "month",
                                                     "threshold_amount": cents}, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["threshold_amount"] == cents
    [budget] = await stored(budgets, org.admin_key, ORGANIZATION_PATH)
    assert decimal.Decimal(budget.limit) == decimal.Decimal(cents) / 100 and budget.limit == limit
    # And back: a limit written through BudgetService reads as its cents.
    budget.limit = "7.5"
    await budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(budget=budget, update_mask=["limit"]),
                               metadata=org.auth)
    assert (await http.get(ORGANIZATION_PATH, headers=headers)).json()["threshold_amount"] == 750


async def test_members_are_refused_and_other_organizations_see_nothing(http, live_gateway, new_tenant, stubs):
    t, stranger = await new_tenant(), await new_tenant()
    project_id = await project_of(stubs, t.org)
    body = {"currency": "USD", "interval": "month", "threshold_amount": 100}
    for path in (ORGANIZATION_PATH, path_of(project_id)):
        assert (await http.post(path, json=body, headers=t.org_admin)).status_code == 200
    for path in (ORGANIZATION_PATH, path_of(project_id)):
        for verb in ("GET", "POST", "DELETE"):
            reply = await http.request(verb, path, json=body if verb == "POST" else None, headers=t.member.headers)
            assert reply.status_code == 403, (verb, path, reply.text)
            assert set(reply.json()["error"]) == ERROR_KEYS
            assert reply.json()["error"]["type"] == "invalid_request_error"
    # Another organization's admin: its own (empty) scope; the project is not one of its own.
    for verb, path in (("GET", ORGANIZATION_PATH), ("DELETE", ORGANIZATION_PATH), ("GET", path_of(project_id)),
                       ("POST", path_of(project_id)), ("DELETE", path_of(project_id))):
        reply = await http.request(verb, path, json=body if verb == "POST" else None, headers=stranger.org_admin)
        assert reply.status_code == 404, (verb, path, reply.text)
        assert set(reply.json()["error"]) == ERROR_KEYS
    with sdk(live_gateway, t.member.key) as client:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await run(client.admin.organization.spend_limit.retrieve)
    assert denied.value.status_code == 403
    # The limits of the first organization are untouched.
    for path in (ORGANIZATION_PATH, path_of(project_id)):
        assert (await http.get(path, headers=t.admin.headers)).json()["threshold_amount"] == 100


@pytest.mark.parametrize(("body", "param"), [
    ({"currency": "USD", "interval": "month"}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": 0}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": -5}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": 10.5}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": "100"}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": True}, "threshold_amount"),
    ({"currency": "USD", "interval": "month", "threshold_amount": MAX_CENTS + 1}, "threshold_amount"),
    ({"currency": "EUR", "interval": "month", "threshold_amount": 100}, "currency"),
    ({"interval": "month", "threshold_amount": 100}, "currency"),
    ({"currency": "USD", "interval": "week", "threshold_amount": 100}, "interval"),
    ({"currency": "USD", "threshold_amount": 100}, "interval"),
    ({"currency": "USD", "interval": "month", "threshold_amount": 100, "hard": True}, "hard"),
])
async def test_bad_input_is_a_400_naming_the_param(http, new_org, budgets, body, param):
    org = await new_org()
    for path in (ORGANIZATION_PATH, path_of("proj_whatever")):
        reply = await http.post(path, json=body, headers={"Authorization": f"Bearer {org.admin_key}"})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert set(error) == ERROR_KEYS and error["param"] == param and error["type"] == "invalid_request_error"
        assert param in error["message"]
    assert (await budgets.ListBudgets(budgets_pb2.ListBudgetsRequest(), metadata=org.auth)).budgets == []


async def test_bodies_that_are_not_an_object_and_wrong_methods(http, new_org):
    org = await new_org()
    headers = {"Authorization": f"Bearer {org.admin_key}", "Content-Type": "application/json"}
    for raw in (b"", b"{", b"[]", b"100", b'{"threshold_amount": NaN}'):
        reply = await http.post(ORGANIZATION_PATH, content=raw, headers=headers)
        assert reply.status_code == 400, (raw, reply.text)
        assert set(reply.json()["error"]) == ERROR_KEYS and reply.json()["error"]["param"] is None
    wrong = await http.put(ORGANIZATION_PATH, json={}, headers=headers)
    assert wrong.status_code == 405 and set(wrong.json()["error"]) == ERROR_KEYS
    no_key = await http.get(ORGANIZATION_PATH)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"


async def test_the_sdk_sees_the_400(live_gateway, new_org):
    org = await new_org()
    with sdk(live_gateway, org.admin_key) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await run(client.admin.organization.spend_limit.update, currency="USD", interval="month",
                      threshold_amount=0)
    assert bad.value.status_code == 400 and bad.value.param == "threshold_amount"


async def test_enforcement_flips_once_recorded_spend_reaches_the_limit(live_gateway, new_tenant, stubs, budgets):
    t = await new_tenant()
    project_id = await project_of(stubs, t.org)
    now = dt.datetime.now(dt.UTC)
    with sdk(live_gateway, t.org.admin_key) as client:
        org_limits = client.admin.organization.spend_limit
        project_limits = client.admin.organization.projects.spend_limit
        await run(project_limits.update, project_id, currency="USD", interval="month", threshold_amount=100)
        await run(org_limits.update, currency="USD", interval="month", threshold_amount=150)
        await record(stubs, t.admin.key, event("completions", now, project_id=project_id, cost="0.99"))
        below = (await run(project_limits.retrieve, project_id)).enforcement.status
        # Last month's spend does not count toward this month's limit.
        await record(stubs, t.admin.key, event("completions", now.replace(day=1) - dt.timedelta(days=1),
                                               project_id=project_id, cost="5"))
        still_below = (await run(project_limits.retrieve, project_id)).enforcement.status
        await record(stubs, t.admin.key, event("completions", now, project_id=project_id, cost="0.01"))
        reached = await run(project_limits.retrieve, project_id)
        organization = (await run(org_limits.retrieve)).enforcement.status  # $1.00 of $1.50
        check = await budgets.Check(budgets_pb2.CheckRequest(project_id=project_id, estimated_cost="0.01"),
                                    metadata=bearer(t.admin.key))
        raised = await run(project_limits.update, project_id, currency="USD", interval="month",
                           threshold_amount=101)
    assert (below, still_below, reached.enforcement.status) == ("inactive", "inactive", "enforcing")
    assert organization == "inactive"
    assert not check.allowed  # the budget behind the limit refuses the project's next call
    assert raised.enforcement.status == "inactive"  # raising the limit lifts it


async def test_racing_first_posts_leave_one_limit(live_gateway, new_org, budgets):
    org = await new_org()
    amounts = [100 * (i + 1) for i in range(6)]
    with sdk(live_gateway, org.admin_key) as client:
        limits = client.admin.organization.spend_limit
        replies = await asyncio.gather(*(
            run(limits.update, currency="USD", interval="month", threshold_amount=a) for a in amounts))
        final = await run(limits.retrieve)
    [budget] = await stored(budgets, org.admin_key, ORGANIZATION_PATH)
    assert final.threshold_amount in amounts and budget.limit == str(final.threshold_amount // 100)
    assert all(r.threshold_amount in amounts for r in replies)


async def test_openapi_documents_the_spend_limits(http):
    spec = (await http.get("/openapi.json")).json()
    for path, limit, deleted in ((ORGANIZATION_PATH, "OrganizationSpendLimit", "OrganizationSpendLimitDeleted"),
                                 (PROJECT_PATH, "ProjectSpendLimit", "ProjectSpendLimitDeleted")):
        ops = spec["paths"][path]
        assert set(ops) == {"get", "post", "delete"}
        assert ops["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(limit)
        assert ops["delete"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(deleted)
        body = ops["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.endswith("SpendLimitUpdate")
        assert {"400", "401", "403", "404"} <= set(ops["post"]["responses"])
    update = spec["components"]["schemas"]["SpendLimitUpdate"]
    assert set(update["required"]) == {"currency", "interval", "threshold_amount"}
    assert update["properties"]["threshold_amount"]["minimum"] == 1
    assert spec["paths"][PROJECT_PATH]["get"]["parameters"][0]["name"] == "project_id"


async def test_a_limit_resets_at_midnight_of_the_1st_in_the_organizations_zone(http, new_org, stubs, budgets):
    """An organization in America/New_York: its limit's month starts and ends at New York's midnight
    of the 1st; spend in UTC's month but before New York's does not count."""
    org = await new_org()
    await stubs.admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
        time_zone="America/New_York"), metadata=org.auth)
    headers = {"Authorization": f"Bearer {org.admin_key}"}
    set_limit = await http.post(ORGANIZATION_PATH, json={"currency": "USD", "interval": "month",
                                                         "threshold_amount": 100}, headers=headers)
    new_york = zoneinfo.ZoneInfo("America/New_York")
    start = dt.datetime.now(new_york).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)  # wall-clock arithmetic: midnight of the next 1st
    await record(stubs, org.admin_key, event("completions", start - dt.timedelta(seconds=1), cost="5"),
                 event("completions", start + dt.timedelta(seconds=1), cost="1"))
    [budget] = await stored(budgets, org.admin_key, ORGANIZATION_PATH)
    [state] = (await budgets.Check(budgets_pb2.CheckRequest(), metadata=org.auth)).budgets
    limit = await http.get(ORGANIZATION_PATH, headers=headers)

    assert set_limit.status_code == 200, set_limit.text
    assert (budget.time_zone, budget.period) == ("America/New_York", budgets_pb2.BUDGET_PERIOD_MONTH)
    assert start.utcoffset() != dt.timedelta(0)  # New York's midnight is not UTC's
    assert state.period_start.ToDatetime(dt.UTC) == start.astimezone(dt.UTC)
    assert state.resets_at.ToDatetime(dt.UTC) == end.astimezone(dt.UTC)
    assert state.used == "1"  # the $5 a second before New York's month began is last month's
    assert limit.json()["enforcement"]["status"] == "enforcing"
