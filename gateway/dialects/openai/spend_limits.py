"""OpenAI's hard spend limits, served on budgets (DESIGN §11):

    GET | POST | DELETE  /v1/organization/spend_limit
    GET | POST | DELETE  /v1/organization/projects/{project_id}/spend_limit

as the official SDK declares them (`client.admin.organization.spend_limit` and
`client.admin.organization.projects.spend_limit`). A limit is `{"object": "organization.spend_limit"
| "project.spend_limit", "threshold_amount": <cents>, "currency": "USD", "interval": "month",
"enforcement": {"status": "inactive" | "enforcing"}}`. POST creates or replaces it from
`{"currency": "USD", "interval": "month", "threshold_amount": <cents, 1 .. 2**53 - 1>}` (all required,
nothing else accepted); DELETE answers `{"object": "<object>.deleted", "deleted": true}`. A scope
without a limit is a 404, as is a POST for a project the organization does not have. Only an
organization admin key (OpenAI's admin key) may call them: anyone else gets a 403. Errors are
OpenAI's `{"error": {"message", "type", "param", "code"}}` (common.render_error).

A spend limit is one budget of the caller's organization (BudgetService over gRPC), named by its
path (`/v1/organization/spend_limit`, `/v1/organization/projects/<id>/spend_limit`) so it reads
plainly in the native /v1/budgets too:

    scope      none (the whole organization), or project_id = the project
    metric     cost, currency usd; limit = threshold_amount / 100, exact (cents <-> decimal)
    period     month, calendar-aligned in the organization's time zone (AdminService's
               organization settings, default UTC) as it is when the limit is set: the budget is
               written without a zone and the server gives it the organization's
    mode       ENFORCE; unpriced usage allowed and reported, fail open (the budget defaults)

It is found with BudgetService.Check of the scope (no estimate, nothing reserved), which answers
every budget covering the scope from the server's verified copy of the organization's budgets.
`enforcement.status` is "enforcing" when that Check is denied, i.e. the month's spend (recorded
usage plus open reservations) has reached the threshold, so requests of the scope are refused
until the month ends or the limit is raised; otherwise "inactive".

One limit per scope: POST updates the scope's budget (every writable field) or creates it. Two
first POSTs racing may both create one; each then folds the scope's budgets into the one with the
smallest budget_id (its own values written there if it is not its own, the others deleted), so
the scope is left with one, holding the values of one of the POSTs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import grpc
from google.protobuf import message as pb_message
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dialects.common import call
from gateway.dialects.openai.common import ERRORS, ErrorResponse, bad_param, render_error, validate
from gateway.http.errors import GatewayError, renders_errors
from gateway.http.json_body import loads
from gateway.http.json_response import JSONResponse
from gateway.http.openapi import Doc, documented
from gateway.upstream.client import metadata, upstream
from metering.v1 import admin_pb2, budgets_pb2, query_pb2

ORGANIZATION_PATH = "/v1/organization/spend_limit"
PROJECT_PATH = "/v1/organization/projects/{project_id}/spend_limit"
TAG = "OpenAI spend limits"
MAX_CENTS = 2**53 - 1  # the largest integer every JSON client reads exactly
CHECK_ATTEMPTS = 5  # of the Check that finds a limit, while concurrent writes abort it
BUDGETS = budgets_pb2.DESCRIPTOR.services_by_name["BudgetService"]
_CENTS = decimal.Context(prec=80)  # a budget's limit has at most 38 digits: scaling it never rounds
LIMIT_ERRORS: dict[int, tuple[str, Any]] = {
    **ERRORS,
    403: ("Not an organization admin key", ErrorResponse),
    404: ("No spend limit is set for this scope (or no such project)", ErrorResponse),
}


class SpendLimitEnforcement(BaseModel):
    status: Literal["inactive", "enforcing"] = Field(description=(
        "`enforcing` once the month's spend has reached the threshold (requests of the scope are refused "
        "until the month ends or the limit is raised), else `inactive`."))


class OrganizationSpendLimit(BaseModel):
    object: Literal["organization.spend_limit"]
    threshold_amount: int = Field(description="The hard spend limit amount, in cents.")
    currency: Literal["USD"]
    interval: Literal["month"]
    enforcement: SpendLimitEnforcement


class ProjectSpendLimit(BaseModel):
    object: Literal["project.spend_limit"]
    threshold_amount: int = Field(description="The hard spend limit amount, in cents.")
    currency: Literal["USD"]
    interval: Literal["month"]
    enforcement: SpendLimitEnforcement


class OrganizationSpendLimitDeleted(BaseModel):
    object: Literal["organization.spend_limit.deleted"]
    deleted: bool


class ProjectSpendLimitDeleted(BaseModel):
    object: Literal["project.spend_limit.deleted"]
    deleted: bool


class SpendLimitUpdate(BaseModel):
    """POST's body: every field required, no other field accepted."""

    model_config = ConfigDict(extra="forbid")
    currency: Literal["USD"] = Field(description="The currency of the threshold amount; only `USD`.")
    interval: Literal["month"] = Field(description="The interval spend is evaluated over; only `month`.")
    threshold_amount: StrictInt = Field(ge=1, le=MAX_CENTS, description="The hard spend limit amount, in cents.")


@dataclasses.dataclass(frozen=True)
class Scope:
    """Whose spend a limit caps: the organization (project_id "") or one project."""

    object: str  # "organization.spend_limit" / "project.spend_limit"
    project_id: str = ""

    @property
    def budget_name(self) -> str:
        if self.project_id:
            return PROJECT_PATH.format(project_id=self.project_id)
        return ORGANIZATION_PATH

    def budget(self, cents: int) -> budgets_pb2.Budget:
        """The budget a limit of `cents` is."""
        scope = [query_pb2.Filter(field="project_id", values=[self.project_id])] if self.project_id else []
        return budgets_pb2.Budget(
            name=self.budget_name, scope=scope, metric="cost", currency="usd", limit=limit_of(cents),
            period=budgets_pb2.BUDGET_PERIOD_MONTH, mode=budgets_pb2.BUDGET_MODE_ENFORCE,
        )

    def not_found(self) -> GatewayError:
        whose = f"project '{self.project_id}'" if self.project_id else "this organization"
        return GatewayError(grpc.StatusCode.NOT_FOUND, f"No spend limit is set for {whose}.")


def limit_of(cents: int) -> str:
    """threshold_amount (cents) as the budget's exact decimal limit: 12345 -> "123.45"."""
    return format(decimal.Decimal(cents).scaleb(-2, _CENTS), "f")


def cents_of(limit: str) -> int:
    """A budget's limit in whole cents: exact for the limits this dialect writes; a limit set in
    fractions of a cent through the native API is shown rounded down."""
    return int(decimal.Decimal(limit).scaleb(2, _CENTS).to_integral_value(decimal.ROUND_DOWN))


def rendered(scope: Scope, state: budgets_pb2.BudgetState) -> dict[str, Any]:
    return {
        "object": scope.object,
        "threshold_amount": cents_of(state.limit),
        "currency": "USD",
        "interval": "month",
        "enforcement": {"status": "inactive" if state.allowed else "enforcing"},
    }


# -- calls ------------------------------------------------------------------------------------

async def _rpc(request: Request, name: str, message: pb_message.Message) -> Any:
    """BudgetService.`name` on the shared channel, with the caller's credentials."""
    reply_type = getattr(budgets_pb2, BUDGETS.methods_by_name[name].output_type.name)
    method = upstream(request).unary(f"/{BUDGETS.full_name}/{name}", reply_type)
    return await call(request, method, message)


async def require_admin(request: Request) -> None:
    """OpenAI's admin endpoints take an admin key: here an organization admin (the server checks
    the writes again; this gives readers the same clear 403)."""
    me = await upstream(request).identities.of(metadata(request))
    if not (me.master or (me.role == admin_pb2.ROLE_ADMIN and not me.project_id)):
        raise GatewayError(grpc.StatusCode.PERMISSION_DENIED,
                           "Spend limits are managed with an organization admin key.")


async def find(request: Request, scope: Scope) -> list[budgets_pb2.BudgetState]:
    """The scope's spend-limit budgets, by budget_id (normally none or one). A Check that kept losing
    to concurrent budget changes (ABORTED, "retry") is tried again after a short, growing pause."""
    check = budgets_pb2.CheckRequest(project_id=scope.project_id)
    for attempt in range(CHECK_ATTEMPTS):
        try:
            reply: budgets_pb2.CheckResponse = await _rpc(request, "Check", check)
            break
        except GatewayError as err:
            if err.code != grpc.StatusCode.ABORTED or attempt == CHECK_ATTEMPTS - 1:
                raise
        await asyncio.sleep(random.uniform(0.5, 1.0) * 0.02 * 2**attempt)
    if reply.degraded:
        raise GatewayError(grpc.StatusCode.UNAVAILABLE, "The spend limits cannot be read right now; retry later.")
    return sorted((s for s in reply.budgets if s.name == scope.budget_name), key=lambda s: s.budget_id)


async def _update(request: Request, budget_id: str, budget: budgets_pb2.Budget) -> None:
    wanted = budgets_pb2.Budget()
    wanted.CopyFrom(budget)
    wanted.budget_id = budget_id
    await _rpc(request, "UpdateBudget", budgets_pb2.UpdateBudgetRequest(budget=wanted))


async def _delete(request: Request, budget_ids: list[str]) -> None:
    for budget_id in budget_ids:
        try:
            await _rpc(request, "DeleteBudget", budgets_pb2.DeleteBudgetRequest(budget_id=budget_id))
        except GatewayError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:  # deleted meanwhile: what we wanted
                raise


async def _require_project(request: Request, project_id: str) -> None:
    reply: admin_pb2.ListProjectsResponse = await call(
        request, upstream(request).stubs.admin.ListProjects, admin_pb2.ListProjectsRequest())
    if all(p.project_id != project_id for p in reply.projects):
        raise GatewayError(grpc.StatusCode.NOT_FOUND, f"No such project: '{project_id}'.")


async def threshold_of(request: Request) -> int:
    """POST's threshold_amount, once the body is checked."""
    raw = await request.body()
    try:
        data = loads(raw) if raw.strip() else None
    except ValueError:
        raise bad_param(None, "We could not parse the JSON body of your request. (HINT: This likely means "
                              "you aren't using your HTTP library correctly.)") from None
    if not isinstance(data, dict):
        raise bad_param(None, "The request body must be a JSON object with currency, interval and "
                              "threshold_amount.")
    body = validate(SpendLimitUpdate, data)
    return body.threshold_amount


# -- the three methods --------------------------------------------------------------------------

async def retrieve(request: Request, scope: Scope) -> Response:
    await require_admin(request)
    found = await find(request, scope)
    if not found:
        raise scope.not_found()
    return JSONResponse(rendered(scope, found[0]))


async def update(request: Request, scope: Scope) -> Response:
    await require_admin(request)
    cents = await threshold_of(request)
    if scope.project_id:
        await _require_project(request, scope.project_id)
    budget = scope.budget(cents)
    found = await find(request, scope)
    if found:
        mine = found[0].budget_id
        await _update(request, mine, budget)
    else:
        created: budgets_pb2.Budget = await _rpc(
            request, "CreateBudget", budgets_pb2.CreateBudgetRequest(budget=budget))
        mine = created.budget_id
    found = await find(request, scope)
    if [s.budget_id for s in found] != [mine]:  # a concurrent first POST created one too
        found = await fold(request, scope, found, mine, budget)
    if not found:  # a DELETE got in between
        raise GatewayError(grpc.StatusCode.ABORTED, "The spend limit was deleted while it was being set; retry.")
    return JSONResponse(rendered(scope, found[0]))


async def fold(request: Request, scope: Scope, found: list[budgets_pb2.BudgetState], mine: str,
               budget: budgets_pb2.Budget) -> list[budgets_pb2.BudgetState]:
    """Leaves the scope one budget, the one with the smallest budget_id, holding `budget` (what
    this POST wrote into `mine`); every POST racing does the same, so they agree on which."""
    if found:
        keep, *others = found
        if keep.budget_id != mine:
            await _update(request, keep.budget_id, budget)
        await _delete(request, [s.budget_id for s in others])
        found = await find(request, scope)
    return found


async def delete(request: Request, scope: Scope) -> Response:
    await require_admin(request)
    found = await find(request, scope)
    if not found:
        raise scope.not_found()
    await _delete(request, [s.budget_id for s in found])
    return JSONResponse({"object": f"{scope.object}.deleted", "deleted": True})


# -- routes -------------------------------------------------------------------------------------

Method = Callable[[Request, Scope], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Level:
    """The organization's or a project's endpoints."""

    name: str  # "organization" / "project"
    path: str
    limit: type[BaseModel]
    deleted: type[BaseModel]

    def scope(self, request: Request) -> Scope:
        return Scope(f"{self.name}.spend_limit", request.path_params.get("project_id", ""))

    def route(self, verb: str, method: Method, summary: str) -> Route:
        doc = Doc(summary, tags=(TAG,), body=SpendLimitUpdate if verb == "POST" else None,
                  response=self.deleted if verb == "DELETE" else self.limit, errors=LIMIT_ERRORS)

        @documented(doc)
        @renders_errors(render_error)
        async def endpoint(request: Request) -> Response:
            return await method(request, self.scope(request))

        endpoint.__name__ = endpoint.__qualname__ = f"{method.__name__}_{self.name}_spend_limit"
        return Route(self.path, endpoint, methods=[verb], name=endpoint.__name__)


LEVELS = (
    Level("organization", ORGANIZATION_PATH, OrganizationSpendLimit, OrganizationSpendLimitDeleted),
    Level("project", PROJECT_PATH, ProjectSpendLimit, ProjectSpendLimitDeleted),
)


def routes() -> list[Route]:
    made = []
    for level in LEVELS:
        whose = "the organization's" if level.name == "organization" else "a project's"
        made += [
            level.route("GET", retrieve, f"Get {whose} hard spend limit."),
            level.route("POST", update, f"Create or replace {whose} hard spend limit."),
            level.route("DELETE", delete, f"Delete {whose} hard spend limit."),
        ]
    return made
