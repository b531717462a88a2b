"""Turn the credentials of a call (API key, login token or master key) into a Principal."""

from __future__ import annotations

import hashlib
import hmac
import time

from server.core.errors import Unauthenticated
from server.core.principal import Principal
from server.storage.db import q
from server.tenants import credentials
from server.tenants.store import Tenants

DEFAULT_ORG_ID = 1  # created by the first migration: the "default" organization
CACHE_SECONDS = 5.0  # a key revoked on another replica stops working within this


class Authenticator:
    def __init__(self, tenants: Tenants, master_key: str | None) -> None:
        self.tenants = tenants
        self._master = master_key
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._token_secret: bytes | None = None

    def forget(self) -> None:
        """Drop cached credentials (called after a revoke)."""
        self._cache.clear()

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing credentials: send 'authorization: Bearer <key>'")
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("malformed authorization: expected 'Bearer <key>'")
        return await self.principal_for(secret.strip())

    async def principal_for(self, secret: str) -> Principal:
        if self._master is not None and hmac.compare_digest(secret.encode(), self._master.encode()):
            org = await self.tenants.organization_by_number(DEFAULT_ORG_ID)
            return Principal(org_id=org["org_id"], organization_id=org["id"], role="admin", master=True)
        if secret.startswith(credentials.TOKEN_PREFIX):
            return await self._from_token(secret)
        return await self._from_key(secret)

    async def _from_token(self, token: str) -> Principal:
        if self._token_secret is None:
            self._token_secret = await self.tenants.token_secret()
        claims = credentials.verify_token(self._token_secret, token)
        if claims is None:
            raise Unauthenticated("invalid or expired token")
        org_id, user_id, role = claims.get("o"), claims.get("u"), claims.get("r")
        if not isinstance(org_id, int) or not isinstance(user_id, str) or role not in ("admin", "member"):
            raise Unauthenticated("invalid token")
        org = await self.tenants.organization_by_number(org_id)
        return Principal(org_id=org_id, organization_id=org["id"], role=str(role), user_id=user_id)

    async def _from_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).digest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        prefix = credentials.key_prefix(key)
        row = await self.tenants.pool.fetchrow(q("key_by_prefix"), prefix) if prefix else None
        if row is None or not credentials.key_matches(key, bytes(row["secret_hash"])):
            raise Unauthenticated("invalid API key")
        if row["revoke_time"] is not None:
            raise Unauthenticated("API key revoked")
        principal = Principal(
            org_id=row["org_id"], organization_id=row["organization_id"], role=row["role"],
            user_id=row["user_id"], project_id=row["project_id"], api_key_id=row["api_key_id"],
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + CACHE_SECONDS, principal)
        return principal
