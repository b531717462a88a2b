"""Standard Webhooks signatures (the `standardwebhooks` package): the headers of a
delivery, signed with every secret that signs now (during a rotation's overlap, the new
one and the previous one, space-separated, as the spec allows)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_BYTES = 32


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def headers(event_id: str, body: str, signing: list[str], at: dt.datetime) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(event_id, at, body) for secret in signing)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
