"""The REST gateway: a Starlette app that talks to the server only over gRPC."""
