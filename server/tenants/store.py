"""Organizations, projects, users and API keys (DESIGN §3)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import secrets
import uuid

import asyncpg

from server.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from server.storage import notify
from server.storage.db import q
from server.tenants import credentials

ROLES = ("admin", "member")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
MAX_TOKEN_TTL = 30 * 24 * 3600


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the username is unknown, so both cases take the same time."""
    return credentials.hash_password(secrets.token_hex(8))


def _name(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "required", reason="REQUIRED")
    if not _SLUG.match(value):
        raise InvalidArgument(field, "1-128 characters of letters, digits and _ . @ -, starting with a letter or digit")
    return value


def _no_nul(field: str, value: str) -> str:
    """Postgres text cannot hold NUL: a lookup value with one is refused, naming its field, before any SQL."""
    if "\x00" in value:
        raise InvalidArgument(field, "contains a NUL character")
    return value


class Tenants:
    def __init__(self, pool: asyncpg.Pool, *, default_prices: bool = False) -> None:
        self.pool = pool
        self.default_prices = default_prices  # new organizations' books start as the price catalog

    async def create_organization(self, name: str) -> asyncpg.Record:
        name = _name("name", name)
        async with self.pool.acquire() as conn, (
            conn.transaction() if self.default_prices else contextlib.nullcontext()  # one statement: no transaction
        ):
            row = await conn.fetchrow(q("insert_organization"), "org_" + credentials.random_text(16), name)
            if row is None:
                raise AlreadyExists(f"organization {name!r} already exists")
            if self.default_prices:  # the shared catalog (server/pricing/catalog.py): a reference, not a copy
                await conn.execute(q("attach_price_catalog"), row["org_id"])
        return row

    async def organization(self, ref: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(q("find_organization"), _no_nul("organization", ref))
        if row is None:
            raise NotFound(f"organization {ref!r} not found")
        return row

    async def organization_by_number(self, org_id: int) -> asyncpg.Record:
        row = await self.pool.fetchrow(q("organization_by_number"), org_id)
        if row is None:
            raise NotFound("organization not found")
        return row

    async def time_zone(self, org_id: int) -> str:
        """The organization's time zone (an IANA name; default UTC)."""
        zone = await self.pool.fetchval(q("organization_time_zone"), org_id)
        if zone is None:
            raise NotFound("organization not found")
        return str(zone)

    async def set_time_zone(self, org_id: int, zone: str) -> str:
        """zone: an IANA name, checked by the caller (server/query/buckets.py parse_zone)."""
        stored = await self.pool.fetchval(q("set_organization_time_zone"), org_id, zone)
        if stored is None:
            raise NotFound("organization not found")
        return str(stored)

    async def list_organizations(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(q("list_organizations"))

    async def create_project(self, org_id: int, name: str, project_id: str = "") -> asyncpg.Record:
        name = _name("name", name)
        project_id = _name("project_id", project_id) if project_id else name
        row = await self.pool.fetchrow(q("insert_project"), org_id, project_id, name)
        if row is None:
            raise AlreadyExists(f"project {project_id!r} already exists")
        return row

    async def list_projects(self, org_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(q("list_projects"), org_id)

    async def create_user(
        self, org_id: int, username: str, password: str, role: str = "member", user_id: str = ""
    ) -> asyncpg.Record:
        """user_id: the id events carry; default a new uuid, stable for ever (the username may serve to log in,
        never as an id: seed 002's `user_id` is a uuid)."""
        username = _name("username", username)
        user_id = _name("user_id", user_id) if user_id else str(uuid.uuid4())
        if len(password) < 8:
            raise InvalidArgument("password", "at least 8 characters")
        if role not in ROLES:
            raise InvalidArgument("role", "admin or member")
        hashed = await asyncio.to_thread(credentials.hash_password, password)  # ~50 ms of scrypt: off the loop
        row = await self.pool.fetchrow(q("insert_user"), org_id, user_id, username, hashed, role)
        if row is None:
            raise AlreadyExists(f"user {username!r} already exists")
        return row

    async def list_users(self, org_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(q("list_users"), org_id)

    async def create_api_key(
        self, org_id: int, *, project_id: str = "", user_id: str = "", role: str = "", name: str = ""
    ) -> tuple[asyncpg.Record, str]:
        """Returns (the stored key, its plaintext). The plaintext is not kept."""
        if project_id and await self.pool.fetchrow(q("find_project"), org_id,
                                                   _no_nul("project_id", project_id)) is None:
            raise NotFound(f"project {project_id!r} not found", field="project_id")
        if user_id:  # the user's id, or its username
            user = await self.pool.fetchrow(q("find_user"), org_id, _no_nul("user_id", user_id))
            if user is None:
                raise NotFound(f"user {user_id!r} not found", field="user_id")
            user_id = user["user_id"]
            role = role or user["role"]
            if role == "admin" and user["role"] != "admin":
                raise PermissionDenied("a member's key cannot have the admin role", field="role")
        role = role or "admin"
        if role not in ROLES:
            raise InvalidArgument("role", "admin or member")
        if len(name) > 128:
            raise InvalidArgument("name", "at most 128 characters")
        _no_nul("name", name)
        key, prefix, digest = credentials.new_api_key()
        # no notification: caches hold keys that were found, never one that was not
        row = await self.pool.fetchrow(
            q("insert_api_key"), org_id, "key_" + credentials.random_text(16), prefix, digest,
            project_id or None, user_id or None, role, name,
        )
        assert row is not None  # insert ... returning always returns the row
        return row, key

    async def list_api_keys(self, org_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(q("list_api_keys"), org_id)

    async def revoke_api_key(self, org_id: int, ref: str) -> asyncpg.Record:
        prefix = credentials.key_prefix(_no_nul("api_key_id", ref)) or ""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("revoke_api_key"), org_id, ref, prefix)
            if row is None:
                raise NotFound("api key not found", field="api_key_id")
            # every server drops the key from its cache when this commits
            await notify.send(conn, notify.Topic.API_KEY, org_id, row["api_key_id"])
        return row

    async def token_secret(self) -> bytes:
        await self.pool.execute(q("put_secret"), "token_key", secrets.token_bytes(32))
        return bytes(await self.pool.fetchval(q("get_secret"), "token_key"))

    async def login(self, username: str, password: str, ttl_seconds: int = 0) -> tuple[asyncpg.Record, str, int]:
        """Returns (user, token, expiry unix seconds)."""
        ttl = ttl_seconds or 3600
        if not 0 < ttl <= MAX_TOKEN_TTL:
            raise InvalidArgument("ttl_seconds", f"between 1 and {MAX_TOKEN_TTL}")
        row = await self.pool.fetchrow(q("user_for_login"), _no_nul("username", username))
        stored = row["password_hash"] if row else await asyncio.to_thread(_dummy_hash)
        if not await asyncio.to_thread(credentials.password_matches, password, stored) or row is None:
            raise Unauthenticated("wrong username or password")
        token, expires = credentials.sign_token(
            await self.token_secret(), {"o": row["org_id"], "u": row["user_id"], "r": row["role"]}, ttl
        )
        return row, token, expires
