"""Webhook signatures: Shopify's HMAC over the raw body, HubSpot's v3 over method, URI, body, time.

Both are checked on the raw bytes before anything is parsed, and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000


def shopify_hmac(secret: bytes, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of HMAC-SHA256 over the raw body, keyed by the app secret."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def shopify_verified(secrets: list[bytes], body: bytes, header: str | None) -> bool:
    """True when ``header`` is the body's HMAC under any configured secret (secret rotation)."""
    if not header or not secrets:
        return False
    ok = False
    for secret in secrets:  # no early exit: the time taken does not reveal which secret matched
        ok |= hmac.compare_digest(shopify_hmac(secret, body), header.strip())
    return ok


def hubspot_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3``: base64 HMAC-SHA256 over method + URI + body + timestamp."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def hubspot_verified(
    secret: bytes, method: str, uri: str, body: bytes, timestamp: str | None, signature: str | None,
    now_ms: int | None = None,
) -> bool:  # fmt: skip
    """A genuine HubSpot delivery, signed less than 5 minutes ago (HubSpot's own advice)."""
    if not secret or not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - sent) > HUBSPOT_MAX_AGE_MS:
        return False
    return hmac.compare_digest(hubspot_v3(secret, method, uri, body, timestamp), signature)
