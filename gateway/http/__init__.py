"""HTTP plumbing shared by every route: the gateway's error type and the decorator that
renders it, body and header limits, Retry-After, request ids, JSON in (request bodies) and
out (fast, exact responses), the openapi document, and what a slow or idle client may hold of the
HTTP server (connections: read deadlines, connection cap). Imports nothing of the gateway."""
