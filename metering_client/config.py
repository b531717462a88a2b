"""Where to connect and as whom: arguments, then a config object or dict, then the environment.

Read when a client is built, never at import time. The API key never appears in a repr.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_TARGET = "METERING_TARGET"
ENV_API_KEY = "METERING_API_KEY"
ENV_CLIENT_ID = "METERING_CLIENT_ID"
ENV_TLS = "METERING_TLS"
ENV_ROOT_CERTS = "METERING_ROOT_CERTS"
DEFAULT_TARGET = "127.0.0.1:50051"
# gRPC's name resolvers (targets such as "dns:///metering.internal:50051"; "ipv4:10.0.0.1:50051,10.0.0.2:50051"
# names several servers and has no "://"), as opposed to the URL schemes resolve() reads TLS from.
GRPC_SCHEMES = ("dns", "unix", "unix-abstract", "ipv4", "ipv6")
# Names read from a seed-style config object or dict (first one present wins).
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "target": ("metering_target", "target"),
    "api_key": ("metering_api_key", "api_key"),
    "client_id": ("client_id",),
    "tls": ("tls",),
    "root_certificates": ("root_certificates",),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    target: str
    api_key: str = dataclasses.field(repr=False)
    tls: bool = False
    root_certificates: bytes | None = dataclasses.field(default=None, repr=False)
    client_id: str | None = None


def from_config(config: Any) -> dict[str, Any]:
    """The connection settings a seed-style `config` carries: a dict, or any object with attributes
    (`target`, `api_key`, `client_id`, `tls`, `root_certificates`; see CONFIG_KEYS for aliases)."""
    if config is None:
        return {}
    found: dict[str, Any] = {}
    for name, keys in CONFIG_KEYS.items():
        for key in keys:
            if isinstance(config, Mapping):
                value = config.get(key)
            else:
                value = getattr(config, key, None)
            if value is not None:
                if hasattr(value, "get_secret_value"):  # pydantic SecretStr
                    value = value.get_secret_value()
                found[name] = value
                break
    if not found:
        raise TypeError(
            f"config {type(config).__name__} carries none of target, api_key, client_id "
            "(pass a dict or an object with those attributes)"
        )
    return found


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _certs(value: bytes | str | os.PathLike[str] | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    text = os.fspath(value)
    if "-----BEGIN" in text:
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as exc:
        raise ValueError(f"root_certificates: cannot read {text!r}: {exc.strerror}") from None


def resolve(
    *,
    target: str | None = None,
    api_key: str | None = None,
    tls: bool | None = None,
    root_certificates: bytes | str | os.PathLike[str] | None = None,
    client_id: str | None = None,
    config: Any = None,
) -> Settings:
    """Explicit arguments win over `config`, which wins over METERING_* environment variables."""
    given = from_config(config)
    target = target or given.get("target") or os.environ.get(ENV_TARGET) or DEFAULT_TARGET
    api_key = api_key or given.get("api_key") or os.environ.get(ENV_API_KEY)
    if not api_key:
        raise ValueError(f"no API key: pass api_key=... or set {ENV_API_KEY}")
    certs = _certs(root_certificates or given.get("root_certificates") or os.environ.get(ENV_ROOT_CERTS) or None)
    if tls is None:
        tls = given.get("tls")
    if tls is None:
        tls = _truthy(os.environ.get(ENV_TLS, "")) or certs is not None
    scheme, sep, rest = str(target).partition("://")
    if sep and scheme in GRPC_SCHEMES:  # gRPC's own target syntax ("dns:///host:50051"), passed on whole
        sep = ""
    if sep:  # "https://host:443" -> TLS, "http://host:50051" -> plaintext
        if scheme not in ("http", "https", "grpc", "grpcs"):
            raise ValueError(f"target: unknown scheme {scheme!r}")
        tls = tls or scheme in ("https", "grpcs")
        target = rest.rstrip("/")
        if ":" not in target:
            target += ":443" if tls else ":80"
    client_id = client_id or given.get("client_id") or os.environ.get(ENV_CLIENT_ID) or None
    return Settings(target=str(target), api_key=str(api_key), tls=bool(tls), root_certificates=certs,
                    client_id=client_id)
