"""The tenant verbs of the `metering` command (orgs, projects, users, keys).

Every verb is one AdminService call. With --target (or METERING_TARGET) it goes
to that running service with the master key; otherwise an in-process server on
an ephemeral loopback port, over the configured (or embedded) database, answers
it, so both paths share one implementation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import grpc

from metering.v1 import admin_pb2, admin_pb2_grpc
from server.core.config import ConfigError, Settings
from server.core.convert import ROLE_TO_PROTO


@contextlib.asynccontextmanager
async def _channel(
    args: argparse.Namespace, settings: Settings,
) -> AsyncIterator[tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]]]:
    target = getattr(args, "target", None) or os.environ.get("METERING_TARGET")
    if target:
        from server.runtime.up import master_key

        key = settings.master_key or (master_key(settings) if (settings.data_dir / "master_key").exists() else None)
        if not key:
            raise ConfigError("METERING_MASTER_KEY is required to administer a running service")
        async with grpc.aio.insecure_channel(target) as channel:
            yield channel, (("authorization", f"Bearer {key}"),)
        return

    from server.runtime.app import MeteringServer
    from server.runtime.up import backing_services
    from server.tenants.credentials import random_text

    key = "cli-" + random_text(32)
    with backing_services(settings, redis=False) as (dsn, _):
        server = MeteringServer(dsn, "127.0.0.1:0", key, pool_size=2)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield channel, (("authorization", f"Bearer {key}"),)
        finally:
            await server.stop(grace=1)


def _role(name: str | None) -> admin_pb2.Role:
    return ROLE_TO_PROTO[name] if name else admin_pb2.ROLE_UNSPECIFIED


async def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    try:
        async with _channel(args, settings) as (channel, auth):
            if args.verb == "prices":
                from server.runtime import prices_cli

                lines = await prices_cli.call(channel, auth, args)
            else:
                lines = await _call(admin_pb2_grpc.AdminServiceStub(channel), auth, args)
            for line in lines:
                print(line)
    except grpc.aio.AioRpcError as err:
        print(f"metering: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    return 0


async def _call(
    stub: admin_pb2_grpc.AdminServiceStub, auth: tuple[tuple[str, str], ...], args: argparse.Namespace,
) -> list[str]:
    verb, action = args.verb, args.action
    if (verb, action) == ("orgs", "create"):
        org = await stub.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=args.name), metadata=auth)
        return [f"organization_id={org.organization_id} name={org.name}"]
    if (verb, action) == ("orgs", "list"):
        resp = await stub.ListOrganizations(admin_pb2.ListOrganizationsRequest(), metadata=auth)
        return [f"{o.organization_id}\t{o.name}" for o in resp.organizations]
    if (verb, action) == ("projects", "create"):
        project = await stub.CreateProject(
            admin_pb2.CreateProjectRequest(organization=args.org, name=args.name, project_id=args.id), metadata=auth
        )
        return [f"project_id={project.project_id} name={project.name} organization_id={project.organization_id}"]
    if (verb, action) == ("projects", "list"):
        resp = await stub.ListProjects(admin_pb2.ListProjectsRequest(organization=args.org), metadata=auth)
        return [f"{p.project_id}\t{p.name}" for p in resp.projects]
    if (verb, action) == ("users", "create"):
        user = await stub.CreateUser(admin_pb2.CreateUserRequest(
            organization=args.org, username=args.username, password=args.password, role=_role(args.role),
            user_id=args.id,
        ), metadata=auth)
        return [f"user_id={user.user_id} username={user.username} role={args.role} "
                f"organization_id={user.organization_id}"]
    if (verb, action) == ("users", "list"):
        resp = await stub.ListUsers(admin_pb2.ListUsersRequest(organization=args.org), metadata=auth)
        return [f"{u.user_id}\t{u.username}\t{admin_pb2.Role.Name(u.role)}" for u in resp.users]
    if (verb, action) == ("keys", "create"):
        resp = await stub.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=args.org, project_id=args.project, user_id=args.user, role=_role(args.role), name=args.name,
        ), metadata=auth)
        k = resp.api_key
        return [
            f"api_key_id={k.api_key_id} organization_id={k.organization_id} role={admin_pb2.Role.Name(k.role)}"
            f"{' project_id=' + k.project_id if k.project_id else ''}{' user_id=' + k.user_id if k.user_id else ''}",
            "# the key below is shown once; store it now",
            resp.key,
        ]
    if (verb, action) == ("keys", "revoke"):
        revoke = admin_pb2.RevokeApiKeyRequest(organization=args.org, api_key_id=args.key)
        k = await stub.RevokeApiKey(revoke, metadata=auth)
        return [f"revoked api_key_id={k.api_key_id}"]
    if (verb, action) == ("keys", "list"):
        resp = await stub.ListApiKeys(admin_pb2.ListApiKeysRequest(organization=args.org), metadata=auth)
        return [
            f"{k.api_key_id}\t{k.prefix}...\t{admin_pb2.Role.Name(k.role)}\t{k.project_id or '-'}\t{k.user_id or '-'}"
            f"\t{'revoked' if k.revoked else 'active'}"
            for k in resp.api_keys
        ]
    raise ConfigError(f"unknown command {verb} {action}")
