"""``SHOPSYNC_REDACT_HUBSPOT`` (``handlers.hubspot_erasure``): with it on, a ``customers/redact``
permanently deletes the customer's HubSpot contact (HubSpot's GDPR delete, by the id the writer's
id map holds) once their keys are shredded; other contacts stay; HubSpot down means the request
stays pending (shredded, not committed) and its HubSpot half is done on the next run. Against the
HubSpot sandbox over HTTP and the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from config import Settings
from handlers.hubspot_client import HubSpotClient, HubSpotUnavailableError, RetryPolicy
from handlers.hubspot_erasure import HubSpotEraser, contact_ids
from handlers.keyring import KeyRing
from handlers.redactor import RedactorArgs, redact_once
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from streams.privacy import pseudonym
from streams.shredding import key_id
from streams.topics import ensure_topics, topic_name
from tests.privacy.test_keyring import key_topic
from tests.privacy.test_redactor import ADA, GRACE, KEK, SECRET, SHOP, request

pytestmark = pytest.mark.kafka

TOKEN = "pat-test-redact-0123456789"


def test_the_contact_is_found_under_either_keying_and_only_its_own() -> None:
    ada = pseudonym(SECRET, "email", ADA)
    assert ada is not None
    ids = {
        f"contacts:email:{ada}": "11",  # SHOPSYNC_REDACTABLE: keyed by the pseudonym
        "contacts:email:Ada.Lovelace@Example.com": "12",  # keyed by the email, another spelling
        f"contacts:email:{pseudonym(SECRET, 'email', GRACE)}": "13",
        f"deals:shopify_deal_id:{ada}": "14",  # not a contact key, whatever its value
    }
    assert contact_ids(ids, SECRET, ada) == ["11", "12"]
    assert contact_ids(ids, b"another secret", ada) == ["11"], "an email key is pseudonymised with the secret"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        SandboxConfig(db_path=tmp_path / "sandbox.db", token=SecretStr(TOKEN))
    ) as running:
        yield running


async def _contact(http: httpx.AsyncClient, email: str) -> str:
    created = await http.post("/crm/v3/objects/contacts", json={"properties": {"email": email}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _map(settings: Settings, entries: dict[str, str]) -> None:
    """The writer's id map entries, as the writer appends them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, hubspot_id in entries.items():
            await producer.send_and_wait(
                topic_name(settings, "hubspot.ids"), hubspot_id.encode(), key=key.encode()
            )
    finally:
        await producer.stop()


def _eraser(settings: Settings, url: str, retry: RetryPolicy | None = None) -> HubSpotEraser:
    client = HubSpotClient(url, TOKEN, retry=retry, timeout_s=2.0)
    return HubSpotEraser(
        client, settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.ids"), SECRET
    )


async def _ada_key_held(settings: Settings, keys: str) -> bool:
    ring = KeyRing(settings.kafka_bootstrap_servers, keys, KEK)
    await ring.start()
    try:
        return ring.held_key(SHOP, key_id(SECRET, SHOP, ADA, None) or "") is not None
    finally:
        await ring.stop()


async def _topics(settings: Settings) -> tuple[str, RedactorArgs]:
    """The declared topics and the key topic made; the redactor's arguments for this test."""
    await ensure_topics(settings)
    keys = await key_topic(settings)
    compliance = topic_name(settings, "shopify.compliance")
    return keys, (
        settings.kafka_bootstrap_servers,
        compliance,
        keys,
        f"{settings.app_id}.redactor",
        KEK,
        SECRET,
    )


async def test_a_redact_deletes_the_customers_contact_and_no_other_once(
    settings: Settings, sandbox: Sandbox
) -> None:
    _, args = await _topics(settings)
    async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        ada, grace = await _contact(http, ADA), await _contact(http, GRACE)
        await _map(
            settings,
            {f"contacts:email:{pseudonym(SECRET, 'email', ADA)}": ada, f"contacts:email:{GRACE}": grace},
        )
        await request(settings, "customers/redact", SHOP, {"customer": {"id": 1, "email": ADA}}, "e1")

        (applied,) = await redact_once(*args, hubspot=_eraser(settings, sandbox.url))
        assert (applied.topic, applied.hubspot_deleted) == ("customers/redact", 1)
        assert (await http.get(f"/crm/v3/objects/contacts/{ada}")).status_code == 404
        assert (await http.get(f"/crm/v3/objects/contacts/{grace}")).status_code == 200, "others stay"

        # The same customer redacted again (Shopify may send it twice): already gone, nothing else touched.
        await request(settings, "customers/redact", SHOP, {"customer": {"id": 1, "email": ADA}}, "e2")
        (again,) = await redact_once(*args, hubspot=_eraser(settings, sandbox.url))
        assert again.hubspot_deleted == 0
        assert (await http.get(f"/crm/v3/objects/contacts/{grace}")).status_code == 200

        # Off (no eraser): HubSpot's records are the merchant's.
        await request(settings, "customers/redact", SHOP, {"customer": {"id": 2, "email": GRACE}}, "e3")
        (off,) = await redact_once(*args)
        assert off.hubspot_deleted == 0
        assert (await http.get(f"/crm/v3/objects/contacts/{grace}")).status_code == 200


async def test_hubspot_down_leaves_the_request_pending_then_its_contact_is_deleted(
    settings: Settings, sandbox: Sandbox
) -> None:
    keys, args = await _topics(settings)
    ring = KeyRing(settings.kafka_bootstrap_servers, keys, KEK)
    await ring.start()
    try:
        await ring.key_for(SHOP, key_id(SECRET, SHOP, ADA, None) or "")  # something of Ada's was sealed
    finally:
        await ring.stop()
    async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        ada = await _contact(http, ADA)
        await _map(settings, {f"contacts:email:{pseudonym(SECRET, 'email', ADA)}": ada})
        await request(settings, "customers/redact", SHOP, {"customer": {"id": 1, "email": ADA}}, "e1")

        down = _eraser(settings, "http://127.0.0.1:9", RetryPolicy(attempts=2, base_delay_s=0.01))  # refused
        with pytest.raises(HubSpotUnavailableError):
            await redact_once(*args, hubspot=down)
        assert not await _ada_key_held(settings, keys), "shredded first: the writer sends no more of hers"
        assert (await http.get(f"/crm/v3/objects/contacts/{ada}")).status_code == 200

        (applied,) = await redact_once(*args, hubspot=_eraser(settings, sandbox.url))
        assert applied.event_id == "e1", "not committed while HubSpot's half was undone: applied again"
        assert (applied.hubspot_deleted, applied.shredded) == (1, 0), "its keys were gone already"
        assert (await http.get(f"/crm/v3/objects/contacts/{ada}")).status_code == 404
