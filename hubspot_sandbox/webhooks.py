"""HubSpot's ``contact.deletion`` webhook, signed with signature v3, delivered in the background.

``sign``/``verify`` are shared with the product's webhook bridge and the tests, so the sandbox
and its receivers can never disagree on the scheme: base64(HMAC-SHA256(app secret,
method + URI + body + timestamp)). Deliveries are retried with backoff and never hold up the
API answer that caused them; a delivery still pending when the sandbox stops is lost.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from hubspot_sandbox.errors import JSON
from hubspot_sandbox.timestamps import now_ms

log = logging.getLogger(__name__)

MAX_AGE_MS = 5 * 60 * 1000
SUBSCRIPTION_ID = 4_217_001


SIGNED_AS_DECODED = re.compile("%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
"""The percent-encoded characters HubSpot decodes in the URI before it signs it, and only these
(developers.hubspot.com, "Validating requests", signature v3: ':', '/', '?', '@', '!', '$', "'",
'(', ')', '*', ',', ';'); the receiver must sign the same string."""


def sign(secret: str, method: str, uri: str, body: bytes | str, timestamp: int | str) -> str:
    """The X-HubSpot-Signature-v3 value. ``uri`` is the full URL the request was sent to."""
    raw = body if isinstance(body, bytes) else body.encode()
    signed_uri = SIGNED_AS_DECODED.sub(lambda m: chr(int(m.group(1), 16)), uri)
    message = method.upper().encode() + signed_uri.encode() + raw + str(timestamp).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    secret: str,
    method: str,
    uri: str,
    body: bytes | str,
    timestamp: int | str,
    signature: str,
    *,
    max_age_ms: int = MAX_AGE_MS,
    now: int | None = None,
) -> bool:
    """Whether a delivery is genuine and fresh (HubSpot advises rejecting ones over 5 minutes old)."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else now_ms()) - sent) > max_age_ms:
        return False
    return hmac.compare_digest(sign(secret, method, uri, body, timestamp), signature)


def _shown(url: str) -> str:
    """The URL without its query string, which may carry a receiver's own secret."""
    return url.split("?", 1)[0]


@dataclass
class DeliveryStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0

    def as_json(self) -> JSON:
        return {"attempts": self.attempts, "delivered": self.delivered, "failed": self.failed}


class WebhookSender:
    """Posts deletion events to one URL, signed with the app secret, retrying failed deliveries."""

    def __init__(
        self,
        url: str | None,
        secret: str,
        *,
        portal_id: int,
        app_id: int,
        next_event_id: Callable[[], int],
        max_attempts: int,
        backoff_s: float,
    ) -> None:
        self._url = url
        self._secret = secret
        self._portal_id = portal_id
        self._app_id = app_id
        self._next_event_id = next_event_id
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = DeliveryStats()

    def contacts_deleted(self, object_ids: list[int]) -> None:
        """Schedule one delivery carrying an event per contact (HubSpot batches events too)."""
        if not self._url or not object_ids:
            return
        occurred = now_ms()
        events = [
            {
                "eventId": self._next_event_id(),
                "subscriptionId": SUBSCRIPTION_ID,
                "portalId": self._portal_id,
                "appId": self._app_id,
                "occurredAt": occurred,
                "subscriptionType": "contact.deletion",
                "attemptNumber": 0,
                "objectId": object_id,
                "changeSource": "CRM",
                "changeFlag": "DELETED",
            }
            for object_id in object_ids
        ]
        task = asyncio.get_running_loop().create_task(self._deliver(self._url, events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, events: list[JSON]) -> None:
        delay = self._backoff_s
        for attempt in range(self._max_attempts):
            for event in events:
                event["attemptNumber"] = attempt
            self.stats.attempts += 1
            if await self._post(url, json.dumps(events).encode()):
                self.stats.delivered += 1
                return
            if attempt + 1 < self._max_attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.stats.failed += 1
        log.warning(
            "contact.deletion webhook to %s failed after %d attempts", _shown(url), self._max_attempts
        )

    async def _post(self, url: str, body: bytes) -> bool:
        timestamp = str(now_ms())
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": sign(self._secret, "POST", url, body, timestamp),
            "X-HubSpot-Signature-Version": "v3",
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("contact.deletion webhook to %s: %s", _shown(url), type(exc).__name__)
            return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
