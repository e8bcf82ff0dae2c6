"""G1 at the bridge: Shopify's three compliance webhooks, signed like every topic, appended to
``shopify.compliance`` with the customer's email and phone as pseudonyms only."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest

from config import Settings
from schemas.compliance import COMPLIANCE_TOPICS, ComplianceRequest
from streams.privacy import pseudonym
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.bridge.test_bridge import bridge, bridge_settings, records, signed

pytestmark = pytest.mark.kafka

EMAIL, PHONE = "Jane.Doe+shop@Example.COM", "+1 (555) 625-1199"
SHOP = "s.myshopify.com"

# The payloads of Shopify's "Privacy law compliance" page (shopify.dev/docs/apps/build/compliance/
# privacy-law-compliance), with this test's customer.
BODIES = {
    "customers/data_request": {
        "shop_id": 954889, "shop_domain": SHOP, "orders_requested": [299938, 280263],
        "customer": {"id": 191167, "email": EMAIL, "phone": PHONE}, "data_request": {"id": 9999},
    },
    "customers/redact": {
        "shop_id": 954889, "shop_domain": SHOP, "customer": {"id": 191167, "email": EMAIL, "phone": PHONE},
        "orders_to_redact": [299938, 280263, 220458],
    },
    "shop/redact": {"shop_id": 954889, "shop_domain": SHOP},
}  # fmt: skip


async def test_each_compliance_topic_is_kept_pseudonymised_on_its_own_topic(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shopsync.bridge")
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        for n, topic in enumerate(COMPLIANCE_TOPICS):
            body = orjson.dumps(BODIES[topic])
            answer = await http.post(
                "/webhooks/shopify", content=body, headers=signed(body, topic, event_id=f"c{n}")
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["topic"] == "shopify.compliance"
    stored = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "shopify.compliance"))
    assert {r.key for r in stored} == {SHOP.encode()}, "keyed by shop: one shop's requests in order"
    assert len({r.partition for r in stored}) == 1
    requests = [
        ComplianceRequest.model_validate_json(r.value) for r in sorted(stored, key=lambda r: r.offset)
    ]
    assert [r.topic for r in requests] == list(COMPLIANCE_TOPICS), "in the order Shopify sent them"
    data, redact, shop = requests
    key = settings.privacy_key()
    assert data.email_pseudonym == pseudonym(key, "email", "jane.doe+shop@example.com")
    assert data.phone_pseudonym == pseudonym(key, "phone", "+15556251199")
    assert (data.customer_id, data.data_request_id, data.orders) == (191167, 9999, (299938, 280263))
    assert (redact.customer_id, redact.orders) == (191167, (299938, 280263, 220458))
    assert redact.email_pseudonym == data.email_pseudonym
    assert (shop.customer_id, shop.email_pseudonym, shop.shop_id) == (None, None, 954889)
    for record in stored:  # what issue 15's acceptance test looks for: no byte of the plaintext
        for secret in (b"jane.doe", b"Jane.Doe", b"example.com", b"Example.COM", b"625-1199", b"6251199"):
            assert secret not in record.value, secret
    assert await records(settings, "shopify.parking") == [], "no longer parked whole"
    warned = [orjson.loads(r.getMessage()) for r in caplog.records if "redact_not_applied" in r.getMessage()]
    assert [w["topic"] for w in warned] == ["customers/redact", "shop/redact"], (
        "a redact is not silently kept"
    )
    assert "Jane" not in caplog.text and "jane" not in caplog.text and "1199" not in caplog.text, (
        "never logged"
    )


@pytest.mark.parametrize("topic", COMPLIANCE_TOPICS)
async def test_a_compliance_webhook_with_a_bad_hmac_is_401_and_appends_nothing(
    settings: Settings, topic: str
) -> None:
    """Shopify's page: "If a mandatory compliance webhook sends a request with an invalid Shopify
    HMAC header, then the app must return a 401 Unauthorized HTTP status"."""
    settings = bridge_settings(settings)
    await ensure_topics(settings)
    body = orjson.dumps(BODIES[topic])
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url) as http:
        bad = signed(body, topic, secret="not-the-secret")
        assert (await http.post("/webhooks/shopify", content=body, headers=bad)).status_code == 401
        missing = {k: v for k, v in signed(body, topic).items() if k != "X-Shopify-Hmac-Sha256"}
        assert (await http.post("/webhooks/shopify", content=body, headers=missing)).status_code == 401
    assert await records(settings, "shopify.compliance") == []
    assert await records(settings, "shopify.parking") == []
