"""What every servicer needs: the core objects and the caller's identity."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

import grpc

from server.core.errors import PermissionDenied
from server.core.principal import Principal
from server.records.store import Records
from server.tenants.auth import Authenticator
from server.tenants.store import Tenants

ORG_HEADER = "x-metering-organization"

# The servicer context of any call (requests and replies are typed by each method).
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


@dataclasses.dataclass
class Core:
    tenants: Tenants
    auth: Authenticator
    records: Records


def metadata(context: Context, name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return None


async def caller(core: Core, context: Context) -> Principal:
    """The authenticated principal; the master key may act in another organization
    named by the x-metering-organization header."""
    principal = await core.auth.authenticate(metadata(context, "authorization"))
    target = metadata(context, ORG_HEADER)
    if target:
        return await in_organization(core, principal, target)
    return principal


async def in_organization(core: Core, principal: Principal, ref: str) -> Principal:
    if not ref or ref in (principal.organization_id,):
        return principal
    org = await core.tenants.organization(ref)
    if org["org_id"] == principal.org_id:
        return principal
    if not principal.master:
        raise PermissionDenied("only the master key may act in another organization")
    return principal.acting_in(org["org_id"], org["id"])
