import logging
import re

import pytest

from gateway.app import create_app, timeout_from_env
from tests.conftest import asgi_lifespan


async def test_request_id_is_echoed_or_made_up(http):
    given = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await http.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    junk = await http.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert junk.headers["x-request-id"] != "bad id\twith spaces"
    missing = await http.get("/nowhere", headers={"X-Request-Id": "on-errors-too"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "on-errors-too"


async def test_request_id_and_credentials_reach_the_server(http, new_tenant, caplog):
    t = await new_tenant()
    caplog.set_level(logging.INFO, logger="metering.access")
    reply = await http.get("/v1/whoami", headers={**t.member.headers, "X-Request-Id": "trace-me-42"})
    assert reply.status_code == 200 and reply.json()["user_id"] == t.member.user_id
    assert any("WhoAmI" in r.getMessage() and "request_id=trace-me-42" in r.getMessage() for r in caplog.records)


async def test_healthz(http):
    reply = await http.get("/healthz")
    assert reply.status_code == 200 and reply.json() == {"status": "SERVING"}


async def test_body_limit_is_413_in_each_dialect(gateway_client, new_tenant):
    t = await new_tenant()
    big = {"kind": "completions", "model": "x" * 2048}
    async with gateway_client(max_body_size=1024) as small:
        native = await small.post("/v1/events", json=big, headers=t.admin.headers)
        assert native.status_code == 413 and native.json()["code"] == 8
        usage = await small.post("/usage", json={"api_name": "x" * 2048}, headers=t.admin.headers)
        assert usage.status_code == 413 and set(usage.json()) == {"detail"}
        fits = await small.post("/v1/events", json={"kind": "completions"}, headers=t.admin.headers)
        assert fits.status_code == 200

        async def chunks():  # no Content-Length: counted as it arrives
            yield b'{"kind": "completions", "model": "'
            for _ in range(4):
                yield b"x" * 512
            yield b'"}'

        streamed = await small.post("/v1/events", content=chunks(), headers=t.admin.headers)
        assert streamed.status_code == 413 and streamed.json()["code"] == 8


async def test_deadline_exceeded_is_504(gateway_client, new_tenant):
    t = await new_tenant()
    async with gateway_client(timeout=0.000001) as hasty:
        reply = await hasty.get("/v1/events", headers=t.admin.headers)
        assert reply.status_code == 504 and reply.json()["code"] == 4


async def test_grpc_timeout_header(http, new_tenant):
    t = await new_tenant()
    tiny = await http.get("/v1/events", headers={**t.admin.headers, "Grpc-Timeout": "1n"})
    assert tiny.status_code == 504
    fine = await http.get("/v1/events", headers={**t.admin.headers, "Grpc-Timeout": "10S"})
    assert fine.status_code == 200
    bad = await http.get("/v1/events", headers={**t.admin.headers, "Grpc-Timeout": "soon"})
    assert bad.status_code == 400 and bad.json()["code"] == 3


async def test_unreachable_server_is_503():
    import httpx

    app = create_app("127.0.0.1:1", timeout=5)
    async with asgi_lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        native = await c.get("/v1/events", headers={"Authorization": "Bearer x"})
        assert native.status_code == 503 and native.json()["code"] == 14
        usage = await c.get("/usage", headers={"Authorization": "Bearer x"})
        assert usage.status_code == 503 and set(usage.json()) == {"detail"}
        health = await c.get("/healthz")
        assert health.status_code == 503


def test_timeout_setting_is_checked(monkeypatch):
    monkeypatch.setenv("METERING_GATEWAY_TIMEOUT", "2.5")
    assert timeout_from_env() == 2.5
    monkeypatch.setenv("METERING_GATEWAY_TIMEOUT", "never")
    with pytest.raises(ValueError, match="METERING_GATEWAY_TIMEOUT"):
        create_app("x:1")
