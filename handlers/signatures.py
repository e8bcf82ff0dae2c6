"""Webhook signatures: Shopify's HMAC over the raw body, HubSpot's v3 over method, URI, body, time.

Both are checked on the raw bytes before anything is parsed, and compared in constant time.

HubSpot's v3, step by step as its "Validating requests" page documents it
(developers.hubspot.com/docs/api/webhooks/validating-requests, "Validate the v3 request signature"):
reject a timestamp older than 5 minutes; in the request URI, decode the URL-encoded characters of
its table (``HUBSPOT_DECODED``, nothing else: ``%20`` or ``%26`` stay as they are); concatenate
method + URI + body + timestamp as UTF-8; HMAC-SHA256 it with the app's client secret; base64 the
digest; compare in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000

HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
"""The page's table, in its order: each encoded value and what it decodes to."""
_ENCODED = re.compile("|".join(HUBSPOT_DECODED), re.IGNORECASE)  # hex digits are case-blind (RFC 3986, 2.1)


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


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the table's characters decoded, one pass, all else as sent
    (so ``%253A``, an encoded ``%``, stays ``%253A``)."""
    return _ENCODED.sub(lambda m: HUBSPOT_DECODED[m.group(0).upper()], uri)


def hubspot_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3``: base64 HMAC-SHA256 over method + decoded URI + body + timestamp."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def hubspot_verified(
    secret: bytes, method: str, uri: str, body: bytes, timestamp: str | None, signature: str | None,
    now_ms: int | None = None,
) -> bool:  # fmt: skip
    """A genuine HubSpot delivery, signed at most 5 minutes ago (the page: "Reject the request if
    the timestamp is older than 5 minutes"; one more than 5 minutes ahead is refused too)."""
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
