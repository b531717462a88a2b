"""TLS: the SDK talks to a TLS endpoint with given root certificates (a self-signed CA for localhost)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import grpc
import pytest

from metering.v1 import ingest_pb2
from metering_client import MeteringClient, Outcome
from server.api.interceptors import ServerInterceptor
from server.api.wire import add_service
from tests.metering_client.conftest import event_counts

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


async def test_record_over_tls(server, new_org, db, tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )
    cert, key = (tmp_path / "cert.pem").read_bytes(), (tmp_path / "key.pem").read_bytes()
    tls_server = grpc.aio.server(interceptors=[ServerInterceptor()])
    service = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"]
    add_service(tls_server, service, server.ingest)  # the real ingest path
    port = tls_server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key, cert)]))
    await tls_server.start()
    org = await new_org()
    try:
        def run() -> Outcome:
            with MeteringClient(f"localhost:{port}", org.admin_key, root_certificates=cert) as client:
                assert client.settings.tls
                return client.record(kind="completions", input_tokens=1).result(timeout=10).outcome

        assert await asyncio.to_thread(run) is Outcome.RECORDED
    finally:
        await tls_server.stop(0)
    assert await event_counts(db, org.organization_id) == (1, 1)
