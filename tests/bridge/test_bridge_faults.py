"""The bridge under faults (R3, R5), over real HTTP against real brokers.

The broker tests start their own broker in the test's folder (never the session's shared one),
stop and start it with ``localkafka`` while deliveries keep coming, and read the topic back: every
delivery the bridge answered 200 must be in it. The deletion test runs with HubSpot's API hanging
(a server that accepts and never answers): the bridge must not call it at all.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from devtools.samplestore import customer_body
from handlers.producer_health import PRODUCER_FATAL
from hubspot_sandbox import sign
from localkafka import start, stop
from localkafka.broker import free_port
from schemas.envelope import Delivery, HubSpotContactDeletion, decode_log_record
from schemas.sealing import opening, sealed_ref
from streams.shredding import KeyRecord, fold_keys, key_encryption_key
from streams.topic_reader import read_all
from streams.topics import ensure_topics, key_topic, topic_name
from tests.bridge.test_bridge import HUBSPOT_SECRET, bridge, bridge_settings, records, signed
from tests.g1_modes import PLAIN

pytestmark = pytest.mark.kafka

SENDERS = 20
MAX_DELIVERIES = 12_000
SHOPIFY_BUDGET_S = 5.0


@dataclass
class Broker:
    run_dir: Path
    port: int
    controller: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await asyncio.to_thread(stop, self.run_dir)

    async def start(self, fresh: bool) -> None:
        await asyncio.to_thread(
            start, self.run_dir, port=self.port, controller_port=self.controller, fresh=fresh
        )


@asynccontextmanager
async def own_broker(tmp_path: Path) -> AsyncIterator[Broker]:
    broker = Broker(tmp_path / "kafka", free_port(), free_port())
    await broker.start(fresh=True)
    try:
        yield broker
    finally:
        await broker.stop()


def fault_settings(broker: Broker) -> Settings:
    return bridge_settings(
        Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix="faults.", partitions=2, **PLAIN)
    )


def order_delivery(n: int) -> tuple[bytes, str, str]:
    """The ``n``th sender delivery: (body, Shopify topic, event id)."""
    return orjson.dumps({"id": n, "line_items": []}), "orders/create", f"o-{n}"


@dataclass
class Load:
    """Concurrent Shopify senders: every answer's status and when it came, by event id."""

    http: httpx.AsyncClient
    delivery: Callable[[int], tuple[bytes, str, str]] = field(default=lambda n: order_delivery(n))
    acked: dict[str, float] = field(default_factory=dict)  # event id -> when 200 came
    answers: list[tuple[float, int, float]] = field(default_factory=list)  # (when, status, took)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    loop_lag: float = 0.0
    stored: set[str] = field(default_factory=set)  # event ids read back from the topic

    async def sender(self) -> None:
        while not self._stop.is_set():
            n = next(self._ids)
            if n > MAX_DELIVERIES:
                return
            body, topic, event_id = self.delivery(n)
            sent = time.monotonic()
            answer = await self.http.post(
                "/webhooks/shopify", content=body, headers=signed(body, topic, event_id=event_id)
            )
            now = time.monotonic()
            self.answers.append((now, answer.status_code, now - sent))
            if answer.status_code == 200:
                self.acked[event_id] = now
            await asyncio.sleep(0.1)

    def first_ack_after(self, at: float) -> float | None:
        return min((t for t, status, _ in self.answers if status == 200 and t >= at), default=None)

    def statuses(self, since: float, until: float) -> list[int]:
        return [status for t, status, _ in self.answers if since <= t < until]

    async def watch_loop(self) -> None:
        """Record the event loop's worst lag: the senders and the bridge share this loop, so a
        stall of the (shared, 2-core) machine delays answers without the bridge being slow."""
        while not self._stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.loop_lag = max(self.loop_lag, time.monotonic() - before - 0.05)

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def rebuild_log_lines() -> Iterator[list[str]]:
    """Collect the bridge's ``bridge.producer_rebuilt`` log lines, and keep the flood of the others
    (a line per stored delivery, aiokafka's connection errors during an outage) away from pytest's
    log capture: formatting thousands of them stalled the event loop the bridge and the senders
    share by seconds, so the answers' timing measured pytest, not the bridge."""
    bridge_log, kafka_log = logging.getLogger("shopsync.bridge"), logging.getLogger("aiokafka")
    saved = (bridge_log.level, bridge_log.propagate, kafka_log.level)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "bridge.producer_rebuilt" in (message := record.getMessage()):
                lines.append(message)

    handler = Collect()
    bridge_log.addHandler(handler)
    bridge_log.setLevel(logging.INFO)
    bridge_log.propagate = False
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield lines
    finally:
        bridge_log.removeHandler(handler)
        bridge_log.setLevel(saved[0])
        bridge_log.propagate = saved[1]
        kafka_log.setLevel(saved[2])


async def wait_ready(http: httpx.AsyncClient, want: int, within_s: float) -> float:
    """Poll ``/readyz`` until it answers ``want``; the seconds it took."""
    began = time.monotonic()
    while (await http.get("/readyz")).status_code != want:
        assert time.monotonic() - began < within_s, f"/readyz did not answer {want} within {within_s} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - began


async def test_broker_restarted_three_times_under_load_loses_no_acknowledged_delivery(
    tmp_path: Path,
) -> None:
    """Each outage (about 8 s: 2 s down, then the broker's start) outlasts the producer's request
    timeout, so aiokafka 0.14 drops a batch that already took a sequence number (an expired
    batch for a partition without a leader): the broker then refuses every later batch to that
    partition with ``OutOfOrderSequenceNumber``, the fault measured in issue 10. The bridge must
    rebuild its producer and keep answering 200, without a restart."""
    with rebuild_log_lines() as rebuilds:
        load = await _restart_three_times_under_load(tmp_path)
    acked, stored = load.acked, load.stored
    # The load was real: every cycle's checks above saw 200s before and after its outage; this
    # only guards against a run where the senders barely ran. (It said > 1,000, a rate of this
    # machine: with other work on both cores a correct run acknowledged 926.)
    assert len(acked) >= SENDERS * 10
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} deliveries answered 200 are not in the topic"
    slowest = max(took for _, _, took in load.answers)
    assert slowest < SHOPIFY_BUDGET_S, (
        f"an answer took {slowest:.1f} s, over Shopify's budget (worst event-loop lag {load.loop_lag:.1f} s)"
    )
    fatal = {t.__name__ for t in PRODUCER_FATAL}
    reasons = [orjson.loads(line)["reason"] for line in rebuilds]
    assert set(reasons) & fatal, f"no rebuild after a fatal producer error: {reasons}"


def new_customer_delivery(n: int) -> tuple[bytes, str, str]:
    """A customers/create of a customer never seen before: the sealing bridge makes (appends and
    waits for) a key for each before it can append the delivery."""
    body = customer_body(n, f"fault.{n}@example.com", "Fault", f"Person{n}", datetime(2026, 3, 2, tzinfo=UTC))
    return orjson.dumps(body), "customers/create", f"c-{n}"


async def test_a_sealing_bridge_makes_keys_again_after_broker_restarts_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """G1 on (the default): every delivery of a new customer needs a key appended to the key
    topic first, so the key ring's producer meets the same outages as the bridge's. After each
    restart new customers must be answered 200 again (a key producer left broken answers 503
    for ever, and Shopify drops a webhook after its retries), and every delivery answered 200
    must be on its topic sealed under a key the key topic holds, opening to what was sent."""
    async with own_broker(tmp_path) as broker:
        settings = fault_settings(broker).model_copy(
            update={"seal_personal_data": True, "privacy_secret": SecretStr("fault-privacy-secret")}
        )
        with rebuild_log_lines():
            load = await _restarts_under_load(settings, broker, 2, new_customer_delivery)
        stored = [
            d
            for d in map(decode_log_record, await records(settings, "shopify.customers"))
            if isinstance(d, Delivery)
        ]
        key_records = [
            KeyRecord.from_topic(r.key or b"", r.value)
            for r in await read_all(settings.kafka_bootstrap_servers, key_topic(settings))
        ]
    assert len(load.acked) >= SENDERS * 10
    missing = set(load.acked) - {d.event_id for d in stored}
    assert not missing, f"{len(missing)} deliveries answered 200 are not in the topic"
    ring = fold_keys(key_records, key_encryption_key(b"fault-privacy-secret"))
    unopenable = [d.event_id for d in stored if sealed_ref(d.body) not in ring]
    assert not unopenable, f"{len(unopenable)} stored deliveries are sealed under a key the key topic lacks"
    with opening(ring):
        for d in stored:
            n = int(d.event_id.removeprefix("c-"))
            customer = d.parse_body_with_problems().record
            assert getattr(customer, "email", None) == f"fault.{n}@example.com", "opens to what was sent"


async def _restart_three_times_under_load(tmp_path: Path) -> Load:
    async with own_broker(tmp_path) as broker:
        settings = fault_settings(broker)
        load = await _restarts_under_load(settings, broker, 3, order_delivery)
        load.stored = {
            d.event_id
            for d in map(decode_log_record, await records(settings, "shopify.orders"))
            if isinstance(d, Delivery)
        }
    return load


async def _restarts_under_load(
    settings: Settings, broker: Broker, cycles: int, delivery: Callable[[int], tuple[bytes, str, str]]
) -> Load:
    """``SENDERS`` senders against one bridge while ``broker`` is stopped and started ``cycles``
    times; each cycle checks the answers (503 while down, 200 within 5 s of the restart)."""
    await ensure_topics(settings)
    async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        load = Load(http, delivery)
        senders = [asyncio.create_task(load.sender()) for _ in range(SENDERS)]
        senders.append(asyncio.create_task(load.watch_loop()))
        try:
            await wait_ready(http, 200, within_s=10)
            await asyncio.sleep(2)
            for cycle in range(cycles):
                await broker.stop()
                down = time.monotonic()
                await wait_ready(http, 503, within_s=5)  # not ready while the broker is down
                await asyncio.sleep(max(0.0, down + 2 - time.monotonic()))
                restarting = time.monotonic()
                await broker.start(fresh=False)
                back = time.monotonic()
                await wait_ready(http, 200, within_s=10)
                await asyncio.sleep(4)
                resumed = load.first_ack_after(back)
                assert resumed is not None and resumed - back < 5, f"cycle {cycle}: no 200 within 5 s"
                while_down = load.statuses(down + 0.5, restarting + 0.5)
                assert 200 not in while_down, f"cycle {cycle}: 200 while the broker was down"
                assert 503 in load.statuses(down, resumed), f"cycle {cycle}: no 503 in the outage"
                steady = load.statuses(resumed + 2, time.monotonic())
                assert steady and set(steady) == {200}, f"cycle {cycle}: not all 200 once back"
        finally:
            load.stop()
            await asyncio.gather(*senders)
    return load


async def test_a_broker_replaced_by_an_empty_one_is_not_ready_until_its_topics_exist(
    tmp_path: Path,
) -> None:
    """A broker restarted on an empty data folder (a new cluster at the same address) has none of
    the bridge's topics: ``/readyz`` must say so (a probe that only asks whether Kafka answers
    said ready), and once the topics exist every delivery is stored, by the same bridge."""
    async with own_broker(tmp_path) as broker:
        settings = fault_settings(broker)
        await ensure_topics(settings)
        async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def deliver(n: int) -> int:
                body = orjson.dumps({"id": n, "line_items": []})
                headers = signed(body, "orders/create", event_id=f"f-{n}")
                return (await http.post("/webhooks/shopify", content=body, headers=headers)).status_code

            assert await asyncio.gather(*(deliver(n) for n in range(1, 21))) == [200] * 20
            await wait_ready(http, 200, within_s=5)
            await broker.stop()
            await broker.start(fresh=True)  # a new, empty cluster at the same address
            await wait_ready(http, 503, within_s=5)  # its topics do not exist yet: not ready
            await ensure_topics(settings)
            await wait_ready(http, 200, within_s=10)
            started = time.monotonic()
            after = await asyncio.gather(*(deliver(n) for n in range(21, 41)))
            took = time.monotonic() - started
        stored = {
            d.event_id
            for d in map(decode_log_record, await records(settings, "shopify.orders"))
            if isinstance(d, Delivery)
        }
    assert after == [200] * 20, f"answers on the new cluster: {after}"
    assert took < SHOPIFY_BUDGET_S
    assert {f"f-{n}" for n in range(21, 41)} <= stored


@asynccontextmanager
async def hanging_hubspot() -> AsyncIterator[tuple[str, list[int]]]:
    """A "HubSpot API" that accepts connections and never answers; counts connections."""
    connections: list[int] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


def hubspot_event(event_id: int, kind: str, object_id: object, **extra: object) -> dict[str, object]:
    """One event as HubSpot's webhooks send it (fields per HubSpot's webhook payload docs)."""
    return {
        "eventId": event_id, "subscriptionId": 7, "portalId": 62515, "appId": 1160452,
        "occurredAt": 1772442000000 + event_id, "subscriptionType": kind, "attemptNumber": 0,
        "objectId": object_id, "changeSource": "CRM_UI", **extra,
    }  # fmt: skip


async def test_deletions_are_stored_by_object_id_while_hubspot_is_down(settings: Settings) -> None:
    await ensure_topics(settings)
    batch = [
        hubspot_event(101, "contact.deletion", 501),
        hubspot_event(102, "contact.privacyDeletion", 501),  # GDPR: sent with the contact.deletion
        hubspot_event(103, "object.deletion", 502, objectTypeId="0-1"),  # generic form, a contact
        hubspot_event(104, "object.deletion", 503, objectTypeId="0-3"),  # a deal: not ours
        hubspot_event(105, "contact.propertyChange", 504, propertyName="email", propertyValue="x"),
    ]
    async with hanging_hubspot() as (hubspot_url, connections):
        bridged = bridge_settings(settings, hubspot_base_url=hubspot_url, hubspot_token=SecretStr("tok"))
        async with bridge(bridged) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def post(events: list[dict[str, object]]) -> httpx.Response:
                body = orjson.dumps(events)
                now = str(int(time.time() * 1000))
                signature = sign(HUBSPOT_SECRET, "POST", f"{url}/webhooks/hubspot", body, now)
                headers = {"X-HubSpot-Request-Timestamp": now, "X-HubSpot-Signature-v3": signature}
                return await http.post("/webhooks/hubspot", content=body, headers=headers)

            began = time.monotonic()
            first = await post(batch)
            took = time.monotonic() - began
            replay = await post(batch)  # HubSpot retries: the same events, the same event ids
            partial = await post([hubspot_event(106, "contact.deletion", "not-an-id"),
                                  hubspot_event(107, "contact.deletion", "505")])  # fmt: skip
        assert connections == [], "the bridge called HubSpot while answering its webhook"
    assert first.status_code == 200 and first.json()["events"] == 3, first.text
    assert took < 1.0, f"answered in {took:.1f} s: something waited on HubSpot"
    assert replay.status_code == 200 and replay.json()["events"] == 3
    assert partial.status_code == 400 and "1 contact deletion" in partial.json()["message"]
    events = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.events"))
    stored = [HubSpotContactDeletion.model_validate_json(r.value) for r in events]
    seen = [(d.event_id, d.object_id, d.privacy, d.email, d.kind) for d in stored]
    once = [
        ("101", 501, False, None, "contact.deletion"),
        ("102", 501, True, None, "contact.deletion"),
        ("103", 502, False, None, "contact.deletion"),
    ]
    # A replayed webhook is appended again; the worker's C4 rule makes the second one a no-op.
    assert sorted(seen) == sorted([*once, *once, ("107", 505, False, None, "contact.deletion")])
    assert all(d.occurred_at.timestamp() * 1000 == 1772442000000 + int(d.event_id) for d in stored)
    keys = sorted(r.key or b"" for r in events)  # keyed by the contact's HubSpot id
    assert keys == sorted([b"501", b"501", b"502"] * 2 + [b"505"])
