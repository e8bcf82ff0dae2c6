"""``shopsync simulate SCENARIO.jsonl --out account.json``: the whole pipeline on a scenario.

Real local Kafka (or ``KAFKA_BOOTSTRAP_SERVERS``), fresh topics under a unique prefix, the webhook
bridge (over HTTP, in simulation mode, so a delivery's received-at is the scenario's ``at``), the
stream worker (its own process; no live ticks: the scenario's ``tick`` lines advance its clock),
the writer, and the HubSpot sandbox (or ``--hubspot-url``). Lines are applied in file order; before
a tick, and at the end, it waits until everything is processed and written. The account is then
written to ``--out`` as the sandbox's dump, and the run's dead letters, HubSpot rejections, parked
deliveries and field problems are read from its own topics into ``Result.report`` (R7: the CLI
prints it and exits non-zero when a record was lost).

The scenario format (one JSON object per line; blank lines and lines starting with ``#`` are
skipped) is documented in the README.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import httpx
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from config import Settings
from devtools.localrun import (
    ServiceProcess,
    kafka_bootstrap,
    stop_together,
    unique_suffix,
    wait_until_worker_idle,
    wait_until_written,
)
from devtools.readback import read_back
from handlers import hubspot_paths as paths
from handlers.account_setup import add_missing_stages_at
from handlers.bridge import SIMULATED_RECEIVED_AT, build_app
from handlers.dashboard import start_dashboard
from handlers.hubspot_client import HubSpotClient
from handlers.importer import TOPICS as IMPORT_TOPICS
from handlers.importer import import_delivery
from handlers.loss import LossReport, dead_letter_record, read_report
from hubspot_sandbox import SandboxConfig, running_sandbox
from hubspot_sandbox.tiers import Tier
from localkafka.broker import free_port
from schemas.envelope import HubSpotContactDeletion, encode
from streams.ticker import append_ticks
from streams.topics import UnroutableError, ensure_topics, route, topic_name

SHOPIFY_SECRET = "simulate-shopify-secret"
SIMULATED_SHOP = "simulated.myshopify.com"
"""The shop of every line that names none (X3: the primary shop when some line names another)."""
HUBSPOT_SECRET = "simulate-hubspot-secret"
SANDBOX_TOKEN = "simulate-token"


class ScenarioError(ValueError):
    """A scenario line that cannot be applied; the message names the line."""


class Line(BaseModel):
    """One scenario line: at ``at``, exactly one of a Shopify delivery, an import record, a HubSpot
    contact deletion, or a clock tick."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    at: AwareDatetime
    shopify: str | None = None
    import_: Literal["customers", "orders", "products", "checkouts"] | None = Field(None, alias="import")
    hubspot: Literal["contact.deletion"] | None = None
    tick: Literal[True] | None = None
    written: Literal[True] | None = None
    """Only on a tick: before it, the writer has written everything too (see :func:`_apply`)."""
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    email: str | None = None
    shop: str | None = None
    """X3: the shop of a delivery or import record (``X-Shopify-Shop-Domain``); none: ``SIMULATED_SHOP``."""

    @model_validator(mode="after")
    def _one_kind(self) -> Line:
        kinds = [k for k in ("shopify", "import_", "hubspot", "tick") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError('give exactly one of "shopify", "import", "hubspot", "tick"')
        if (self.shopify or self.import_) and self.body is None:
            raise ValueError('"shopify" and "import" lines need a "body"')
        if self.hubspot and not self.email:
            raise ValueError('"hubspot": "contact.deletion" needs an "email"')
        if self.written and not self.tick:
            raise ValueError('"written" is for "tick" lines only')
        return self


def parse(path: Path) -> list[tuple[int, Line]]:
    """Every line of the scenario, validated; ``at`` never goes backwards."""
    lines: list[tuple[int, Line]] = []
    previous: datetime | None = None
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            line = Line.model_validate(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise ScenarioError(f"{path}:{number}: not JSON ({exc})") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            raise ScenarioError(f"{path}:{number}: {problems}") from exc
        if previous is not None and line.at < previous:
            raise ScenarioError(f'{path}:{number}: "at" goes backwards ({line.at} < {previous})')
        previous = line.at
        lines.append((number, line))
    return lines


def shopify_headers(body: bytes, line: Line) -> dict[str, str]:
    """A correctly signed delivery with fresh ids; the line's own headers override."""
    event_id = str(uuid.uuid4())
    headers = {
        "X-Shopify-Topic": str(line.shopify), "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Shop-Domain": line.shop or SIMULATED_SHOP,
        "X-Shopify-API-Version": "2026-04", "X-Shopify-Triggered-At": line.at.isoformat(),
        "Content-Type": "application/json", SIMULATED_RECEIVED_AT: line.at.isoformat(),
    }  # fmt: skip
    headers.update(line.headers or {})
    if not any(k.lower() == "x-shopify-hmac-sha256" for k in (line.headers or {})):
        digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(digest).decode()
    return headers


@dataclass(frozen=True)
class Live:
    """The pipeline of a finished scenario, still running: its settings, the account it produced,
    its loss report and the dashboard's address (``run(..., live=...)``)."""

    settings: Settings
    account: dict[str, Any]
    report: LossReport
    dashboard_url: str


LiveHook = Callable[[Live], Awaitable[None]]


@dataclass
class Result:
    account: dict[str, Any]
    lines: int
    dead_letters: dict[str, int]  # topic -> records
    report: LossReport = field(default_factory=LossReport)  # R7: what was lost, parked, or synced partly


async def run(
    scenario: list[tuple[int, Line]], bootstrap: str, work: Path, timeout_s: float,
    hubspot_url: str | None = None, hubspot_token: str | None = None, live: LiveHook | None = None,
    tier: Tier = "professional", commerce_objects: str = "deals",
) -> Result:  # fmt: skip
    """Run the scenario; against the bundled sandbox, or (``hubspot_url``) an account elsewhere.
    ``commerce_objects``: X1's mode (``SHOPSYNC_COMMERCE_OBJECTS``: deals, orders or both).
    With ``live``, once the account is read the dashboard is started and ``live`` is awaited
    while every service still runs (the demo keeps it up; tests look at the page). ``tier``: the
    bundled sandbox's HubSpot subscription; on ``free`` the operator's set-up step runs first
    (``shopsync hubspot add-stages``: the legacy stages added to the default pipeline, the only
    one a Free account has), and the writer uses that pipeline."""
    suffix = unique_suffix()
    bridge_port = free_port()
    named = {shop.lower() for _, line in scenario for shop in _shops_of(line)}
    several = bool(named - {SIMULATED_SHOP})  # X3: the lines' own shop is then the primary shop
    settings = Settings(
        primary_shop=SIMULATED_SHOP if several else None,
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"sim-{suffix}.", app_id=f"shopsync-sim-{suffix}",
        data_dir=work / "worker", session_timeout_s=6.0, tick_interval_s=0, simulation_mode=True,
        commit_interval_s=0.1,
        shopify_webhook_secrets=SecretStr(SHOPIFY_SECRET), hubspot_app_secret=SecretStr(HUBSPOT_SECRET),
        hubspot_token=SecretStr(hubspot_token or SANDBOX_TOKEN), writer_batch_window_ms=100,
        writer_link_wait_s=10, worker_metrics_port=free_port(), writer_metrics_port=free_port(),
        dashboard_port=0, dashboard_refresh_s=1.0, commerce_objects=commerce_objects,
    )  # fmt: skip
    await ensure_topics(settings, internal=True)
    if hubspot_url is not None:
        return await _pipeline(scenario, settings.model_copy(update={"hubspot_base_url": hubspot_url}),
                               work, bridge_port, timeout_s, own_sandbox=False, live=live)  # fmt: skip
    config = SandboxConfig(
        db_path=work / "sandbox.db", token=SecretStr(SANDBOX_TOKEN),
        webhook_url=f"http://127.0.0.1:{bridge_port}/webhooks/hubspot",
        webhook_secret=SecretStr(HUBSPOT_SECRET), tier=tier,
    )  # fmt: skip
    async with running_sandbox(config) as sandbox:
        settings = settings.model_copy(update={"hubspot_base_url": sandbox.url})
        if tier == "free":
            await add_missing_stages_at(sandbox.url, SANDBOX_TOKEN)
        return await _pipeline(scenario, settings, work, bridge_port, timeout_s, own_sandbox=True, live=live)


async def _pipeline(
    scenario: list[tuple[int, Line]], settings: Settings, work: Path, bridge_port: int, timeout_s: float,
    own_sandbox: bool, live: LiveHook | None = None,
) -> Result:  # fmt: skip
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", bridge_port).start()
    worker = ServiceProcess("worker", settings, work / "worker.log")
    writer = ServiceProcess("writer", settings, work / "writer.log")
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    hubspot = settings.hubspot_base_url
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with httpx.AsyncClient(timeout=30) as http, aiohttp.ClientSession(timeout=timeout) as session:
            posts = _Posts()
            for number, line in scenario:
                if line.shopify is not None:
                    send = functools.partial(_post_delivery, session, bridge_url, number, line)
                    posts.post(_identities(line), send)
                    continue
                await posts.finish()  # everything before a non-delivery line has been appended
                await _apply(
                    http, bridge_url, hubspot, settings, number, line, worker, timeout_s, own_sandbox
                )
            await posts.finish()
        await wait_until_worker_idle(settings, timeout_s, worker)
        await wait_until_written(settings, timeout_s)
        if own_sandbox:
            async with httpx.AsyncClient(base_url=hubspot) as http:
                account = (await http.get("/_sandbox/dump")).json()
        else:
            client = HubSpotClient(hubspot, settings.hubspot_token.get_secret_value())
            try:
                account = await read_back(client)
            finally:
                await client.close()
        report = await read_report(settings)
        dead = {
            name: sum(n for (where, _), n in report.dead_letters.items() if where == name)
            for name in ("shopify.deadletter", "hubspot.commands.dlq")
        }
        if live is not None:
            await _live(live, settings, account, report)
    finally:
        stop_together(worker, writer)
        await runner.cleanup()
    return Result(account=account, lines=len(scenario), dead_letters=dead, report=report)


log = logging.getLogger(__name__)
DELIVERIES_IN_FLIGHT = 8
"""Shopify lines posted to the bridge at once. A customer's lines still go one after another, in
file order, and every other kind of line waits for all deliveries before it (and they for it);
each delivery carries its line's instant (``SIMULATED_RECEIVED_AT``), so the worker decides it as
of that instant whatever was appended around it. One at a time, the 1,100 deliveries of the
200-customer demo spent 11 s waiting for the bridge's acks=all appends."""


def _shops_of(line: Line) -> list[str]:
    """The shops a line names (its ``shop``, an ``X-Shopify-Shop-Domain`` header)."""
    headers = {k.lower(): v for k, v in (line.headers or {}).items()}
    return [s for s in (line.shop, headers.get("x-shopify-shop-domain")) if s]


def _identities(line: Line) -> frozenset[str]:
    """What a delivery concerns, for ordering: its email, customer, tokens and id. Two lines that
    share any of these stay in file order (a checkout created without an email and updated with
    one is still one checkout); a line naming none shares the key of all such lines."""
    body = line.body or {}
    nested = body.get("customer")
    customer: dict[str, Any] = nested if isinstance(nested, dict) else {}
    resource = str(line.shopify).partition("/")[0]
    found = [
        ("email", body.get("email")), ("email", body.get("contact_email")), ("email", customer.get("email")),
        ("customer", customer.get("id")), ("customer", body.get("customer_id")),
        ("token", body.get("token")), ("token", body.get("cart_token")),
        ("token", body.get("checkout_token")),
        (resource, body.get("id")),
    ]  # fmt: skip
    if resource == "customers":
        found.append(("customer", body.get("id")))
    keys = frozenset(
        f"{what}:{str(value).strip().lower()}"
        for what, value in found
        if isinstance(value, str | int) and value != ""
    )
    return keys or frozenset({"unknown"})


class _Posts:
    """Deliveries in flight: at most :data:`DELIVERIES_IN_FLIGHT`; lines sharing an identity in order."""

    def __init__(self) -> None:
        self.last: dict[str, asyncio.Task[None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.slots = asyncio.Semaphore(DELIVERIES_IN_FLIGHT)

    def post(self, keys: frozenset[str], send: Callable[[], Awaitable[None]]) -> None:
        before = {self.last[key] for key in keys if key in self.last}

        async def run() -> None:
            for task in before:
                await task
            async with self.slots:
                await send()

        task = asyncio.create_task(run())
        self.tasks.append(task)
        for key in keys:
            self.last[key] = task

    async def finish(self) -> None:
        """Until every delivery posted so far is appended (the first failure is raised)."""
        tasks, self.tasks, self.last = self.tasks, [], {}
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


SHOPIFY_RETRIES = 8
"""After a failed delivery Shopify retries it 8 times (over about 4 hours: REFERENCE.md); the
simulation retries as often, a second apart and more each time (its Kafka is local)."""


async def _post_delivery(
    session: aiohttp.ClientSession, bridge: str, number: int, line: Line,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:  # fmt: skip
    """One delivery, posted with aiohttp (about half of what httpx costs a request here: the
    posts of a 1,100-delivery demo are CPU on the loop the bridge runs on too). A 503 (Kafka did
    not acknowledge in time, as on a loaded machine) is retried as Shopify retries it; the
    bridge's event ids make an append that landed after all harmless."""
    body = orjson.dumps(line.body)
    headers = shopify_headers(body, line)  # a retry is the same delivery: the same ids
    for attempt in range(SHOPIFY_RETRIES + 1):
        async with session.post(f"{bridge}/webhooks/shopify", data=body, headers=headers) as answer:
            if answer.status in (200, 401):  # 401: a line that sends a bad signature on purpose
                return
            text = await answer.text()
        if answer.status != 503 or attempt == SHOPIFY_RETRIES:
            raise ScenarioError(f"line {number}: the bridge answered {answer.status}: {text}")
        log.warning(
            "simulate: line %d answered 503, retried as Shopify would (attempt %d)", number, attempt + 1
        )
        await pause(1.0 + attempt)


async def _live(live: LiveHook, settings: Settings, account: dict[str, Any], report: LossReport) -> None:
    port = free_port()
    dashboard = await start_dashboard(settings, port)
    try:
        await live(Live(settings, account, report, f"http://{settings.dashboard_host}:{port}/"))
    finally:
        if dashboard is not None:
            await dashboard.cleanup()


async def _apply(
    http: httpx.AsyncClient, bridge: str, hubspot: str, settings: Settings, number: int, line: Line,
    worker: ServiceProcess, timeout_s: float, own_sandbox: bool = True,
) -> None:  # fmt: skip
    """A line that is not a Shopify delivery (those are posted by :class:`_Posts`)."""
    if line.import_ is not None:
        assert line.body is not None
        shop = line.shop or SIMULATED_SHOP
        delivery = import_delivery(line.import_, line.body, shop, "2026-04")
        delivery = delivery.model_copy(update={"received_at": line.at})
        try:
            name, key = route(IMPORT_TOPICS[line.import_], line.body, settings.rule_config().key_prefix(shop))
            target, value = topic_name(settings, name), encode(delivery)
        except UnroutableError as exc:  # as the import does: a record without identity is dead-lettered
            target, key = topic_name(settings, "shopify.deadletter"), None
            value = dead_letter_record(f"import {line.import_}: {exc}", topic="import", key=None,
                                       original=encode(delivery))  # fmt: skip
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(target, value, key=key)
        finally:
            await producer.stop()
    elif line.hubspot is not None:
        # HubSpot's events are stamped by the bridge's simulated clock (the sandbox that sends
        # them runs on the wall clock); deliveries carry their own instant.
        await http.post(f"{bridge}/_simulation/clock", json={"at": line.at.isoformat()})
        await _delete_contact(http, hubspot, settings, number, line, worker, timeout_s, own_sandbox)
    else:
        await wait_until_worker_idle(settings, timeout_s, worker)
        if line.written:
            # The hours a tick stands for would let the writer write everything before it; a
            # tick appended while it is behind can bring an archive into the same round as the
            # record's creation, and the round then writes neither (HubSpot ends the same, but
            # nothing was archived). Every tick waiting cost the demo 12 s (0.75 s a tick), so
            # a scenario asks for it where what the tick fires depends on it.
            await wait_until_written(settings, timeout_s)
        await append_ticks(settings, line.at)


async def _delete_contact(
    http: httpx.AsyncClient, hubspot: str, settings: Settings, number: int, line: Line,
    worker: ServiceProcess, timeout_s: float, own_sandbox: bool,
) -> None:  # fmt: skip
    """Delete the contact in HubSpot. The bundled sandbox then sends its signed webhook to the
    bridge; an account elsewhere sends it to its app's configured URL, not to this bridge, so
    then the deletion event is appended here, as the bridge would have appended it."""
    await wait_until_worker_idle(settings, timeout_s, worker)
    await wait_until_written(settings, timeout_s)  # the contact must exist in HubSpot to be deleted there
    email = str(line.email)
    auth = {"Authorization": f"Bearer {settings.hubspot_token.get_secret_value()}"}
    search = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}]}
    found = (await http.post(f"{hubspot}{paths.search('contacts')}", json=search, headers=auth)).json()
    if not found.get("results"):
        raise ScenarioError(f"line {number}: no HubSpot contact has the email {email!r}")
    contact_id = found["results"][0]["id"]
    events = topic_name(settings, "hubspot.events")
    before = await _count(settings, events)
    await http.delete(f"{hubspot}{paths.record('contacts', str(contact_id))}", headers=auth)
    if not own_sandbox:
        record = HubSpotContactDeletion(event_id=f"sim-{number}", object_id=int(contact_id), email=email,
                                        occurred_at=line.at)  # fmt: skip
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(events, encode(record), key=str(contact_id).encode())
        finally:
            await producer.stop()
        return
    for _ in range(100):  # the webhook is delivered in the background
        if await _count(settings, events) > before:
            return
        await asyncio.sleep(0.1)
    raise ScenarioError(f"line {number}: the contact.deletion webhook never reached the bridge")


async def _count(settings: Settings, topic: str) -> int:
    from streams.topic_reader import read_all

    return len(await read_all(settings.kafka_bootstrap_servers, topic))


def simulate(
    path: Path,
    out: Path,
    timeout_s: float = 120.0,
    hubspot_url: str | None = None,
    hubspot_token: str | None = None,
    commerce_objects: str = "deals",
) -> Result:
    """Run a scenario file end to end and write the resulting account to ``out``."""
    scenario = parse(path)
    work = Path(tempfile.mkdtemp(prefix="shopsync-simulate-"))
    with kafka_bootstrap(Path(".local/simulate-kafka")) as bootstrap:
        result = asyncio.run(
            run(
                scenario,
                bootstrap,
                work,
                timeout_s,
                hubspot_url,
                hubspot_token,
                commerce_objects=commerce_objects,
            )
        )
    out.write_bytes(orjson.dumps(result.account, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return result
