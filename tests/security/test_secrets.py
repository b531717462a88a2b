"""Secrets: hashed at rest, compared in constant time, never logged (server, gateway, CLI)."""

from __future__ import annotations

import ast
import inspect
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest

from metering.v1 import admin_pb2, event_pb2, ingest_pb2
from server.tenants import auth, credentials
from server.tenants.credentials import random_text
from tests.conftest import MASTER, MASTER_KEY, Stubs, bearer
from tests.security.conftest import PASSWORD, World

ROOT = Path(__file__).resolve().parents[2]


def _secrets(world: World) -> list[str]:
    keys = [k for k in world.keys.values() if k and not k.startswith("Bearer mk_garbage")]
    # the random tail of each key alone must not be stored either (only the 12-char lookup prefix is)
    tails = [k.split("_", 2)[2] for k in keys if k.startswith("mk_")]
    return [*keys, *tails, PASSWORD]


async def test_no_plaintext_secret_anywhere_in_the_database(world: World, db: asyncpg.Pool) -> None:
    tables = [r["name"] for r in await db.fetch(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')")]
    assert any("api_keys" in t for t in tables) and any("users" in t for t in tables)
    secrets = _secrets(world)
    for table in tables:  # every plain table and partition, one pass each
        hits = await db.fetch(
            f"SELECT s FROM (SELECT row_to_json(t)::text AS j FROM {table} t) r, unnest($1::text[]) s "
            "WHERE strpos(r.j, s) > 0 LIMIT 1", secrets)
        assert not hits, (table, hits[0]["s"][:6] if hits else "")
    rows = await db.fetch("SELECT * FROM api_keys")
    assert rows and all(len(bytes(r["secret_hash"])) == 32 for r in rows)  # SHA-256 of ~240 random bits
    users = await db.fetch("SELECT row_to_json(u)::text AS j FROM users u")
    assert users and all("scrypt$" in u["j"] for u in users)


def _compares_secret_with_eq(func: Callable[..., object]) -> list[str]:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(func)))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            text = ast.unparse(node).lower()
            if any(word in text for word in ("hash", "digest", "mac", "secret", "master", "password", "key")):
                bad.append(ast.unparse(node))
    return bad


def test_secret_comparisons_are_constant_time() -> None:
    """By inspection: every comparison of a secret goes through hmac.compare_digest, never ==."""
    checked: list[Callable[..., object]] = [
        credentials.key_matches, credentials.password_matches, credentials.verify_token,
        auth.Authenticator.principal_for, auth.Authenticator._from_key,
    ]
    for func in checked:
        assert _compares_secret_with_eq(func) == [], func
    for func in (credentials.key_matches, credentials.password_matches, credentials.verify_token,
                 auth.Authenticator.principal_for):
        assert "hmac.compare_digest" in inspect.getsource(func), func


async def test_no_secret_or_dsn_in_server_or_gateway_logs(
    world: World, stubs: Stubs, http: httpx.AsyncClient, database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("server", "gateway", "metering.access", "asyncpg", "grpc", "metering_client"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        password = "pw-" + random_text(16)
        user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
            organization=world.org_a, username="log-" + random_text(8).lower(), password=password), metadata=MASTER)
        created = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(
            organization=world.org_a, user_id=user.user_id), metadata=MASTER)
        login = await stubs.admin.Login(admin_pb2.LoginRequest(username=user.username, password=password))
        await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
            kind="completions", model="m")), metadata=bearer(created.key))
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.admin.Login(admin_pb2.LoginRequest(username=user.username, password=password + "x"))
        wrong = created.key[:-1] + ("a" if created.key[-1] != "a" else "b")
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(wrong))
        for headers in ({"Authorization": f"Bearer {created.key}"}, {"Authorization": f"Bearer {login.token}"},
                        {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Bearer {MASTER_KEY}"}):
            await http.get("/v1/whoami", headers=headers)
            await http.get("/usage", headers=headers)
        await http.post("/api/login", json={"auth": {"username": user.username, "password": password}})
        await http.post("/api/get_usage_tally", json={"auth": {"username": user.username, "password": password},
                                                      "window": "day"})
        await http.post("/api/get_usage_tally", json={"auth": {"api_key": wrong}, "window": "day"})
    finally:
        for name in ("server", "gateway", "asyncpg", "grpc", "metering_client"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger("metering.access").setLevel(logging.NOTSET)
    logged = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in caplog.records)
    assert "rpc " in logged  # the per-RPC log line was captured at all
    for secret in (created.key, wrong, login.token, password, MASTER_KEY, database_url, *_secrets(world)):
        assert secret not in logged, secret[:6]


def test_no_secret_or_dsn_in_cli_output(database_url: str, world: World) -> None:
    env = {**os.environ, "METERING_DATABASE_URL": database_url, "METERING_LOG_LEVEL": "DEBUG",
           "METERING_MASTER_KEY": MASTER_KEY}
    password = "pw-" + random_text(16)
    username = "cli-" + random_text(8).lower()
    metering = [sys.executable, "-m", "server"]
    users = subprocess.run([*metering, "users", "create", "--org", world.org_a, "--username", username,
                            "--password", password], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert users.returncode == 0, users.stderr
    keys = subprocess.run([*metering, "keys", "create", "--org", world.org_a], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0, keys.stderr
    key = keys.stdout.strip().splitlines()[-1]
    assert key.startswith("mk_")
    assert keys.stdout.count(key) == 1  # printed once, alone on its line
    for out in (users.stdout + users.stderr, keys.stderr):
        for secret in (password, key, database_url, MASTER_KEY):
            assert secret not in out, secret[:6]
