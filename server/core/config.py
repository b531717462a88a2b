"""Settings, read from the environment by a function (never at import time)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str | None  # None: embedded Postgres under data_dir
    redis_url: str | None  # None: embedded Redis under data_dir
    grpc_addr: str
    http_addr: str
    master_key: str | None = dataclasses.field(repr=False)
    data_dir: pathlib.Path
    log_level: str
    pool_size: int
    server_processes: int = 1  # gRPC server processes sharing grpc_addr (SO_REUSEPORT)

    def __repr__(self) -> str:  # DSNs may hold passwords: never show them
        return (
            f"Settings(grpc_addr={self.grpc_addr!r}, http_addr={self.http_addr!r}, "
            f"data_dir={str(self.data_dir)!r}, database={'set' if self.database_url else 'embedded'}, "
            f"redis={'set' if self.redis_url else 'embedded'})"
        )


def default_data_dir(env: Mapping[str, str]) -> pathlib.Path:
    if env.get("METERING_DATA_DIR"):
        return pathlib.Path(env["METERING_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(pathlib.Path.home() / ".local" / "share")
    return pathlib.Path(base) / "metering"


def _addr(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{name} must look like HOST:PORT, got {value!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    master = env.get("METERING_MASTER_KEY") or None
    if master is not None and len(master) < 16:
        raise ConfigError("METERING_MASTER_KEY must be at least 16 characters")
    level = (env.get("METERING_LOG_LEVEL") or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"METERING_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return Settings(
        database_url=env.get("METERING_DATABASE_URL") or None,
        redis_url=env.get("METERING_REDIS_URL") or None,
        grpc_addr=_addr(env, "METERING_GRPC_ADDR", "127.0.0.1:50051"),
        http_addr=_addr(env, "METERING_HTTP_ADDR", "127.0.0.1:8000"),
        master_key=master,
        data_dir=default_data_dir(env),
        log_level=level,
        pool_size=_int(env, "METERING_DB_POOL_SIZE", 10, 2, 200),
        server_processes=_int(env, "METERING_SERVER_PROCESSES", 1, 1, 64),
    )
