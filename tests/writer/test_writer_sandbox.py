"""The writer over real HTTP against the HubSpot sandbox, reading a real Kafka commands topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from config import Settings
from devtools.localrun import ServiceProcess, wait_until_written
from handlers import hubspot_paths as paths
from handlers.account_fold import fold
from handlers.account_setup import ensure_properties, set_up_account
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotClient
from handlers.writer import WriterStats, run_writer
from hubspot_sandbox import Sandbox
from schemas.commands import AnyCommand, RecordRef, Upsert
from streams.rules.keys import UNIQUE_PROPERTY
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.writer.conftest import (
    TOKEN,
    admin,
    agrees,
    append_commands,
    held,
    store_commands,
)

pytestmark = pytest.mark.kafka


@asynccontextmanager
async def writer(settings: Settings) -> AsyncIterator[asyncio.Task[WriterStats]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_store_written_to_the_sandbox_is_the_account_the_commands_describe(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    commands = store_commands()
    await append_commands(writer_settings, commands)
    async with writer(writer_settings) as task:
        await wait_until_written(writer_settings)
    stats = task.result()
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    problems = agrees(fold(commands), held(dump))
    assert not problems, problems[:10]
    assert stats.dead_lettered == 0
    line_items = dump["line_items"]
    assert line_items and all(li["properties"].get("hs_product_id") for li in line_items), (
        "P2: linked to products"
    )
    labels = {d["stage_label"] for d in dump["deals"]}
    assert "Checkout Abandoned" in labels and "Shipped" in labels


async def test_the_same_commands_twice_leave_the_same_account(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """Idempotency: every write is an upsert by a unique key; a second pass changes nothing.

    The second pass is cut into other windows (seven commands each) on purpose: how a redelivery
    falls into rounds is up to Kafka, and must not matter. Within a round a record's commands
    coalesce, so a pass cut finer writes states the coarser one skipped (a cart deal created and
    archived again, an order deal's earlier stage): those move ``updatedAt`` and the archived
    counts, never what the account holds. CI once saw exactly that difference by chance."""
    await ensure_topics(writer_settings)
    commands = store_commands(customers=8, seed=4)
    await append_commands(writer_settings, commands)
    async with writer(writer_settings):
        await wait_until_written(writer_settings)
    first = await admin(sandbox, "GET", "/_sandbox/dump")
    await append_commands(writer_settings, commands)
    async with writer(writer_settings.model_copy(update={"writer_max_batch": 7})):
        await wait_until_written(writer_settings)
    second = await admin(sandbox, "GET", "/_sandbox/dump")
    assert held_now(second) == held_now(first)
    assert second["archived"]["contacts"] == second["archived"]["products"] == 0, (
        "only the converted cart's deal and line item are ever archived"
    )


def held_now(dump: dict[str, Any]) -> dict[str, Any]:
    """What the account holds: every live record (id, createdAt, properties), association and
    pipeline, without the write history (``updatedAt``, how many records were ever archived)."""
    live = {k: v for k, v in dump.items() if k != "archived"}
    for object_type in UNIQUE_PROPERTY:
        live[object_type] = [{k: v for k, v in r.items() if k != "updatedAt"} for r in dump[object_type]]
    return live


async def test_batching_and_coalescing_keep_the_call_count_low(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """250 contacts in 3 upsert calls (100 per call); 40 updates of one contact become one input."""
    await ensure_topics(writer_settings)
    contacts: list[AnyCommand] = [
        Upsert(record=RecordRef(object_type="contacts", id_property="email", id_value=f"c{i}@example.com"),
               properties={"email": f"c{i}@example.com", "firstname": f"C{i}"})
        for i in range(250)
    ]  # fmt: skip
    one = RecordRef(object_type="contacts", id_property="email", id_value="busy@example.com")
    updates: list[AnyCommand] = [
        Upsert(record=one, properties={"email": one.id_value, "firstname": f"v{i}"}) for i in range(40)
    ]
    await append_commands(writer_settings, contacts + updates)
    settings = writer_settings.model_copy(update={"writer_batch_window_ms": 1500, "writer_max_batch": 5000})
    async with writer(settings):
        await wait_until_written(settings)
    stats = await admin(sandbox, "GET", "/_sandbox/stats")
    upsert_calls = sum(n for route, n in _routes(stats).items() if route.endswith("contacts/batch/upsert"))
    assert upsert_calls <= 4, stats
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    busy = [c for c in dump["contacts"] if c["properties"]["email"] == "busy@example.com"]
    assert busy[0]["properties"]["firstname"] == "v39", "newest wins"
    assert len(dump["contacts"]) == 251


async def test_rejected_records_are_dead_lettered_and_the_rest_written(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """A 400 for a batch is narrowed down to the bad input; it goes to the DLQ with HubSpot's message."""
    await ensure_topics(writer_settings)
    good: list[AnyCommand] = [
        Upsert(record=RecordRef(object_type="contacts", id_property="email", id_value=f"g{i}@example.com"),
               properties={"email": f"g{i}@example.com"})
        for i in range(9)
    ]  # fmt: skip
    bad = Upsert(record=RecordRef(object_type="contacts", id_property="email", id_value="bad@example.com"),
                 properties={"email": "bad@example.com", "no_such_property": "x"})  # fmt: skip
    await append_commands(writer_settings, [*good[:4], bad, *good[4:]])
    async with writer(writer_settings) as task:
        await wait_until_written(writer_settings)
    assert task.result().dead_lettered == 1
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert {c["properties"]["email"] for c in dump["contacts"]} == {f"g{i}@example.com" for i in range(9)}
    dlq = topic_name(writer_settings, "hubspot.commands.dlq")
    (letter,) = await read_all(writer_settings.kafka_bootstrap_servers, dlq)
    body = orjson.loads(letter.value)
    assert body["status"] == 400 and "no_such_property" in orjson.dumps(body).decode()
    assert body["command"]["record"]["id_value"] == "bad@example.com"


async def test_a_429_storm_and_a_5xx_burst_slow_the_writer_down_but_lose_nothing(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """The writer paces itself to the advertised limit, so the storm comes from another client of
    the same account spending the allowance; 5xx answers come at random meanwhile."""
    await ensure_topics(writer_settings)
    commands = store_commands(customers=10, seed=6)
    await append_commands(writer_settings, commands)
    await admin(sandbox, "POST", "/_sandbox/faults", {"fault_5xx_rate": 0.3, "rate_limit_per_10s": 30})
    settings = writer_settings.model_copy(update={"writer_batch_window_ms": 50})

    async def greedy_neighbour() -> None:
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            for _ in range(60):
                await http.get(paths.pipelines("deals"))
                await asyncio.sleep(0.05)

    async with writer(settings):
        await greedy_neighbour()
        await admin(sandbox, "POST", "/_sandbox/faults", {"fault_5xx_rate": 0.0, "rate_limit_per_10s": 190})
        await wait_until_written(settings, timeout_s=120)
    stats = await admin(sandbox, "GET", "/_sandbox/stats")
    assert stats["rate_limited"] > 0, "a 429 storm happened"
    assert stats["injected_5xx"] > 0, "a 5xx burst happened"
    problems = agrees(fold(commands), held(await admin(sandbox, "GET", "/_sandbox/dump")))
    assert not problems, problems[:10]


def _routes(stats: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in stats["requests"].items()}


async def test_a_killed_writer_restarted_mid_stream_loses_nothing_and_duplicates_nothing(
    writer_settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGKILL the writer process while it works; a new one resumes from the last commit."""
    await ensure_topics(writer_settings)
    commands = store_commands(customers=20, seed=9)
    await append_commands(writer_settings, commands)
    env = {"HUBSPOT_BASE_URL": sandbox.url, "HUBSPOT_TOKEN": TOKEN, "SHOPSYNC_WRITER_BATCH_WINDOW_MS": "50",
           "SHOPSYNC_WRITER_MAX_BATCH": "40", "SHOPSYNC_HUBSPOT_RATE_LIMIT_PER_10S": "100"}  # fmt: skip
    first = ServiceProcess("writer", writer_settings, tmp_path / "writer-1.log", extra_env=env)
    for _ in range(200):  # until it has written some, but not all
        await asyncio.sleep(0.05)
        written = len((await admin(sandbox, "GET", "/_sandbox/dump"))["deals"])
        if written > 3:
            break
    first.kill()
    partial = await admin(sandbox, "GET", "/_sandbox/dump")
    second = ServiceProcess("writer", writer_settings, tmp_path / "writer-2.log", extra_env=env)
    try:
        await wait_until_written(writer_settings, timeout_s=120)
    except TimeoutError as exc:
        raise AssertionError(f"{first.log_tail()}\n----\n{second.log_tail()}") from exc
    finally:
        second.stop()
    final = await admin(sandbox, "GET", "/_sandbox/dump")
    assert len(partial["deals"]) < len(final["deals"]), "the kill happened mid-stream"
    problems = agrees(fold(commands), held(final))
    assert not problems, [*problems[:10], second.log_tail()]
    keys = [d["properties"]["shopify_deal_key"] for d in final["deals"]]
    assert len(keys) == len(set(keys)), "no deal written twice"


async def test_account_setup_is_idempotent(writer_settings: Settings, sandbox: Sandbox) -> None:
    client = HubSpotApi(HubSpotClient(sandbox.url, TOKEN))
    try:
        first = await set_up_account(client, "Ecommerce Pipeline")
        created_again = await ensure_properties(client)
        second = await set_up_account(client, "Ecommerce Pipeline")
    finally:
        await client.close()
    assert created_again == 0 and first == second
    assert set(first.stage_ids) == {"Checkout Pending", "Checkout Abandoned", "Checkout Completed",
                                    "Processed", "Shipped", "Cancelled"}  # fmt: skip
    pipelines = (await admin(sandbox, "GET", "/_sandbox/dump"))["pipelines"]
    assert [p["label"] for p in pipelines].count("Ecommerce Pipeline") == 1


async def test_a_contact_deleted_in_hubspot_is_not_recreated_by_an_update(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """C4 at the writer: update-only upserts of a contact HubSpot deleted are skipped, not re-created."""
    await ensure_topics(writer_settings)
    ref = RecordRef(object_type="contacts", id_property="email", id_value="gone@example.com")
    await append_commands(writer_settings, [Upsert(record=ref, properties={"email": ref.id_value})])
    async with writer(writer_settings) as task:
        await wait_until_written(writer_settings)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
        (contact,) = dump["contacts"]
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            response = await http.delete(paths.record("contacts", contact["id"]))
            assert response.status_code == 204
        update = Upsert(
            record=ref, properties={"email": ref.id_value, "firstname": "Back"}, create_if_missing=False
        )
        await append_commands(writer_settings, [update])
        await wait_until_written(writer_settings)
    assert (await admin(sandbox, "GET", "/_sandbox/dump"))["contacts"] == []
    assert task.result().skipped_deleted == 1 and task.result().dead_lettered == 0


async def test_the_token_never_reaches_the_logs(
    writer_settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await ensure_topics(writer_settings)
    await append_commands(writer_settings, store_commands(customers=3, seed=2))
    async with writer(writer_settings):
        await wait_until_written(writer_settings)
    assert caplog.records, "something was logged"
    assert TOKEN not in caplog.text
