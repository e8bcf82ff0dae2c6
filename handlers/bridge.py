"""The webhook bridge: the only way live events enter Kafka.

``POST /webhooks/shopify`` takes Shopify's deliveries: the HMAC is checked over the raw body (any
configured secret, for rotation) before anything is parsed; the body is wrapped in a delivery
envelope with Shopify's headers and the bridge's receive time, and appended to its topic under its
record's key. The answer is 200 only after Kafka acknowledged the append (acks=all, idempotent
producer); if Kafka cannot take it within ``SHOPSYNC_BRIDGE_APPEND_TIMEOUT_S`` the answer is 503
within Shopify's 5-second budget, so Shopify retries, and a retry that duplicates an append is
dropped downstream by its event id. The producer heals itself (``handlers.appender``): one that
a broker restart or a fatal idempotence error left unusable is rebuilt and the append retried
within the same budget, without restarting the bridge.

``POST /webhooks/hubspot`` takes HubSpot's signed contact deletions (signature v3, at most 5
minutes old: ``contact.deletion``, ``contact.privacyDeletion``, and ``object.deletion`` of a
contact) and appends each to ``hubspot.events`` under the contact's HubSpot id, without calling
HubSpot (R5): the worker resolves the email from the writer's id map.

Bad input never crashes it or blocks others: bad or missing signature 401, a body over the limit
413, broken JSON 400; a Shopify topic the product does not consume (or whose body is not a full
record, like ``orders/edited``), or a body without an id, is kept in ``shopify.parking`` with the
reason (200, so Shopify does not drop the subscription).

Shopify's compliance webhooks (``customers/data_request``, ``customers/redact``, ``shop/redact``;
SPEC G1) are signed and checked like every topic (a bad HMAC is 401, as Shopify's "Privacy law
compliance" page requires) and appended to ``shopify.compliance`` keyed by shop, as a
``schemas.compliance.ComplianceRequest``: the ids, and the customer's email and phone as
pseudonyms only (``streams.privacy``), never the body as sent.

With ``SHOPSYNC_SEAL_PERSONAL_DATA`` on (G1, ``handlers.sealer``), a delivery's personal values
are sealed under its customer's key after the HMAC check (over the bytes as sent) and before the
append; the key of a new subject is acknowledged on ``privacy.keys`` first (503 if it cannot be).

What is stored is what Shopify sent (``schemas.rawjson``): integers beyond 64 bits are kept as
their exact digits (orjson would make them floats), and a subtree nested deeper than
``MAX_BODY_DEPTH`` is stored as null with a field problem in the envelope, so a pathological body
is stored rather than answered 500. Sizes agree end to end (R6): the body limit is derived from
``SHOPSYNC_MAX_RECORD_BYTES`` so that the envelope, the worker's forwards and a dead letter of it
all fit every topic and producer; an envelope that still comes out larger, or a record Kafka
refuses as too large, is answered 413 and logged, never acknowledged and lost later.
``GET /healthz`` is liveness; ``GET /readyz`` is 200 only while an append to every topic the bridge
writes can succeed (a metadata probe, cached 1.5 s; see ``handlers.appender``). Logs are JSON
lines with no secrets and no payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from config import Settings
from config.logs import configure_logging
from handlers import bridge_metrics, dashboard
from handlers.appender import SIZE_ERRORS, KafkaAppender
from handlers.sealer import sealer_for
from handlers.signatures import hubspot_verified, shopify_verified
from schemas.envelope import Delivery, HubSpotContactDeletion, encode
from schemas.rawjson import load_body
from streams.metrics import metrics_page
from streams.privacy import compliance_key, compliance_request, is_compliance_topic
from streams.topics import TopicName, UnroutableError, ensure_topics, route

log = logging.getLogger("shopsync.bridge")
SIMULATED_RECEIVED_AT = "X-Shopsync-Simulated-Received-At"


def _event(kind: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured log line (never a payload, a signature or a secret)."""
    log.log(level, orjson.dumps({"event": kind, **fields}).decode())


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body.extend(chunk)
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


_ENVELOPE_FIELDS = tuple(Delivery.model_fields)


def encode_delivery(delivery: Delivery) -> bytes:
    """``schemas.envelope.encode(delivery)``, byte for byte, at a fraction of the cost: pydantic
    dumps the envelope's headers, and the body (KBs of JSON already in JSON's own types, as
    ``load_body`` gave it) goes to orjson as it is, instead of through pydantic's walk of every
    value, which was the bridge's largest cost of its own per delivery."""
    head = delivery.model_dump(mode="json", exclude={"body"})
    return orjson.dumps({name: delivery.body if name == "body" else head[name] for name in _ENVELOPE_FIELDS})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message}, status=status)


CONTACT_OBJECT_TYPE_ID = "0-1"


def contact_deletion_privacy(event: object) -> bool | None:
    """Whether a HubSpot webhook event deletes a contact permanently (GDPR: True), deletes one
    (False), or is no contact deletion (None). HubSpot's legacy subscriptions send
    ``contact.deletion`` and, for a GDPR deletion, ``contact.privacyDeletion`` as well; the
    generic ones send ``object.deletion`` with ``objectTypeId`` "0-1" for contacts."""
    if not isinstance(event, dict):
        return None
    kind = event.get("subscriptionType")
    if kind == "contact.deletion":
        return False
    if kind == "contact.privacyDeletion":
        return True
    if kind == "object.deletion" and str(event.get("objectTypeId")) == CONTACT_OBJECT_TYPE_ID:
        return False
    return None


def _positive_int(value: object) -> int:
    """An id or epoch-milliseconds as HubSpot sends it: a JSON integer, or integer text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("not an integer")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("not integer text")
    number = int(value)
    if number <= 0:
        raise ValueError("not a positive integer")
    return number


@dataclass
class ShopWatch:
    """X3: notices a deployment taking several shops' deliveries with no primary shop, where shops
    are not told apart (one app's secret signs every shop's webhooks, and ``SHOPSYNC_PRIMARY_SHOP``
    is unset), so records of two shops with the same ids would merge. ``seen`` answers the first
    shop when a shop other than it signs a delivery for the first time (once per shop)."""

    primary: str | None
    shops: set[str] = field(default_factory=set)
    first: str | None = None

    def seen(self, shop: str) -> str | None:
        if self.primary is not None or not shop or shop in self.shops:
            return None
        self.shops.add(shop)
        if self.first is None:
            self.first = shop
            return None
        return self.first


class SealError(Exception):
    """Sealing a delivery failed (its key could not be made or acknowledged): answered 503."""


class Bridge:
    """The bridge's request handlers, bound to its settings and Kafka appender."""

    def __init__(self, settings: Settings, appender: KafkaAppender) -> None:
        self.settings = settings
        self.appender = appender
        self.simulated_now: datetime | None = None  # simulation mode only: the scenario's clock
        self.key_prefix = settings.rule_config().key_prefix  # X3: a shop's Kafka keys
        self.shops = ShopWatch(settings.rule_config().primary_shop)
        # G1: None unless SHOPSYNC_SEAL_PERSONAL_DATA. A key's append waits as long as a
        # delivery's (the appender's producer has the same request timeout): no request waits
        # longer, so an outage meets both producers alike, and both are rebuilt after one.
        self.sealer = sealer_for(settings, follow=True, request_timeout_s=settings.bridge_append_timeout_s)

    async def shopify(self, request: web.Request) -> web.Response:
        raw = await _read_body(request, self.settings.bridge_body_limit())
        headers = request.headers
        shop = headers.get("X-Shopify-Shop-Domain", "").strip().lower()
        secrets = self.settings.webhook_secrets(shop)
        if not secrets:  # several shops configured, each with its own secret, and not this one
            _event(
                "shopify.rejected",
                reason="no secret for this shop",
                shop=shop,
                topic=headers.get("X-Shopify-Topic"),
            )
            return _error(401, "no secret is configured for this X-Shopify-Shop-Domain")
        if not shopify_verified(secrets, raw, headers.get("X-Shopify-Hmac-Sha256")):
            _event(
                "shopify.rejected", reason="bad or missing signature", topic=headers.get("X-Shopify-Topic")
            )
            return _error(401, "invalid or missing X-Shopify-Hmac-Sha256")
        if (first := self.shops.seen(shop)) is not None:
            _event(
                "shopify.several_shops_without_primary", level=logging.WARNING, shop=shop, first_shop=first,
                hint="set SHOPSYNC_PRIMARY_SHOP to the shop synced so far, so that shops are told apart",
            )  # fmt: skip
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
            if is_compliance_topic(topic):  # G1: kept pseudonymised, never as sent
                request_record = compliance_request(delivery, self.settings.privacy_key())
                name: TopicName = "shopify.compliance"
                key = compliance_key(request_record)
                value = encode(request_record)
            else:
                name, key = route(topic, body, self.key_prefix(delivery.shop_domain))
                value = encode_delivery(await self._sealed(delivery, parked=False))
        except UnroutableError as exc:
            name, key = "shopify.parking", event_id.encode()
            try:
                parked = await self._sealed(delivery, parked=True)
            except Exception as seal_exc:
                return self._unsealed(topic, event_id, seal_exc)
            value = orjson.dumps({"reason": str(exc), "delivery": parked.model_dump(mode="json")})
        except SealError as exc:
            return self._unsealed(topic, event_id, exc.__cause__ or exc)
        if len(value) > self.settings.max_delivery_bytes():
            _event("shopify.too_large", topic=topic, event_id=event_id, record_bytes=len(value))
            return _error(413, f"the delivery's record is {len(value)} bytes, over the limit of "
                          f"{self.settings.max_delivery_bytes()} (SHOPSYNC_MAX_RECORD_BYTES)")  # fmt: skip
        try:
            await self.appender.append(name, key, value)
        except SIZE_ERRORS as exc:
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
        if topic in ("customers/redact", "shop/redact") and self.sealer is None:
            # G1: stored, and `shopsync compliance redact` shreds the keys it names; but with
            # sealing off nothing was sealed under them, so the customer stays readable
            _event(
                "compliance.redact_not_applied", logging.WARNING, topic=topic, event_id=event_id,
                shop=delivery.shop_domain, due_within_days=30,
                hint="personal data is not sealed here (SHOPSYNC_SEAL_PERSONAL_DATA off), so no "
                "redaction can erase it (README, Privacy (G1))",
            )  # fmt: skip
        return web.json_response({"status": "stored", "topic": name})

    async def _sealed(self, delivery: Delivery, parked: bool) -> Delivery:
        """G1: the delivery with its personal values sealed under its customer's key (whose key
        record is acknowledged by Kafka first), within the append budget; as it is when sealing
        is off. The HMAC was checked over the bytes Shopify sent, before this."""
        if self.sealer is None:
            return delivery
        seal = self.sealer.seal_parked(delivery) if parked else self.sealer.seal(delivery)
        try:
            return await asyncio.wait_for(seal, self.settings.bridge_append_timeout_s)
        except Exception as exc:
            raise SealError() from exc

    def _unsealed(self, topic: str, event_id: str, exc: BaseException) -> web.Response:
        _event("shopify.unavailable", topic=topic, event_id=event_id, error=type(exc).__name__, stage="seal")
        return _error(503, "the delivery's data key was not acknowledged by Kafka; retry later")

    def _received_at(self, headers: Any) -> str:
        simulated = headers.get(SIMULATED_RECEIVED_AT)
        if self.settings.simulation_mode and simulated:
            return str(simulated)  # only simulate's bridge lets a client set it
        return datetime.now(UTC).isoformat()

    async def hubspot_webhook(self, request: web.Request) -> web.Response:
        """HubSpot's contact deletions, appended by the contact's HubSpot id alone (R5, C4).

        Nothing here calls HubSpot: HubSpot does not retry a webhook it got a 200 for, so an email
        looked up while HubSpot's API is down was a deletion lost for good. The worker resolves the
        email from the writer's id map instead. The answer is 200 only after every deletion in the
        batch was acknowledged by Kafka; 503 otherwise (HubSpot retries the batch, and the
        deletions stored meanwhile are appended again, which the worker's C4 rule absorbs). Events
        of other kinds are ignored; a deletion without a readable ``objectId`` cannot name a
        contact: the others are stored and the answer is 400.
        """
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
        deletions: list[HubSpotContactDeletion] = []
        unreadable = 0
        for event in events:
            privacy = contact_deletion_privacy(event)
            if privacy is None:
                continue
            try:
                deletions.append(self._deletion(event, privacy))
            except (KeyError, TypeError, ValueError):
                unreadable += 1
        results = await asyncio.gather(
            *(
                self.appender.append("hubspot.events", str(d.object_id).encode(), encode(d))
                for d in deletions
            ),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            _event("hubspot.unavailable", events=len(deletions), failed=len(failed),
                   error=type(failed[0]).__name__)  # fmt: skip
            return _error(503, "Kafka did not acknowledge the events; retry later")
        _event("hubspot.stored", events=len(deletions), ignored=len(events) - len(deletions) - unreadable,
               unreadable=unreadable)  # fmt: skip
        if unreadable:
            return _error(400, f"{unreadable} contact deletion event(s) without a readable objectId; "
                          f"the other {len(deletions)} are stored")  # fmt: skip
        return web.json_response({"status": "stored", "events": len(deletions)})

    def _deletion(self, event: dict[str, Any], privacy: bool) -> HubSpotContactDeletion:
        """The record for one deletion event (raises if its ``objectId`` is not a contact id)."""
        object_id = _positive_int(event["objectId"])
        occurred = event.get("occurredAt")
        if self.settings.simulation_mode and self.simulated_now is not None:
            occurred_at = self.simulated_now
        else:
            try:  # HubSpot's epoch milliseconds; if unreadable, when the bridge got it (seconds later)
                occurred_at = datetime.fromtimestamp(_positive_int(occurred) / 1000, UTC)
            except (TypeError, ValueError, OverflowError, OSError):
                occurred_at = datetime.now(UTC)
        event_id = event.get("eventId")
        fields: dict[str, Any] = {
            "event_id": str(event_id) if event_id is not None else f"{object_id}-{occurred}",
            "object_id": object_id, "privacy": privacy,
        }  # fmt: skip
        try:
            return HubSpotContactDeletion(**fields, occurred_at=occurred_at)
        except ValidationError:  # an instant the schema refuses (before 1970, after 2999)
            return HubSpotContactDeletion(**fields, occurred_at=datetime.now(UTC))

    def _public_uri(self, request: web.Request) -> str:
        """The URI HubSpot called, as sent (``raw_path``: still percent-encoded, query included);
        ``hubspot_v3`` decodes what HubSpot's page says to decode, and nothing else."""
        base = self.settings.bridge_public_url.rstrip("/") or f"{request.scheme}://{request.host}"
        return f"{base}{request.raw_path}"

    async def simulation_clock(self, request: web.Request) -> web.Response:
        """Simulation mode only: the scenario's current instant, given to HubSpot's events (the
        sandbox that sends them runs on the wall clock)."""
        self.simulated_now = datetime.fromisoformat((await request.json())["at"])
        return web.json_response({"at": self.simulated_now.isoformat()})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.sealer is not None and not self.sealer.readiness():
            return _error(503, "the data keys are still loading from the key topic")
        if await self.appender.ready():
            return web.json_response({"status": "ready"})
        return _error(503, "Kafka cannot take appends to every topic the bridge writes now")


def build_app(settings: Settings) -> web.Application:
    """The bridge as an aiohttp application (the caller runs it)."""
    appender = KafkaAppender(settings)
    bridge = Bridge(settings, appender)
    app = web.Application(
        client_max_size=settings.bridge_body_limit() + 1, middlewares=[bridge_metrics.middleware]
    )
    app.add_routes(
        [
            web.post("/webhooks/shopify", bridge.shopify),
            web.post("/webhooks/hubspot", bridge.hubspot_webhook),
            web.get("/healthz", bridge.healthz),
            web.get("/readyz", bridge.readyz),
            web.get("/metrics", metrics_page),
        ]
    )

    async def close(_: web.Application) -> None:
        await appender.close()
        if bridge.sealer is not None:
            await bridge.sealer.stop()

    async def load_keys(_: web.Application) -> None:  # G1: before the first delivery needs them
        if bridge.sealer is not None:
            bridge.sealer.readiness()

    if settings.simulation_mode:
        app.add_routes([web.post("/_simulation/clock", bridge.simulation_clock)])
    app.on_startup.append(load_keys)
    app.on_cleanup.append(close)
    return app


def run_bridge(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``shutdown_timeout`` to finish."""
    configure_logging(settings.log_level, settings.log_format)
    with contextlib.suppress(Exception):  # topics are created by `shopsync topics` too; Kafka may be down
        asyncio.run(ensure_topics(settings, timeout_s=5))
    app = build_app(settings)
    dashboard.attach(app, settings)  # the dashboard, on its own address (handlers.dashboard)
    web.run_app(
        app, host=settings.bridge_host, port=settings.bridge_port, shutdown_timeout=10,
        access_log=None, print=None,
    )  # fmt: skip
