"""Secrets at rest: API keys (random, shown once, stored as a hash, found by
prefix), passwords (salted scrypt) and signed, expiring login tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX_LEN = 12  # "mk_" + 9 random characters: unique, shown in listings
TOKEN_PREFIX = "mlt."
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def random_text(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_api_key() -> tuple[str, str, bytes]:
    """Returns (plaintext key, lookup prefix, hash to store)."""
    key = "mk_" + random_text(9) + "_" + random_text(32)
    return key, key[:KEY_PREFIX_LEN], hash_key(key)


def hash_key(key: str) -> bytes:
    # Keys carry ~240 random bits, so one SHA-256 is enough (no brute force to slow down).
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str | None:
    if not key.startswith("mk_") or len(key) != KEY_PREFIX_LEN + 33:
        return None
    return key[:KEY_PREFIX_LEN]


def key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def sign_token(secret: bytes, claims: dict[str, object], ttl_seconds: int) -> tuple[str, int]:
    expires = int(time.time()) + ttl_seconds
    body = _b64(json.dumps({**claims, "exp": expires}, separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}{body}.{_b64(_mac(secret, body))}", expires


def verify_token(secret: bytes, token: str) -> dict[str, object] | None:
    """The token's claims, or None when it is malformed, forged or expired."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    body, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(secret, body)):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        return None
    return claims


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
