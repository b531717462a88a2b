"""The tenant verbs of the `metering` command (orgs, projects, users, keys).

Every verb is one AdminService call, to the service the user means, found in this order:

1. --target (or METERING_TARGET): that service, with METERING_MASTER_KEY or the data dir's key file;
2. a data dir given (--data-dir or METERING_DATA_DIR): the `up` running on it; if none runs, an
   in-process server over METERING_DATABASE_URL or over the embedded database the dir holds;
3. METERING_DATABASE_URL: an in-process server over that database;
4. the one `up` this user runs (runtime/running.py), whatever its data dir;
5. else refuse, saying how to point at a service.

The in-process server (an ephemeral loopback port) shares the one implementation with a running
service. The verbs never create an embedded database: one that does not exist yet is a sign of
the wrong data dir, not of a fresh install.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator

import grpc

from metering.v1 import admin_pb2, admin_pb2_grpc
from server.core.config import ConfigError, Settings
from server.core.convert import ROLE_TO_PROTO
from server.runtime.running import UpState, running_on, running_ups

HOW_TO_POINT = ("point at one with --target HOST:PORT (or METERING_TARGET) and METERING_MASTER_KEY, "
                "at the data dir of a running `metering up` with --data-dir DIR, "
                "or at a database with METERING_DATABASE_URL")
Auth = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Remote:
    target: str
    key: str


def _key_of(up: UpState, settings: Settings) -> str:
    if up.master_key_file:
        try:
            with open(up.master_key_file) as f:
                return f.read().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the master key of metering up (pid {up.pid}): {exc}") from None
    if settings.master_key:
        return settings.master_key
    raise ConfigError(f"metering up (pid {up.pid}) takes its master key from METERING_MASTER_KEY: set it here too")


def _has_database(settings: Settings) -> bool:
    return (settings.data_dir / "postgres" / "PG_VERSION").exists()


def find_service(args: argparse.Namespace, settings: Settings, data_dir_given: bool) -> Remote | None:
    """The running service to call, or None for an in-process server (the database is known to exist)."""
    target = getattr(args, "target", None) or os.environ.get("METERING_TARGET")
    if target:
        from server.runtime.up import MASTER_KEY_FILE

        key_file = settings.data_dir / MASTER_KEY_FILE
        key = settings.master_key or (key_file.read_text().strip() if key_file.exists() else None)
        if not key:
            raise ConfigError("METERING_MASTER_KEY is required to administer a running service")
        return Remote(target, key)
    if data_dir_given:
        up = running_on(settings.data_dir)
        if up is not None:
            return Remote(up.target, _key_of(up, settings))
        if settings.database_url or _has_database(settings):
            return None
        raise ConfigError(f"no metering up runs on data dir {settings.data_dir}, and it holds no database; "
                          + HOW_TO_POINT)
    if settings.database_url:
        return None
    ups = running_ups()
    if len(ups) == 1:
        return Remote(ups[0].target, _key_of(ups[0], settings))
    if ups:
        listed = ", ".join(f"{u.data_dir} (gRPC {u.grpc_addr})" for u in ups)
        raise ConfigError(f"several metering up run ({listed}): choose one with --data-dir DIR")
    raise ConfigError("no running metering up found for this user, and no database named; " + HOW_TO_POINT)


@contextlib.asynccontextmanager
async def _channel(
    args: argparse.Namespace, settings: Settings, data_dir_given: bool,
) -> AsyncIterator[tuple[grpc.aio.Channel, Auth]]:
    remote = find_service(args, settings, data_dir_given)
    if remote is not None:
        async with grpc.aio.insecure_channel(remote.target) as channel:
            yield channel, (("authorization", f"Bearer {remote.key}"),)
        return

    from server.runtime.app import MeteringServer
    from server.runtime.running import claim
    from server.runtime.up import backing_services
    from server.tenants.credentials import random_text

    key = "cli-" + random_text(32)
    # the data dir's lock while its embedded database runs for us: an up starting now waits
    held = contextlib.nullcontext() if settings.database_url else claim(settings.data_dir)
    with held, backing_services(settings, redis=False) as backing:
        server = MeteringServer(backing.dsn, "127.0.0.1:0", key, pool_size=2)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield channel, (("authorization", f"Bearer {key}"),)
        finally:
            await server.stop(grace=1)


def _role(name: str | None) -> admin_pb2.Role:
    return ROLE_TO_PROTO[name] if name else admin_pb2.ROLE_UNSPECIFIED


async def run_admin(args: argparse.Namespace, settings: Settings, data_dir_given: bool) -> int:
    """data_dir_given: --data-dir or METERING_DATA_DIR named the data dir (not the default one)."""
    try:
        async with _channel(args, settings, data_dir_given) as (channel, auth):
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
    stub: admin_pb2_grpc.AdminServiceStub, auth: Auth, args: argparse.Namespace,
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
