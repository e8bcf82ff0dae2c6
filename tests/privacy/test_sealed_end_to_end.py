"""G1 end to end with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on: signed deliveries through the bridge
(sealed there), the worker as its own process (opening them where it parses a body), the writer,
the HubSpot sandbox. The account it writes is the one the same deliveries write with sealing off,
while the Shopify topics of the sealed run hold none of the customers' personal values."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.localrun import ServiceProcess, wait_until_worker_idle, wait_until_written
from devtools.samplestore import generate
from handlers.account_fold import Account
from handlers.writer import run_writer
from hubspot_sandbox import SandboxConfig, running_sandbox
from streams.ticker import append_ticks
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.bridge.test_bridge import bridge, bridge_settings, signed
from tests.shared_fixtures import require_fixtures
from tests.writer.conftest import TOKEN, admin, held

pytestmark = pytest.mark.kafka

FIXTURES = ("customers_create", "customers_update", "orders_create", "orders_paid", "checkouts_create")


def deliveries() -> list[tuple[str, bytes, str]]:
    """(topic, raw body, triggered at): a generated store's webhooks, then Shopify's own payloads."""
    out = [
        (e.topic, orjson.dumps(e.body), e.at.isoformat())
        for e in sorted(generate(customers=5, seed=11).events, key=lambda e: e.at)
    ]
    webhooks = require_fixtures() / "webhooks"
    for name in FIXTURES:
        resource, _, action = name.partition("_")
        out.append((f"{resource}/{action}", (webhooks / f"{name}.json").read_bytes(), "2026-03-02T09:00:00Z"))
    return out


def account(dump: dict[str, Any]) -> tuple[dict[Any, dict[str, Any]], set[Any]]:
    """What the account holds by natural key, without what the sandbox stamps on each write (its
    ids too: a line item's ``hs_product_id`` is read as its product's natural key)."""
    folded: Account = held(dump)
    products = {str(p["id"]): p["properties"]["shopify_product_key"] for p in dump["products"]}
    records = {
        k: {p: products.get(str(v), v) if p == "hs_product_id" else v for p, v in props.items()}
        for k, props in folded.records.items()
    }
    return records, set(folded.associations)


def differences(
    plain: tuple[dict[Any, dict[str, Any]], set[Any]], sealed: tuple[dict[Any, dict[str, Any]], set[Any]]
) -> list[str]:
    out = [f"association {a} only {'unsealed' if a in plain[1] else 'sealed'}" for a in plain[1] ^ sealed[1]]
    for key in sorted(set(plain[0]) | set(sealed[0])):
        a, b = plain[0].get(key, {}), sealed[0].get(key, {})
        out += [
            f"{key} {p}: {a.get(p)!r} unsealed, {b.get(p)!r} sealed"
            for p in sorted(set(a) | set(b))
            if a.get(p) != b.get(p)
        ]
    return out[:40]


async def run_store(
    settings: Settings, work: Path
) -> tuple[tuple[dict[Any, dict[str, Any]], set[Any]], bytes]:
    """Every delivery through bridge, worker and writer into a fresh sandbox: its account, and
    the raw bytes of the Shopify topics."""
    await asyncio.to_thread(work.mkdir, parents=True)
    config = SandboxConfig(db_path=work / "sandbox.db", token=SecretStr(TOKEN))
    async with running_sandbox(config) as sandbox:
        own = settings.model_copy(
            update={
                "tick_interval_s": 0,  # no wall-clock ticker: the test's own tick, at the same point
                "hubspot_base_url": sandbox.url, "hubspot_token": SecretStr(TOKEN),
                "writer_batch_window_ms": 200, "writer_link_wait_s": 5.0, "data_dir": work / "worker",
            }
        )  # fmt: skip
        await ensure_topics(own, internal=True)
        tick_at = datetime.now(UTC) + timedelta(days=1)
        worker = ServiceProcess("worker", own, work / "worker.log")
        try:
            async with bridge(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                for n, (topic, raw, at) in enumerate(deliveries()):
                    headers = {**signed(raw, topic, event_id=f"e{n}"), "X-Shopify-Triggered-At": at}
                    answer = await http.post("/webhooks/shopify", content=raw, headers=headers)
                    assert answer.status_code == 200, answer.text
            await wait_until_worker_idle(own, 120, worker)
            await append_ticks(own, tick_at)  # one tick after every delivery: the timers due fire
            await wait_until_worker_idle(own, 120, worker)
            # The worker runs while the writer writes, as deployed: the writer's waits for ends
            # and products count from the worker's progress, which a stopped worker never makes
            # (it reads the id map the writer writes), so they would wait for their cap.
            stop = asyncio.Event()
            task = asyncio.create_task(run_writer(own, stop))
            try:
                await wait_until_written(own, 90)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
        finally:
            code = worker.stop()
        assert code == 0 or not worker.alive(), worker.log_tail()
        letters = await read_all(own.kafka_bootstrap_servers, topic_name(own, "shopify.deadletter"))
        assert letters == [], [orjson.loads(r.value)["reason"] for r in letters]
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
    raw = b""
    for name in ("shopify.customers", "shopify.orders", "shopify.checkouts"):
        raw += b"".join(r.value for r in await read_all(own.kafka_bootstrap_servers, topic_name(own, name)))
    return account(dump), raw


@pytest.mark.parametrize("redactable", [False, True], ids=["email-keys", "pseudonym-keys"])
async def test_a_sealed_store_writes_the_account_an_unsealed_one_does(
    settings: Settings, tmp_path: Path, redactable: bool
) -> None:
    """With step 2's pseudonym keys (``SHOPSYNC_REDACTABLE``) as without them."""
    secret = SecretStr("end-to-end-privacy-secret")
    plain = bridge_settings(settings, redactable=redactable, privacy_secret=secret)
    sealed = bridge_settings(
        settings,
        redactable=redactable,
        seal_personal_data=True,
        privacy_secret=secret,
        topic_prefix=f"{settings.topic_prefix}sealed.",
        app_id=f"{settings.app_id}-sealed",
    )
    (plain_account, plain_raw), (sealed_account, sealed_raw) = (
        await run_store(plain, tmp_path / "plain"),
        await run_store(sealed, tmp_path / "sealed"),
    )
    records, associations = plain_account
    assert len([k for k in records if k[0] == "contacts"]) >= 5 and associations, "a store was written"
    assert sealed_account == plain_account, differences(plain_account, sealed_account)
    for text in (
        b"john@example.com",
        b"bob@biller.com",
        b"123 Shipping Street",
        b"Shippington",
        b"555-555-SHIP",
    ):
        assert text in plain_raw, "the unsealed run stores what Shopify sent"
        assert text not in sealed_raw, "the sealed run stores none of it readable"
