"""Where to connect: arguments, then a seed-style config, then the environment."""

from __future__ import annotations

import types

import pytest

from metering_client.config import resolve


def test_arguments_config_and_environment(monkeypatch):
    monkeypatch.setenv("METERING_TARGET", "env:1")
    monkeypatch.setenv("METERING_API_KEY", "env-key")
    assert (resolve().target, resolve().api_key, resolve().tls) == ("env:1", "env-key", False)
    cfg = {"target": "cfg:2", "api_key": "cfg-key", "client_id": "app"}
    assert (resolve(config=cfg).target, resolve(config=cfg).client_id) == ("cfg:2", "app")
    obj = types.SimpleNamespace(api_key="obj-key", client_id="obj-app")
    assert (resolve(config=obj).target, resolve(config=obj).api_key) == ("env:1", "obj-key")
    assert resolve(target="arg:3", config=cfg).target == "arg:3"


def test_seed_style_config_objects():
    from pydantic import BaseModel, SecretStr

    class Request(BaseModel):  # e.g. a config that also holds a model provider's key
        api_key: SecretStr
        metering_api_key: SecretStr
        metering_target: str
        client_id: str

    cfg = Request(api_key=SecretStr("sk-provider"), metering_api_key=SecretStr("mk_metering"), metering_target="m:1",
                  client_id="app")
    settings = resolve(config=cfg)
    assert (settings.api_key, settings.target, settings.client_id) == ("mk_metering", "m:1", "app")


def test_defaults_and_errors(monkeypatch):
    monkeypatch.delenv("METERING_API_KEY", raising=False)
    monkeypatch.delenv("METERING_TARGET", raising=False)
    with pytest.raises(ValueError, match="METERING_API_KEY"):
        resolve()
    assert resolve(api_key="k").target == "127.0.0.1:50051"
    with pytest.raises(TypeError, match="carries none"):
        resolve(api_key="k", config=object())
    assert "secret" not in repr(resolve(api_key="secret"))


def test_grpc_targets_naming_several_servers_pass_through_whole():
    """gRPC's own syntax (docs/scaling.md#replicas): the channel resolves it and balances round robin."""
    for target in ("ipv4:10.0.0.1:50051,10.0.0.2:50051", "dns:///metering.internal:50051", "unix:///run/m.sock"):
        settings = resolve(api_key="k", target=target)
        assert (settings.target, settings.tls) == (target, False)
    with pytest.raises(ValueError, match="unknown scheme 'ftp'"):
        resolve(api_key="k", target="ftp://metering.example.com")


def test_tls(monkeypatch, tmp_path):
    assert resolve(api_key="k", target="https://metering.example.com").target == "metering.example.com:443"
    assert resolve(api_key="k", target="https://metering.example.com").tls
    assert not resolve(api_key="k", target="http://h:8080").tls
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n")
    settings = resolve(api_key="k", root_certificates=str(pem))
    assert settings.tls and settings.root_certificates == pem.read_bytes()
    monkeypatch.setenv("METERING_TLS", "1")
    assert resolve(api_key="k").tls
    with pytest.raises(ValueError, match="cannot read"):
        resolve(api_key="k", root_certificates=str(tmp_path / "missing.pem"))
