"""The real parts the HTTP-side figures run: the bridge, worker and writer as their own processes,
the HubSpot sandbox in the figure's process, the load generator as a process of its own.

Each figure gets fresh topics (a unique prefix) and consumer groups on the run's shared broker,
so figures never see each other's records. The sandbox runs in the figure's process because that
process otherwise only waits, and because its SQLite file then answers exactly, and without any
HTTP polling, when each record was written (``objects.created_ms``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from pydantic import SecretStr

from bench.backlog import Key, SandboxRecord
from bench.call_log import CallLog
from bench.suite import BenchEnv
from config import Settings
from config.privacy import G1_OFF
from devtools.localrun import ServiceProcess, unique_suffix
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from hubspot_sandbox.tiers import Tier
from localkafka.broker import free_port
from streams.topics import ensure_topics

SHOPIFY_SECRET = "bench-shopify-secret"
HUBSPOT_SECRET = "bench-hubspot-secret"
SANDBOX_TOKEN = "bench-sandbox-token"
SHOP_DOMAIN = "bench-store.myshopify.com"
HUBSPOT_RATE_PER_10S = 190  # a Professional/Enterprise account, as the figures say


async def fresh_settings(env: BenchEnv, figure: str, **update: Any) -> Settings:
    """Settings of one figure's run: its own topics (created here), groups, data dir and port."""
    suffix = unique_suffix()
    settings = Settings(
        kafka_bootstrap_servers=env.bootstrap, topic_prefix=f"bench-{figure}-{suffix}.",
        app_id=f"bench-{figure}-{suffix}", data_dir=Path(env.scratch_dir) / figure / "worker",
        session_timeout_s=6.0, bridge_port=free_port(), shopify_webhook_secrets=SecretStr(SHOPIFY_SECRET),
        hubspot_app_secret=SecretStr(HUBSPOT_SECRET), hubspot_token=SecretStr(SANDBOX_TOKEN),
        **{"hubspot_rate_limit_per_10s": HUBSPOT_RATE_PER_10S, **G1_OFF, **update},
    )  # fmt: skip
    # G1's settings off unless a figure asks (``update``): as in bench/workers.py.
    await ensure_topics(settings, internal=True)
    return settings


def work_dir(env: BenchEnv, figure: str) -> Path:
    path = Path(env.scratch_dir) / figure
    path.mkdir(parents=True, exist_ok=True)
    return path


def shopify_headers(
    body: bytes, topic: str, event_id: str, triggered_at: str = "2026-03-02T09:00:00Z"
) -> dict[str, str]:
    """A delivery as Shopify signs it (HMAC-SHA256 of the raw body with the app's secret)."""
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(), "X-Shopify-Topic": topic,
        "X-Shopify-Event-Id": event_id, "X-Shopify-Webhook-Id": f"wh-{event_id}",
        "X-Shopify-Shop-Domain": SHOP_DOMAIN, "X-Shopify-API-Version": "2026-04",
        "X-Shopify-Triggered-At": triggered_at, "Content-Type": "application/json",
    }  # fmt: skip


def bridge_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.bridge_port}"


async def start_bridge(settings: Settings, work: Path, timeout_s: float = 30.0) -> ServiceProcess:
    """``shopsync bridge`` as its own process, once its ``/readyz`` says Kafka takes appends."""
    bridge = ServiceProcess("bridge", settings, work / "bridge.log")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(base_url=bridge_url(settings), timeout=5) as http:
        while True:
            if not bridge.alive():
                raise RuntimeError(f"the bridge exited:\n{bridge.log_tail()}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return bridge
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                bridge.stop()
                raise TimeoutError(f"the bridge was not ready in {timeout_s} s:\n{bridge.log_tail()}")
            await asyncio.sleep(0.2)


async def wait_for_log(process: ServiceProcess, text: str, timeout_s: float) -> None:
    """Until ``text`` shows in the process's log (fails at once if the process died)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while text not in (process.log_path.read_text(errors="replace") if process.log_path.exists() else ""):
        if not process.alive():
            raise RuntimeError(f"the {process.service} process exited:\n{process.log_tail()}")
        if loop.time() > deadline:
            raise TimeoutError(f"{process.service} did not log {text!r} in {timeout_s} s")
        await asyncio.sleep(0.2)


class LoggedSandbox(Sandbox):
    """A sandbox whose app notes every call in ``call_log`` (``bench.call_log``); the sandbox's
    own code is unchanged, the log's middleware is put in front of its own."""

    def __init__(self, config: SandboxConfig, call_log: CallLog) -> None:
        super().__init__(config)
        self.call_log = call_log

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.insert(0, self.call_log.middleware())
        return app


@asynccontextmanager
async def bench_sandbox(
    work: Path, webhook_url: str | None = None, *, tier: Tier = "professional",
    rate_limit_per_10s: int = HUBSPOT_RATE_PER_10S, call_log: CallLog | None = None,
) -> AsyncIterator[Sandbox]:  # fmt: skip
    """A fresh sandbox, by default at HubSpot's Professional limit (190 calls per rolling 10 s);
    with ``call_log``, one that logs every call into it."""
    config = SandboxConfig(
        db_path=work / "sandbox.db", token=SecretStr(SANDBOX_TOKEN), tier=tier,
        rate_limit_per_10s=rate_limit_per_10s,
        webhook_url=webhook_url, webhook_secret=SecretStr(HUBSPOT_SECRET if webhook_url else ""),
    )  # fmt: skip
    if call_log is None:
        async with running_sandbox(config) as sandbox:
            yield sandbox
        return
    logged = LoggedSandbox(config, call_log)
    try:
        await logged.start()
        yield logged
    finally:
        await logged.stop()


def contacts_created_ms(sandbox: Sandbox) -> dict[str, int]:
    """Each contact's (normalised) email and when the sandbox created it (epoch ms): read from
    its SQLite file, so it costs the server nothing while a figure runs."""
    rows = sandbox.state.store.run(
        lambda conn: conn.execute(
            "SELECT p.norm, o.created_ms FROM objects o JOIN prop_values p ON p.object_id = o.id "
            "WHERE o.type = 'contacts' AND p.name = 'email'"
        ).fetchall()
    )
    return {str(row[0]): int(row[1]) for row in rows}


UNIQUE_PROPERTIES = ("email", "shopify_deal_key", "shopify_line_item_key", "shopify_product_key")
"""The unique property each object type's records are named by (``streams.rules.keys``)."""


def records_by_key(sandbox: Sandbox) -> dict[Key, list[SandboxRecord]]:
    """Every object (archived ones too) by (type, unique property, normalised value), from the
    sandbox's SQLite file after a run."""
    marks = ", ".join("?" for _ in UNIQUE_PROPERTIES)
    rows = sandbox.state.store.run(
        lambda conn: conn.execute(
            "SELECT o.type, p.name, p.norm, o.id, o.created_ms, o.archived_ms FROM objects o "
            f"JOIN prop_values p ON p.object_id = o.id WHERE p.name IN ({marks})",
            UNIQUE_PROPERTIES,
        ).fetchall()
    )
    found: dict[Key, list[SandboxRecord]] = {}
    for kind, name, value, object_id, created_ms, archived_ms in rows:
        record = SandboxRecord(int(object_id), int(created_ms), archived_ms is not None)
        found.setdefault((str(kind), str(name), str(value)), []).append(record)
    return found


def association_rows(sandbox: Sandbox) -> set[tuple[int, int, int]]:
    """Every (from id, to id, association type id) the sandbox holds (both directions of a link)."""
    rows = sandbox.state.store.run(
        lambda conn: conn.execute("SELECT from_id, to_id, type_id FROM associations").fetchall()
    )
    return {(int(a), int(b), int(t)) for a, b, t in rows}


def api_calls(sandbox: Sandbox) -> tuple[int, int]:
    """HubSpot API calls the sandbox was asked so far, and how many it answered 429."""
    snapshot = sandbox.state.stats.snapshot()
    return int(snapshot["total"]), int(snapshot["rate_limited"])


async def run_loadgen(*args: str) -> dict[str, Any]:
    """``python -m bench.loadgen ARGS`` in its own process; its JSON summary."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode}):\n{err.decode()[-2000:]}")
    summary: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return summary


def start_pipeline(settings: Settings, work: Path) -> tuple[ServiceProcess, ServiceProcess]:
    """``shopsync worker`` and ``shopsync writer`` as their own processes."""
    return ServiceProcess("worker", settings, work / "worker.log"), ServiceProcess(
        "writer", settings, work / "writer.log"
    )


def stop_all(*processes: ServiceProcess) -> None:
    for process in processes:
        process.stop()


WARM_UP_EMAIL = "warm.up@bench.example.com"


async def warm_up(
    settings: Settings, sandbox: Sandbox, worker: ServiceProcess, timeout_s: float = 120
) -> None:
    """One delivery all the way through the bridge, worker and writer into the sandbox: after it,
    every part has started, joined its group and set HubSpot up, so a figure times only its load."""
    from devtools.samplestore import customer_body

    body = orjson.dumps(customer_body(1, WARM_UP_EMAIL, "Warm", "Up", datetime.now(UTC)))
    async with httpx.AsyncClient(base_url=bridge_url(settings), timeout=10) as http:
        answer = await http.post(
            "/webhooks/shopify", content=body, headers=shopify_headers(body, "customers/create", "warm-up")
        )
    if answer.status_code != 200:
        raise RuntimeError(f"the bridge answered the warm-up delivery {answer.status_code}: {answer.text}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while WARM_UP_EMAIL not in contacts_created_ms(sandbox):
        if not worker.alive():
            raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
        if loop.time() > deadline:
            raise TimeoutError(f"the warm-up delivery was not written to HubSpot in {timeout_s} s")
        await asyncio.sleep(0.2)


def cpu_seconds(process: ServiceProcess) -> float:
    """CPU time (user + system) the process has used so far, from ``/proc`` (Linux; NaN elsewhere).
    Per request, it says what a server costs even when other work shares the cores and skews rates."""
    try:
        fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
