"""The webhook bridge over real HTTP, appending to the real broker."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from config import Settings
from devtools.samplestore import customer_body, order_body
from handlers import hubspot_paths as paths
from handlers.bridge import build_app
from hubspot_sandbox import SandboxConfig, running_sandbox, sign
from localkafka import start, stop
from localkafka.broker import free_port
from schemas.envelope import Delivery, HubSpotContactDeletion, decode_log_record
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.g1_modes import PLAIN

pytestmark = pytest.mark.kafka

OLD, NEW = "old-app-secret", "new-app-secret"
HUBSPOT_SECRET = "hubspot-app-secret"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def bridge(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def bridge_settings(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "shopify_webhook_secrets": SecretStr(f"{OLD},{NEW}"),
            "hubspot_app_secret": SecretStr(HUBSPOT_SECRET),
            "max_record_bytes": 400_000,
            **update,
        }
    )


def signed(
    body: bytes, topic: str, secret: str = NEW, event_id: str = "evt-1", shop: str = "s.myshopify.com"
) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": f"wh-{event_id}", "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-04", "X-Shopify-Triggered-At": "2026-03-02T09:00:00Z",
        "Content-Type": "application/json",
    }  # fmt: skip


async def records(settings: Settings, name: str) -> list[bytes]:
    return [r.value for r in await read_all(settings.kafka_bootstrap_servers, topic_name(settings, name))]  # type: ignore[arg-type]


async def test_a_signed_delivery_is_stored_with_its_headers_then_answered(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    body = orjson.dumps(customer_body(77, "a@example.com", "A", "B", AT))
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/webhooks/shopify", content=body, headers=signed(body, "customers/create")
        )
    assert response.status_code == 200, response.text
    (raw,) = await records(settings, "shopify.customers")
    delivery = decode_log_record(raw)
    assert isinstance(delivery, Delivery)
    assert (delivery.topic, delivery.event_id, delivery.webhook_id) == (
        "customers/create",
        "evt-1",
        "wh-evt-1",
    )
    assert delivery.shop_domain == "s.myshopify.com" and delivery.api_version == "2026-04"
    assert delivery.body == orjson.loads(body)
    assert abs((datetime.now(UTC) - delivery.received_at).total_seconds()) < 30


async def test_signatures_bad_missing_and_rotated(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    body = orjson.dumps(
        order_body(5, 1, [], AT, customer=None, email=None, checkout_token=None, cart_token=None)
    )
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        bad = signed(body, "orders/create", secret="not-the-secret")
        assert (await http.post("/webhooks/shopify", content=body, headers=bad)).status_code == 401
        missing = {k: v for k, v in signed(body, "orders/create").items() if k != "X-Shopify-Hmac-Sha256"}
        assert (await http.post("/webhooks/shopify", content=body, headers=missing)).status_code == 401
        tampered = signed(body, "orders/create")
        assert (
            await http.post("/webhooks/shopify", content=body + b" ", headers=tampered)
        ).status_code == 401
        assert await records(settings, "shopify.orders") == [], "nothing appended for a bad signature"
        for secret in (OLD, NEW):  # rotation: both secrets are accepted while both are configured
            ok = await http.post(
                "/webhooks/shopify", content=body, headers=signed(body, "orders/create", secret)
            )
            assert ok.status_code == 200
    assert len(await records(settings, "shopify.orders")) == 2


async def test_each_shop_signs_with_its_own_secret(settings: Settings) -> None:
    """X3: two shops, each a custom app with its own secret: a delivery is checked against its
    shop's secret only, and a shop with no secret is refused, whatever it signed with."""
    settings = bridge_settings(
        settings, shopify_webhook_secrets=SecretStr("a.myshopify.com=secret-a,b.myshopify.com=secret-b")
    )
    await ensure_topics(settings)
    body = orjson.dumps(
        order_body(5, 1, [], AT, customer=None, email=None, checkout_token=None, cart_token=None)
    )
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:

        async def post(secret: str, shop: str, event_id: str) -> int:
            headers = signed(body, "orders/create", secret, event_id, shop=shop)
            return (await http.post("/webhooks/shopify", content=body, headers=headers)).status_code

        assert await post("secret-a", "a.myshopify.com", "e1") == 200
        assert await post("secret-b", "B.myshopify.com", "e2") == 200
        assert await post("secret-a", "b.myshopify.com", "e3") == 401, "another shop's secret"
        assert await post("secret-a", "c.myshopify.com", "e4") == 401, "a shop with no secret"
    stored = [decode_log_record(raw) for raw in await records(settings, "shopify.orders")]
    shops = [d.shop_domain for d in stored if isinstance(d, Delivery)]
    assert shops == ["a.myshopify.com", "B.myshopify.com"]


async def test_x3_each_shops_records_are_keyed_in_their_shop_the_primary_shops_as_before(
    settings: Settings,
) -> None:
    """X3: two shops' orders with one id get two Kafka keys (the primary shop's, the first given a
    secret, unchanged), so neither shares a key with the other and each shop's versions of its
    order land on one partition, in order."""
    settings = bridge_settings(
        settings, shopify_webhook_secrets=SecretStr("a.myshopify.com=secret-a,b.myshopify.com=secret-b")
    )
    await ensure_topics(settings)
    body = orjson.dumps(
        order_body(5, 1, [], AT, customer=None, email=None, checkout_token=None, cart_token=None)
    )
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for n, (secret, shop) in enumerate(
            [("secret-a", "a.myshopify.com"), ("secret-b", "B.myshopify.com")] * 2
        ):
            headers = signed(body, "orders/create", secret, f"e{n}", shop=shop)
            assert (await http.post("/webhooks/shopify", content=body, headers=headers)).status_code == 200
    stored = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.orders"))
    by_key: dict[bytes, set[int]] = {}
    for record in stored:
        by_key.setdefault(bytes(record.key or b""), set()).add(record.partition)
    assert set(by_key) == {b"5", b"b.myshopify.com/5"}
    assert all(len(partitions) == 1 for partitions in by_key.values())


async def test_bad_input_gets_a_clear_answer_and_never_blocks_good_input(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        broken = b'{"id": 1,'
        answer = await http.post("/webhooks/shopify", content=broken, headers=signed(broken, "orders/create"))
        assert answer.status_code == 400 and "JSON" in answer.json()["message"]
        huge = orjson.dumps({"id": 1, "note": "x" * 300_000})
        assert (
            await http.post("/webhooks/shopify", content=huge, headers=signed(huge, "orders/create"))
        ).status_code == 413
        unknown = orjson.dumps({"id": 9})
        parked = await http.post("/webhooks/shopify", content=unknown, headers=signed(unknown, "shop/update"))
        assert parked.status_code == 200 and parked.json()["topic"] == "shopify.parking"
        good = orjson.dumps({"id": 10})
        assert (
            await http.post("/webhooks/shopify", content=good, headers=signed(good, "products/delete"))
        ).status_code == 200
    (letter,) = await records(settings, "shopify.parking")
    assert "unsupported Shopify topic 'shop/update'" in orjson.loads(letter)["reason"]
    assert len(await records(settings, "shopify.products")) == 1


async def test_concurrent_deliveries_are_all_stored(settings: Settings) -> None:
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:

        async def deliver(i: int) -> int:
            body = orjson.dumps(customer_body(1000 + i, f"c{i}@example.com", "C", str(i), AT))
            headers = signed(body, "customers/create", event_id=f"evt-{i}")
            return (await http.post("/webhooks/shopify", content=body, headers=headers)).status_code

        codes = await asyncio.gather(*(deliver(i) for i in range(50)))
    assert codes == [200] * 50
    stored = [decode_log_record(v) for v in await records(settings, "shopify.customers")]
    assert sorted(d.event_id for d in stored if isinstance(d, Delivery)) == sorted(
        f"evt-{i}" for i in range(50)
    )


async def test_kafka_down_means_503_within_shopifys_budget_then_nothing_lost(tmp_path: Path) -> None:
    run_dir = tmp_path / "kafka"
    port, controller = free_port(), free_port()
    info = await asyncio.to_thread(start, run_dir, port=port, controller_port=controller)
    settings = bridge_settings(
        Settings(kafka_bootstrap_servers=info.bootstrap, topic_prefix="down.", partitions=1, **PLAIN),
        bridge_append_timeout_s=2.0,
    )
    await ensure_topics(settings)
    try:
        async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
            first = orjson.dumps({"id": 1})
            assert (
                await http.post(
                    "/webhooks/shopify", content=first, headers=signed(first, "products/delete", event_id="a")
                )
            ).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            await asyncio.to_thread(stop, run_dir)
            second = orjson.dumps({"id": 2})
            started = time.monotonic()
            answer = await http.post(
                "/webhooks/shopify", content=second, headers=signed(second, "products/delete", event_id="b")
            )
            assert answer.status_code == 503 and time.monotonic() - started < 5.0
            await asyncio.sleep(2.1)
            assert (await http.get("/readyz")).status_code == 503
            await asyncio.to_thread(start, run_dir, port=port, controller_port=controller, fresh=False)
            for _ in range(40):  # Shopify retries; once Kafka is back the retry is stored
                retry = await http.post(
                    "/webhooks/shopify",
                    content=second,
                    headers=signed(second, "products/delete", event_id="b"),
                )
                if retry.status_code == 200:
                    break
                await asyncio.sleep(0.5)
            assert retry.status_code == 200
        stored = {
            d.event_id
            for d in map(decode_log_record, await records(settings, "shopify.products"))
            if isinstance(d, Delivery)
        }
        assert {"a", "b"} <= stored, "nothing lost"
    finally:
        await asyncio.to_thread(stop, run_dir)


async def test_hubspot_deletions_are_verified_and_stored_by_object_id(
    settings: Settings, tmp_path: Path
) -> None:
    """The sandbox's real signed webhook for a deleted contact is stored under the contact's
    HubSpot id, without an email: the bridge never calls HubSpot back (R5); the worker resolves
    the email from the writer's id map."""
    await ensure_topics(settings)
    port = free_port()
    config = SandboxConfig(db_path=tmp_path / "hs.db", token=SecretStr("tok"),
                           webhook_url=f"http://127.0.0.1:{port}/webhooks/hubspot",
                           webhook_secret=SecretStr(HUBSPOT_SECRET))  # fmt: skip
    async with running_sandbox(config) as sandbox:
        bridged = bridge_settings(settings, hubspot_base_url=sandbox.url, hubspot_token=SecretStr("tok"))
        runner = web.AppRunner(build_app(bridged))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with httpx.AsyncClient(
                base_url=sandbox.url, headers={"Authorization": "Bearer tok"}
            ) as http:
                contact = {
                    "id": "Gone@Example.com",
                    "idProperty": "email",
                    "properties": {"email": "Gone@Example.com"},
                }
                created = await http.post(paths.batch("contacts", "upsert"), json={"inputs": [contact]})
                contact_id = created.json()["results"][0]["id"]
                assert (await http.delete(paths.record("contacts", contact_id))).status_code == 204
            for _ in range(50):
                events = await records(settings, "hubspot.events")
                if events:
                    break
                await asyncio.sleep(0.1)
            # A forged and a stale delivery are refused.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                body = b'[{"subscriptionType": "contact.deletion", "objectId": 1, "occurredAt": 1}]'
                now = str(int(time.time() * 1000))
                uri = f"http://127.0.0.1:{port}/webhooks/hubspot"
                forged = {
                    "X-HubSpot-Request-Timestamp": now,
                    "X-HubSpot-Signature-v3": sign("wrong", "POST", uri, body, now),
                }
                assert (await http.post("/webhooks/hubspot", content=body, headers=forged)).status_code == 401
                old = str(int(time.time() * 1000) - 10 * 60 * 1000)
                stale = {
                    "X-HubSpot-Request-Timestamp": old,
                    "X-HubSpot-Signature-v3": sign(HUBSPOT_SECRET, "POST", uri, body, old),
                }
                assert (await http.post("/webhooks/hubspot", content=body, headers=stale)).status_code == 401
        finally:
            await runner.cleanup()
    (raw,) = events
    deletion = HubSpotContactDeletion.model_validate_json(raw)
    assert deletion.object_id == int(contact_id) and deletion.email is None and not deletion.privacy


async def test_a_hubspot_webhook_url_with_an_encoded_colon_in_its_query_is_verified(
    settings: Settings,
) -> None:
    """HubSpot signs its webhook URL with ``%3A`` decoded to ``:`` ("Validating requests"); the
    bridge sees ``%3A`` on the request line and must verify it all the same (it answered 401)."""
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    body = b'[{"subscriptionType": "contact.propertyChange", "objectId": 1, "occurredAt": 1}]'
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        now = str(int(time.time() * 1000))
        signed_by_hubspot = base64.b64encode(
            hmac.new(
                HUBSPOT_SECRET.encode(),
                b"POST" + f"{url}/webhooks/hubspot?portal=a:b".encode() + body + now.encode(),
                hashlib.sha256,
            ).digest()
        ).decode()
        headers = {"X-HubSpot-Request-Timestamp": now, "X-HubSpot-Signature-v3": signed_by_hubspot}
        answer = await http.post("/webhooks/hubspot?portal=a%3Ab", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "stored", "events": 0}
        refused = await http.post("/webhooks/hubspot?portal=a%3Ac", content=body, headers=headers)
        assert refused.status_code == 401
