"""The HubSpot sandbox's own cost per call: a 100-input upsert at 1,000,000 records against 1,000.

Two sandboxes run side by side in the figure's process, one holding ``SMALL`` records and one
``LARGE`` (half contacts, half deals with a unique ``shopify_deal_key``, each deal linked to a
contact). They are filled straight through the sandbox's store in bulk (``hubspot_sandbox.bulk``,
the rows the API writes; through HTTP a million records would take hours), not through HTTP.
Then real HTTP calls are timed, the two sandboxes taking turns call by call, so a busy moment on
the shared machine falls on both alike. Each round makes the calls a writer makes: 100-input
upserts of new contacts (by email), of existing contacts (picked at random over the whole
account), of new deals and of existing deals (by ``shopify_deal_key``, at random), and a 100-pair
association ``batch/create`` linking the round's new deals to existing contacts at random (a
returning customer's new order). The result is the median over the four kinds of upsert at
``LARGE``, the baseline the same at ``SMALL``; each kind's median, the association call's, and
the process CPU per upsert (client and sandbox share the process) are in the detail. Last, a
full ``GET /_sandbox/dump`` of the large account is read while upserts go on, to show that it
does not hold them up.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.stack import SANDBOX_TOKEN, work_dir
from bench.suite import BenchEnv, Figure, Measured
from hubspot_sandbox import Sandbox, SandboxConfig, bulk, running_sandbox
from hubspot_sandbox.catalog import ASSOCIATION_TYPES
from hubspot_sandbox.timestamps import now_ms

SMALL, LARGE, QUICK_LARGE = 1_000, 1_000_000, 50_000
ROUNDS, QUICK_ROUNDS, WARM_UP = 15, 6, 2
INPUTS = 100
TARGET_RATIO = 1.5
UNLIMITED = 10**9  # the rate limiter still runs; it never refuses here
KINDS = ("contacts new", "contacts existing", "deals new", "deals existing", "associations")
UPSERTS = KINDS[:4]
STAGES = ("closedwon", "closedlost")
Call = tuple[str, dict[str, Any]]  # path, body


@dataclass
class Account:
    """One sandbox, what it was filled with, and the calls timed against it (ms, wall and CPU)."""

    size: int
    sandbox: Sandbox
    client: httpx.AsyncClient
    contact_ids: list[int]
    deal_ids: list[int]
    seed_s: float
    new_deals: list[str] = field(default_factory=list)  # the last "deals new" call's, for the links
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


def _fill(conn: sqlite3.Connection, size: int) -> tuple[list[int], list[int]]:
    now, half = now_ms(), size // 2
    people = (
        {
            "email": f"seed.{i}@example.com",
            "firstname": f"First{i}",
            "lastname": "Seeded",
            "phone": f"+1555{i:07d}",
        }
        for i in range(half)
    )
    contact_ids = bulk.add_records(conn, "contacts", people, now)
    orders = (
        {"shopify_deal_key": f"order-{i}", "dealname": f"Order #{i}", "amount": "42.50",
         "pipeline": "default", "dealstage": "closedwon"}
        for i in range(size - half)
    )  # fmt: skip
    deal_ids = bulk.add_records(conn, "deals", orders, now)
    bulk.add_links(conn, ASSOCIATION_TYPES[("deals", "contacts")], zip(deal_ids, contact_ids, strict=False))
    return contact_ids, deal_ids


@asynccontextmanager
async def account(work: Path, size: int) -> AsyncIterator[Account]:
    config = SandboxConfig(
        db_path=work / f"sandbox-{size}.db", token=SecretStr(SANDBOX_TOKEN),
        rate_limit_per_10s=UNLIMITED, rate_limit_daily=UNLIMITED,
    )  # fmt: skip
    async with running_sandbox(config) as sandbox:
        headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        async with httpx.AsyncClient(base_url=sandbox.url, headers=headers, timeout=600) as client:
            key = {"name": "shopify_deal_key", "label": "Shopify deal key", "type": "string",
                   "fieldType": "text", "groupName": "dealinformation", "hasUniqueValue": True}  # fmt: skip
            (await client.post("/crm/v3/properties/deals", json=key)).raise_for_status()
            started = time.perf_counter()
            contact_ids, deal_ids = sandbox.state.store.run(lambda conn: _fill(conn, size))
            seed_s = time.perf_counter() - started
            yield Account(size, sandbox, client, contact_ids, deal_ids, seed_s)


def _upsert(object_type: str, id_property: str, ids: list[str], properties: dict[str, str]) -> Call:
    inputs = [{"id": i, "idProperty": id_property, "properties": properties} for i in ids]
    return f"/crm/v3/objects/{object_type}/batch/upsert", {"inputs": inputs}


def _call(acct: Account, kind: str, round_no: int, rng: random.Random) -> Call:
    """The call of one kind for one round: its path and body."""
    if kind == "contacts new":
        emails = [f"new.{round_no}.{j}@example.com" for j in range(INPUTS)]
        return _upsert("contacts", "email", emails, {"firstname": "New", "lastname": f"Round{round_no}"})
    if kind == "contacts existing":
        emails = [f"seed.{i}@example.com" for i in rng.sample(range(len(acct.contact_ids)), INPUTS)]
        return _upsert("contacts", "email", emails, {"firstname": f"Again{round_no}"})
    if kind == "deals new":
        keys = [f"new-{round_no}-{j}" for j in range(INPUTS)]
        order = {
            "dealname": f"Order {round_no}",
            "amount": "19.90",
            "pipeline": "default",
            "dealstage": "closedwon",
        }
        return _upsert("deals", "shopify_deal_key", keys, order)
    if kind == "deals existing":
        keys = [f"order-{i}" for i in rng.sample(range(len(acct.deal_ids)), INPUTS)]
        changes = {"dealstage": STAGES[round_no % 2], "amount": f"{round_no}.00"}
        return _upsert("deals", "shopify_deal_key", keys, changes)
    pairs = zip(acct.new_deals, rng.sample(acct.contact_ids, INPUTS), strict=True)
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]
    inputs = [{"from": {"id": str(d)}, "to": {"id": str(c)}, "types": types} for d, c in pairs]
    return "/crm/v4/associations/deals/contacts/batch/create", {"inputs": inputs}


async def _timed_call(acct: Account, kind: str, round_no: int, rng: random.Random) -> None:
    path, body = _call(acct, kind, round_no, rng)
    wall, cpu = time.perf_counter(), time.process_time()
    response = await acct.client.post(path, json=body)
    wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    if response.status_code not in (200, 201):
        raise RuntimeError(
            f"{kind} at {acct.size:,} records answered {response.status_code}: {response.text[:300]}"
        )
    if kind == "deals new":
        acct.new_deals = [result["id"] for result in response.json()["results"]]
    if round_no >= WARM_UP:
        acct.wall.setdefault(kind, []).append(wall)
        acct.cpu.setdefault(kind, []).append(cpu)


async def _dump_beside_upserts(acct: Account) -> tuple[float, int, list[float]]:
    """A full dump of the account read while 100-input upserts go on: its seconds and size, and
    the upserts' ms meanwhile."""
    during: list[float] = []

    async def read_dump() -> tuple[float, int]:
        started, size = time.perf_counter(), 0
        async with acct.client.stream("GET", "/_sandbox/dump") as streamed:
            async for chunk in streamed.aiter_raw():
                size += len(chunk)
        return time.perf_counter() - started, size

    reading = asyncio.create_task(read_dump())
    rng, round_no = random.Random(9), 1_000
    while not reading.done():
        path, body = _call(acct, "contacts existing", round_no, rng)
        started = time.perf_counter()
        (await acct.client.post(path, json=body)).raise_for_status()
        during.append((time.perf_counter() - started) * 1000)
        round_no += 1
        await asyncio.sleep(0.05)  # about the writer's pace at 19 calls/s
    seconds, size = await reading
    return seconds, size, during


def _median(acct: Account, kinds: tuple[str, ...], of: str = "wall") -> float:
    timed = acct.wall if of == "wall" else acct.cpu
    return statistics.median(ms for kind in kinds for ms in timed[kind])


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "sandbox")
    large_size = QUICK_LARGE if env.quick else LARGE
    rounds = QUICK_ROUNDS if env.quick else ROUNDS
    async with AsyncExitStack() as stack:
        small = await stack.enter_async_context(account(work, SMALL))
        large = await stack.enter_async_context(account(work, large_size))
        rngs = {small.size: random.Random(1), large.size: random.Random(1)}
        for round_no in range(rounds + WARM_UP):
            for kind in KINDS:
                for acct in (small, large) if round_no % 2 else (large, small):
                    await _timed_call(acct, kind, round_no, rngs[acct.size])
        dump_s, dump_bytes, during = await _dump_beside_upserts(large)
        db_mb = large.sandbox.config.db_path.stat().st_size / 2**20
    result, baseline = _median(large, UPSERTS), _median(small, UPSERTS)
    ratio = result / baseline
    kinds = "; ".join(
        f"{kind} {statistics.median(small.wall[kind]):.1f} -> {statistics.median(large.wall[kind]):.1f} ms"
        for kind in KINDS
    )
    cpu_small, cpu_large = _median(small, UPSERTS, "cpu"), _median(large, UPSERTS, "cpu")
    per_kind = {
        f"ms_{k.replace(' ', '_')}_{a.size}": statistics.median(a.wall[k])
        for k in KINDS
        for a in (small, large)
    }
    return Measured(
        result=result, unit="ms", baseline=baseline, baseline_unit="ms", ratio=ratio,
        met=ratio <= TARGET_RATIO,
        detail=f"median ms per 100-input call at {SMALL:,} -> {large.size:,} records ({rounds} rounds, "
        f"the sizes taking turns): {kinds}; process CPU per upsert {cpu_small:.1f} -> {cpu_large:.1f} ms; "
        f"seeded in bulk through the store (not HTTP) in {small.seed_s:.1f} s and {large.seed_s:.1f} s "
        f"({db_mb:,.0f} MiB file); a full dump of the large account ({dump_bytes / 2**20:,.0f} MiB) "
        f"took {dump_s:.1f} s while {len(during)} upserts ran beside it (median "
        f"{statistics.median(during):.1f} ms, max {max(during):.0f} ms)",
        extra={"small_records": SMALL, "large_records": large.size, "cpu_ms_small": cpu_small,
               "cpu_ms_large": cpu_large, "seed_s_large": large.seed_s, "db_mib_large": db_mb,
               "dump_s": dump_s, "upserts_during_dump": len(during), **per_kind},
    )  # fmt: skip


FIGURE = Figure(
    name="sandbox",
    title="sandbox upsert of 100 inputs at 1,000,000 records",
    target="<= 1.5x",
    baseline="the same calls at 1,000 records",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
