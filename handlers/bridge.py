"""The webhook bridge: the only way live events enter Kafka.

``POST /webhooks/shopify`` takes Shopify's deliveries: the HMAC is checked over the raw body (any
configured secret, for rotation) before anything is parsed; the body is wrapped in a delivery
envelope with Shopify's headers and the bridge's receive time, and appended to its topic under its
record's key. The answer is 200 only after Kafka acknowledged the append (acks=all, idempotent
producer); if Kafka is down or slow the answer is 503 within Shopify's 5-second budget, so Shopify
retries, and a retry that duplicates an append is dropped downstream by its event id.

``POST /webhooks/hubspot`` takes HubSpot's signed ``contact.deletion`` events (signature v3,
at most 5 minutes old), looks up the deleted contact's email (HubSpot keeps archived contacts
readable), and appends them to ``hubspot.events`` for the C4 rule.

Bad input never crashes it or blocks others: bad or missing signature 401, a body over the limit
413, broken JSON 400; a Shopify topic the product does not consume (or whose body is not a full
record, like ``orders/edited``), or a body without an id, is kept in ``shopify.parking`` with the
reason (200, so Shopify does not drop the subscription).

What is stored is what Shopify sent (``schemas.rawjson``): integers beyond 64 bits are kept as
their exact digits (orjson would make them floats), and a subtree nested deeper than
``MAX_BODY_DEPTH`` is stored as null with a field problem in the envelope, so a pathological body
is stored rather than answered 500. Sizes agree end to end (R6): the body limit is derived from
``SHOPSYNC_MAX_RECORD_BYTES`` so that the envelope, the worker's forwards and a dead letter of it
all fit every topic and producer; an envelope that still comes out larger, or a record Kafka
refuses as too large, is answered 413 and logged, never acknowledged and lost later.
``GET /healthz`` is liveness; ``GET /readyz`` is 200 only while Kafka answers. Logs are JSON lines
with no secrets and no payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from pydantic import ValidationError

from handlers.hubspot_client import HubSpotClient, HubSpotError, HubSpotUnavailableError
from handlers.signatures import hubspot_verified, shopify_verified
from schemas.envelope import Delivery, HubSpotContactDeletion, encode
from schemas.rawjson import load_body
from shopsync.config import Settings
from streams.topics import TopicName, UnroutableError, ensure_topics, route, topic_name

log = logging.getLogger("shopsync.bridge")
SIMULATED_RECEIVED_AT = "X-Shopsync-Simulated-Received-At"


class KafkaAppender:
    """An idempotent acks=all producer that may start after the bridge (Kafka down at boot)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._ready_checked = 0.0
        self._ready = False

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=int(self.settings.bridge_append_timeout_s * 1000),
                    max_request_size=self.settings.kafka_message_bytes(),
                )
                try:
                    await asyncio.wait_for(producer.start(), self.settings.bridge_append_timeout_s)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def append(self, name: TopicName, key: bytes, value: bytes) -> None:
        """Append and wait for Kafka's acknowledgement (raises on failure or timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.bridge_append_timeout_s
        producer = await self._started()
        remaining = max(0.1, deadline - loop.time())
        await asyncio.wait_for(
            producer.send_and_wait(topic_name(self.settings, name), value, key=key), remaining
        )

    async def ready(self) -> bool:
        """Whether Kafka answers now (checked at most every 2 seconds)."""
        if time.monotonic() - self._ready_checked < 2.0:
            return self._ready
        self._ready_checked = time.monotonic()
        try:
            producer = await self._started()
            self._ready = bool(
                await asyncio.wait_for(
                    producer.client.force_metadata_update(), self.settings.bridge_append_timeout_s
                )
            )
        except Exception:
            self._ready = False
        return self._ready

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


def _event(kind: str, **fields: Any) -> None:
    """One structured log line (never a payload, a signature or a secret)."""
    log.info(orjson.dumps({"event": kind, **fields}).decode())


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body.extend(chunk)
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message}, status=status)


class Bridge:
    """The bridge's request handlers, bound to its settings and Kafka appender."""

    def __init__(self, settings: Settings, appender: KafkaAppender, hubspot: HubSpotClient | None) -> None:
        self.settings = settings
        self.appender = appender
        self.hubspot = hubspot
        self.simulated_now: datetime | None = None  # simulation mode only: the scenario's clock

    async def shopify(self, request: web.Request) -> web.Response:
        raw = await _read_body(request, self.settings.bridge_body_limit())
        headers = request.headers
        if not shopify_verified(self.settings.webhook_secrets(), raw, headers.get("X-Shopify-Hmac-Sha256")):
            _event(
                "shopify.rejected", reason="bad or missing signature", topic=headers.get("X-Shopify-Topic")
            )
            return _error(401, "invalid or missing X-Shopify-Hmac-Sha256")
        try:
            loaded = load_body(raw)
        except ValueError:
            return _error(400, "the body is not valid JSON")
        body = loaded.value
        topic = headers.get("X-Shopify-Topic")
        event_id = headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id")
        if not isinstance(body, dict) or not topic or not event_id:
            return _error(400, "expected a JSON object with X-Shopify-Topic and X-Shopify-Event-Id headers")
        try:
            delivery = Delivery(
                topic=topic, shop_domain=headers.get("X-Shopify-Shop-Domain", ""),
                webhook_id=headers.get("X-Shopify-Webhook-Id") or event_id, event_id=event_id,
                triggered_at=headers.get("X-Shopify-Triggered-At"),
                api_version=headers.get("X-Shopify-API-Version"), received_at=self._received_at(headers),
                body=body, problems=tuple(loaded.problems),
            )  # fmt: skip
        except ValidationError as exc:
            return _error(400, f"bad delivery headers: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
        try:
            name, key = route(topic, body)
            value = encode(delivery)
        except UnroutableError as exc:
            name, key = "shopify.parking", event_id.encode()
            value = orjson.dumps({"reason": str(exc), "delivery": delivery.model_dump(mode="json")})
        if len(value) > self.settings.max_delivery_bytes():
            _event("shopify.too_large", topic=topic, event_id=event_id, record_bytes=len(value))
            return _error(413, f"the delivery's record is {len(value)} bytes, over the limit of "
                          f"{self.settings.max_delivery_bytes()} (SHOPSYNC_MAX_RECORD_BYTES)")  # fmt: skip
        try:
            await self.appender.append(name, key, value)
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            # A topic made with a smaller max.message.bytes than this bridge's (run `shopsync
            # topics` to raise it): refused now, rather than 503s retried until Shopify gives up.
            _event("shopify.too_large", topic=topic, event_id=event_id, record_bytes=len(value),
                   error=type(exc).__name__)  # fmt: skip
            return _error(413, "Kafka refused the record as too large for its topic")
        except Exception as exc:
            _event("shopify.unavailable", topic=topic, event_id=event_id, error=type(exc).__name__)
            return _error(503, "Kafka did not acknowledge the delivery; retry later")
        _event(
            "shopify.stored", topic=topic, event_id=event_id, kafka_topic=name,
            cut_subtrees=len(loaded.problems),
        )  # fmt: skip
        return web.json_response({"status": "stored", "topic": name})

    def _received_at(self, headers: Any) -> str:
        simulated = headers.get(SIMULATED_RECEIVED_AT)
        if self.settings.simulation_mode and simulated:
            return str(simulated)  # only simulate's bridge lets a client set it
        return datetime.now(UTC).isoformat()

    async def hubspot_webhook(self, request: web.Request) -> web.Response:
        raw = await _read_body(request, self.settings.bridge_body_limit())
        uri = self._public_uri(request)
        secret = self.settings.hubspot_app_secret.get_secret_value().encode()
        if not hubspot_verified(
            secret, request.method, uri, raw,
            request.headers.get("X-HubSpot-Request-Timestamp"), request.headers.get("X-HubSpot-Signature-v3"),
        ):  # fmt: skip
            _event("hubspot.rejected", reason="bad, missing or stale signature")
            return _error(401, "invalid, missing or stale X-HubSpot-Signature-v3")
        try:
            events = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(events, list):
            return _error(400, "expected a JSON array of events")
        stored = 0
        for event in events:
            if not isinstance(event, dict) or event.get("subscriptionType") != "contact.deletion":
                continue
            try:
                object_id = int(event["objectId"])
                record = HubSpotContactDeletion(
                    event_id=str(event.get("eventId", f"{object_id}-{event.get('occurredAt')}")),
                    object_id=object_id,
                    email=await self._email_of(object_id),
                    occurred_at=self.simulated_now
                    if self.settings.simulation_mode and self.simulated_now is not None
                    else datetime.fromtimestamp(int(event["occurredAt"]) / 1000, UTC),
                )
            except (KeyError, TypeError, ValueError) as exc:
                return _error(400, f"malformed contact.deletion event: {exc}")
            try:
                await self.appender.append("hubspot.events", str(object_id).encode(), encode(record))
            except Exception as exc:
                _event("hubspot.unavailable", error=type(exc).__name__)
                return _error(503, "Kafka did not acknowledge the event; retry later")
            stored += 1
        _event("hubspot.stored", events=stored)
        return web.json_response({"status": "stored", "events": stored})

    def _public_uri(self, request: web.Request) -> str:
        base = self.settings.bridge_public_url.rstrip("/")
        return f"{base}{request.path_qs}" if base else str(request.url)

    async def _email_of(self, object_id: int) -> str | None:
        """The deleted contact's email: HubSpot keeps archived contacts readable (not GDPR ones)."""
        if self.hubspot is None:
            return None
        try:
            status, body = await self.hubspot.call(
                "GET", f"/crm/v3/objects/contacts/{object_id}?archived=true&properties=email"
            )
        except (HubSpotError, HubSpotUnavailableError):
            return None
        email = (body.get("properties") or {}).get("email") if status == 200 else None
        return str(email) if email else None

    async def simulation_clock(self, request: web.Request) -> web.Response:
        """Simulation mode only: the scenario's current instant, given to HubSpot's events (the
        sandbox that sends them runs on the wall clock)."""
        self.simulated_now = datetime.fromisoformat((await request.json())["at"])
        return web.json_response({"at": self.simulated_now.isoformat()})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        if await self.appender.ready():
            return web.json_response({"status": "ready"})
        return _error(503, "Kafka does not answer")


def build_app(settings: Settings) -> web.Application:
    """The bridge as an aiohttp application (the caller runs it)."""
    appender = KafkaAppender(settings)
    token = settings.hubspot_token.get_secret_value()
    hubspot = HubSpotClient(settings.hubspot_base_url, token, timeout_s=2.0) if token else None
    bridge = Bridge(settings, appender, hubspot)
    app = web.Application(client_max_size=settings.bridge_body_limit() + 1)
    app.add_routes(
        [
            web.post("/webhooks/shopify", bridge.shopify),
            web.post("/webhooks/hubspot", bridge.hubspot_webhook),
            web.get("/healthz", bridge.healthz),
            web.get("/readyz", bridge.readyz),
        ]
    )

    async def close(_: web.Application) -> None:
        await appender.close()
        if hubspot is not None:
            await hubspot.close()

    if settings.simulation_mode:
        app.add_routes([web.post("/_simulation/clock", bridge.simulation_clock)])
    app.on_cleanup.append(close)
    return app


def run_bridge(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``shutdown_timeout`` to finish."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s")
    with contextlib.suppress(Exception):  # topics are created by `shopsync topics` too; Kafka may be down
        asyncio.run(ensure_topics(settings, timeout_s=5))
    web.run_app(
        build_app(settings), host=settings.bridge_host, port=settings.bridge_port, shutdown_timeout=10,
        access_log=None, print=None,
    )  # fmt: skip
