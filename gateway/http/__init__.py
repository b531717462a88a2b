"""HTTP plumbing shared by every route: the gateway's error type, body and header
limits, Retry-After, request ids, fast JSON responses, and the openapi document.
Imports nothing of the gateway."""
