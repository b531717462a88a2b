"""HTTP plumbing shared by every route: the gateway's error type and the decorator that
renders it, body and header limits, Retry-After, request ids, JSON in (request bodies) and
out (fast, exact responses), and the openapi document. Imports nothing of the gateway."""
