"""Fixtures for the writer: a HubSpot sandbox over real HTTP, and helpers to feed and watch it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from config import Settings
from config.rules import RuleConfig
from devtools.account import from_dump
from devtools.localrun import delivery_for, schedule, wait_until_written
from devtools.samplestore import generate
from handlers.account_fold import Account
from handlers.writer import WriterStats, run_writer
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from schemas.commands import AnyCommand, command_key, encode_command
from streams.inprocess import InProcessPipeline
from streams.topics import ensure_topics, topic_name

TOKEN = "pat-test-0123456789"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(db_path=tmp_path / "sandbox.db", token=SecretStr(TOKEN))
    async with running_sandbox(config) as running:
        yield running


@pytest.fixture
def writer_settings(settings: Settings, sandbox: Sandbox) -> Settings:
    return settings.model_copy(
        update={
            "hubspot_base_url": sandbox.url,
            "hubspot_token": SecretStr(TOKEN),
            "writer_batch_window_ms": 200,
            "writer_link_wait_s": 5.0,
        }
    )


def store_commands(customers: int = 15, seed: int = 3, config: RuleConfig | None = None) -> list[AnyCommand]:
    """What the processors emit for a generated store (the in-process pipeline, ticks included)."""
    pipeline = InProcessPipeline(config=config or RuleConfig())
    store = generate(customers=customers, seed=seed)
    for batch, tick_at in schedule(store.events, timedelta(hours=12), timedelta(days=3)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    return pipeline.commands


async def append_commands(
    settings: Settings, commands: list[AnyCommand], encode: Callable[[AnyCommand], bytes] = encode_command
) -> None:
    """Append ``commands`` keyed as the worker keys them; ``encode`` makes each record's value (a
    test of G1 seals them as the worker does with sealing on)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        topic = topic_name(settings, "hubspot.commands")
        sent = [await producer.send(topic, encode(c), key=command_key(c).encode()) for c in commands]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def write_all(
    settings: Settings, commands: list[AnyCommand], encode: Callable[[AnyCommand], bytes] = encode_command
) -> WriterStats:
    """Append ``commands`` to the commands topic and run a writer until it has written them all."""
    await ensure_topics(settings)
    await append_commands(settings, commands, encode)
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings, stop))
    try:
        await wait_until_written(settings)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 30)
    return stats


async def admin(sandbox: Sandbox, method: str, path: str, json: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        response = await http.request(method, path, json=json)
        response.raise_for_status()
        return response.json() if response.content else None


held = from_dump  # the sandbox's account as an Account (the tests' name for it)


def agrees(expected: Account, actual: Account) -> list[str]:
    """Differences between what the commands say and what HubSpot holds (empty: they agree)."""
    problems = []
    want_keys = set(expected.records)
    have_keys = set(actual.records)
    if want_keys != have_keys:
        missing, extra = sorted(want_keys - have_keys)[:5], sorted(have_keys - want_keys)[:5]
        problems.append(f"records missing {missing}, extra {extra}")
    for key in want_keys & have_keys:
        for prop, value in expected.records[key].items():
            if value in (None, ""):
                if actual.records[key].get(prop) not in (None, ""):
                    problems.append(f"{key} {prop}: expected empty, held {actual.records[key].get(prop)!r}")
            elif str(actual.records[key].get(prop)) != str(value):
                problems.append(f"{key} {prop}: expected {value!r}, held {actual.records[key].get(prop)!r}")
    wanted_links = {a for a in expected.associations if a[2] in (3, 20)}
    held_links = {a for a in actual.associations if a[2] in (3, 20)}
    if wanted_links != held_links:
        problems.append(f"associations missing {sorted(wanted_links - held_links)[:3]}, extra "
                        f"{sorted(held_links - wanted_links)[:3]}")  # fmt: skip
    return problems
