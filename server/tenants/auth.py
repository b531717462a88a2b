"""Turn the credentials of a call (API key, login token or master key) into a Principal.

Keys are cached by their hash. A key revoked anywhere (any process, any replica) is dropped
from every cache by the notification its revocation sends (server/storage/notify.py), so it
is refused at once. An entry is trusted for WATCHED_CACHE_SECONDS while every notification
since it was read has been heard, else only for CACHE_SECONDS: the fallback while the listener
is down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import Callable

from metering.lru import LRU
from server.core.errors import Unauthenticated
from server.core.principal import Principal
from server.storage.db import q
from server.storage.notify import Change, Listener, Topic
from server.tenants import credentials
from server.tenants.store import Tenants

DEFAULT_ORG_ID = 1  # created by the first migration: the "default" organization
CACHE_SECONDS = 5.0  # the fallback: a key revoked while notifications are not heard stops working within this
WATCHED_CACHE_SECONDS = 300.0  # while they are heard (a revocation drops the key at once)
MAX_CACHED_KEYS = 10_000


@dataclasses.dataclass(frozen=True)
class _Cached:
    principal: Principal
    read_at: float  # the clock before the key was read
    mark: int | None  # the listener's mark then (Listener.mark)


class Authenticator:
    def __init__(
        self, tenants: Tenants, master_key: str | None, *, listener: Listener | None = None,
        clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS,
        watched_ttl: float = WATCHED_CACHE_SECONDS,
    ) -> None:
        """listener: where key changes are heard (None: entries live `ttl` seconds)."""
        self.tenants = tenants
        self._master = master_key
        self._listener = listener
        self._clock = clock
        self._ttl = ttl
        self._watched_ttl = watched_ttl
        self._cache: LRU[bytes, _Cached] = LRU(MAX_CACHED_KEYS)
        self._changes = 0  # key changes heard: a read that saw one happen is not kept
        self._token_secret: bytes | None = None
        if listener is not None:
            listener.subscribe(Topic.API_KEY, self.changed)

    def forget(self) -> None:
        """Drop cached credentials (called after a revoke)."""
        self._changes += 1
        self._cache = LRU(MAX_CACHED_KEYS)

    def changed(self, change: Change) -> None:
        """A key changed (change.subject its api_key_id), or any of an organization's, or any."""
        self._changes += 1
        if change.org_id is None:
            self._cache = LRU(MAX_CACHED_KEYS)
            return
        for digest, entry in list(self._cache.items()):
            p = entry.principal
            if p.org_id == change.org_id and (not change.subject or p.api_key_id == change.subject):
                self._cache.pop(digest)

    def _fresh(self, entry: _Cached) -> bool:
        age = self._clock() - entry.read_at
        if age < self._ttl:
            return True
        return age < self._watched_ttl and self._listener is not None and self._listener.unbroken(entry.mark)

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
        if cached is not None and self._fresh(cached):
            return cached.principal
        changes, read_at = self._changes, self._clock()
        mark = self._listener.mark() if self._listener is not None else None
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
        if changes == self._changes:  # else the row may predate a change heard meanwhile: not kept
            self._cache.put(digest, _Cached(principal, read_at, mark))
        return principal
