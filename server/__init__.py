"""The metering core and its gRPC services."""
