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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from handlers.appender import PRODUCER_FATAL
from hubspot_sandbox import sign
from localkafka import start, stop
from localkafka.broker import free_port
from schemas.envelope import Delivery, HubSpotContactDeletion, decode_log_record
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
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


@dataclass
class Load:
    """Concurrent Shopify senders: every answer's status and when it came, by event id."""

    http: httpx.AsyncClient
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
            body = orjson.dumps({"id": n, "line_items": []})
            sent = time.monotonic()
            answer = await self.http.post(
                "/webhooks/shopify", content=body, headers=signed(body, "orders/create", event_id=f"o-{n}")
            )
            now = time.monotonic()
            self.answers.append((now, answer.status_code, now - sent))
            if answer.status_code == 200:
                self.acked[f"o-{n}"] = now
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


async def _restart_three_times_under_load(tmp_path: Path) -> Load:
    async with own_broker(tmp_path) as broker:
        settings = fault_settings(broker)
        await ensure_topics(settings)
        async with bridge(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            load = Load(http)
            senders = [asyncio.create_task(load.sender()) for _ in range(SENDERS)]
            senders.append(asyncio.create_task(load.watch_loop()))
            try:
                await wait_ready(http, 200, within_s=10)
                await asyncio.sleep(2)
                for cycle in range(3):
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
        load.stored = {
            d.event_id
            for d in map(decode_log_record, await records(settings, "shopify.orders"))
            if isinstance(d, Delivery)
        }
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
