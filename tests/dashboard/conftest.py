"""One simulated store through the whole pipeline, kept live while the dashboard is looked at.

The fixture runs ``simulate`` on a generated store (with a contact deleted in HubSpot, C4: S1 must
not count it; the reports read the customer from the deal, which keeps its Shopify customer id)
and, while the bridge, worker, writer and sandbox still run, collects what the tests
check: the dashboard's JSON, its page as headless Chromium renders it (DOM and screenshot), every
service's ``/metrics``, the sandbox's request counts, and a replay of the run's topics.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY, generate_latest

from devtools.samplestore import generate, scenario_lines
from devtools.simulate import Live, parse, run
from handlers.replay import rebuild
from streams.topics import SHOPIFY_RESOURCE_TOPICS, topic_name

pytestmark = pytest.mark.kafka

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


@dataclass
class LiveRun:
    account: dict[str, Any] = field(default_factory=dict)
    scenario: list[dict[str, Any]] = field(default_factory=list)
    json: dict[str, Any] = field(default_factory=dict)  # endpoint -> body
    dom: str = ""
    screenshot: Path | None = None
    bridge_metrics_before: str = ""
    bridge_metrics: str = ""
    worker_metrics: str = ""
    writer_metrics: str = ""
    sandbox_stats: dict[str, Any] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
    replayed_reports: dict[str, Any] = field(default_factory=dict)


async def _settled(http: httpx.AsyncClient, url: str, deals: int, timeout_s: float = 60) -> None:
    """Wait until the dashboard has read every deal and refreshed after the pipeline went idle."""
    started = time.time()
    while time.time() - started < timeout_s:
        summary = (await http.get(url + "api/summary.json")).json()
        health = (await http.get(url + "api/health.json")).json()
        if (
            summary["deals"] == deals
            and health["refreshed_at"] > started
            and all(health["metrics_reachable"].values())
        ):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the dashboard never caught up with the pipeline")


ENDPOINTS = ("/api/reports.json", "/api/summary.json", "/api/health.json")


async def _endpoints(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    return {endpoint: (await http.get(url + endpoint.lstrip("/"))).json() for endpoint in ENDPOINTS}


def _moving(document: dict[str, Any]) -> dict[str, Any]:
    """What changes while the pipeline works (every number but the refresh's own time)."""
    return {e: {k: v for k, v in body.items() if k != "refreshed_at"} for e, body in document.items()}


async def _still_capture(
    http: httpx.AsyncClient, url: str, timeout_s: float = 120
) -> tuple[dict[str, Any], str]:
    """The JSON endpoints and the page's DOM of one moment: the endpoints are read before and
    after the browser loads the page, and the pair counts only when nothing moved in between.
    Once the deals are all in, the worker may still fire or cancel a timer or the writer make a
    call (a CI run saw ``timers_pending`` go 7 -> 5 between the JSON and the page); a page
    compared with numbers of another moment would fail for a change, not for a wrong number."""
    started = time.time()
    while time.time() - started < timeout_s:
        before = await _endpoints(http, url)
        dom = await _chromium("--dump-dom", url)
        after = await _endpoints(http, url)
        if _moving(before) == _moving(after):
            return after, dom
        await asyncio.sleep(1.0)
    raise TimeoutError("the dashboard's numbers never held still while the page was loaded")


async def _idle_worker_metrics(http: httpx.AsyncClient, url: str, timeout_s: float = 30) -> str:
    """The worker's metrics once its lag gauges read 0 (they refresh every few seconds, so a
    scrape right after the pipeline went idle can still show the last commits pending: a CI run
    saw it). A lag that never falls to 0 is returned as it is, and the test fails on it."""
    started = time.time()
    while True:
        text = (await http.get(url)).text
        lags = [line for line in text.splitlines() if line.startswith("shopsync_worker_consumer_lag{")]
        if (
            lags and all(float(line.rsplit(" ", 1)[1]) == 0 for line in lags)
        ) or time.time() - started > timeout_s:
            return text
        await asyncio.sleep(1.0)


async def _chromium(*args: str) -> str:
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs Debian's package)"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--window-size=1400,1900", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out.decode()


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # every topic's partitions
        tps = {t: [TopicPartition(t, p) for p in consumer.partitions_for_topic(t) or ()] for t in topics}
        consumer.assign([tp for parts in tps.values() for tp in parts])
        return {topic: sum((await consumer.end_offsets(parts)).values()) for topic, parts in tps.items()}
    finally:
        await consumer.stop()


@pytest.fixture(scope="package")  # one run for every test module here
async def live_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    work = tmp_path_factory.mktemp("dashboard")
    store = generate(customers=15, seed=3)
    lines = scenario_lines(store, seed=3, delete_in_hubspot=1)
    path = work / "scenario.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line, default=str) for line in lines))
    collected = LiveRun(scenario=[orjson.loads(orjson.dumps(line, default=str)) for line in lines])
    collected.bridge_metrics_before = generate_latest(REGISTRY).decode()

    started = time.monotonic()

    def mark(step: str) -> None:
        # printed, so a failed set-up shows how far it got and when (a clean-clone CI run once
        # hung here past pytest's 300 s with the pipeline idle from its 9th second; no step named)
        print(f"dashboard fixture: {step} at {time.monotonic() - started:.1f} s", flush=True)

    async def look(live: Live) -> None:
        s, url = live.settings, live.dashboard_url
        collected.account = live.account
        mark("pipeline idle, looking")
        async with httpx.AsyncClient(timeout=10) as http:
            await _settled(http, url, len(live.account["deals"]))
            mark("dashboard settled")
            collected.json, collected.dom = await _still_capture(http, url)
            mark("page captured")
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            await _chromium(f"--screenshot={shot}", url)
            mark("screenshot taken")
            collected.screenshot = shot
            collected.bridge_metrics = generate_latest(REGISTRY).decode()
            collected.worker_metrics = await _idle_worker_metrics(
                http, f"http://{s.metrics_host}:{s.worker_metrics_port}/metrics"
            )
            collected.writer_metrics = (
                await http.get(f"http://{s.metrics_host}:{s.writer_metrics_port}/metrics")
            ).text
            collected.sandbox_stats = (await http.get(f"{s.hubspot_base_url}/_sandbox/stats")).json()
            mark("metrics scraped")
        shopify = [topic_name(s, name) for name in SHOPIFY_RESOURCE_TOPICS.values()]
        async with asyncio.timeout(60):
            collected.end_offsets = await _end_offsets(s.kafka_bootstrap_servers, shopify)
        mark("end offsets read")
        last = max(datetime.fromisoformat(line["at"].replace("Z", "+00:00")) for line in collected.scenario)
        async with asyncio.timeout(90):
            collected.replayed_reports = (await rebuild(s, until=last)).reports
        mark("replayed")

    # 100 s for the worker to go idle and 100 for the writer: within pytest's 300 s with the
    # look, so a pipeline that never settles fails naming what lagged instead of timing out
    result = await run(parse(path), kafka_bootstrap, work, 100, live=look)
    mark("simulate done")
    assert not any(result.dead_letters.values()), result.dead_letters
    return collected
