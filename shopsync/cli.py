"""``shopsync``: the one command-line entry point; a subcommand per service and tool."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from config import Settings
from handlers.loss import LossReport
from shopsync import __version__


def _settings(privacy_key: bool = True) -> Settings:
    """The configuration from the environment. ``privacy_key``: the command seals, opens or
    pseudonymises (G1's settings, on by default), so the key of the pseudonyms and key ids must be
    there at start-up, not found missing at the first record."""
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's ValidationError, shown without secrets
        raise click.ClickException(f"invalid configuration: {exc}") from exc
    if privacy_key:
        try:
            settings.require_privacy_key()
        except ValueError as exc:
            raise click.ClickException(f"invalid configuration: {exc}") from exc
    return settings


COMMERCE_OBJECTS = click.option(
    "--commerce-objects", type=click.Choice(["deals", "orders", "deals,orders"]), default="deals",
    show_default=True,
    help="X1: what journeys become in HubSpot: Deals (the legacy ecommerce pipeline), Orders and Carts, "
    "or both (SHOPSYNC_COMMERCE_OBJECTS).",
)  # fmt: skip
ALLOW_LOSS = click.option(
    "--allow-loss", is_flag=True, help="Exit 0 even when a record was dead-lettered (lost); the report "
    "is printed all the same.",
)  # fmt: skip
"""The one switch, on every command that runs a pipeline, that relaxes R7's non-zero exit."""


def _report_and_exit(report: LossReport, allow_loss: bool, printed: bool = False) -> None:
    """Print the loss report (stderr: stdout stays each command's own output; ``printed``: it was
    already) and exit with ``EXIT_LOSS`` when a record was lost, unless ``--allow-loss`` (R7)."""
    for line in [] if printed else report.render():
        click.echo(line, err=True)
    code = report.exit_code(allow_loss)
    if code:
        click.echo(f"exit {code}: a record was lost (see the dead letters above; --allow-loss "
                   "accepts it)", err=True)  # fmt: skip
        sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shopsync")
def main() -> None:
    """Keep a HubSpot account in step with a Shopify store, through Kafka.

    Every setting comes from the environment; see the README's configuration table.
    """


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for development and tests, fetched from
    Maven Central; needs Java 17+ and Maven, no Docker."""


@kafka.command("start")
@click.option(
    "--dir",
    "run_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Data and log folder [default: $SHOPSYNC_KAFKA_DIR or .local/kafka].",
)
@click.option("--port", type=int, default=None, help="Listener port [default: a free port].")
@click.option("--version", "version", default=None, help="Kafka version from Maven Central.")
@click.option("--keep-data", is_flag=True, help="Keep the data of a previous run.")
def kafka_start(run_dir: Path | None, port: int | None, version: str | None, keep_data: bool) -> None:
    """Start the broker in the background and print its bootstrap address."""
    from localkafka import DEFAULT_KAFKA_VERSION, BrokerError, start

    try:
        info = start(run_dir, port=port, version=version or DEFAULT_KAFKA_VERSION, fresh=not keep_data)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(info.bootstrap)
    click.echo(
        f"Kafka {info.kafka_version} started in {info.started_in_s:.1f} s (pid {info.pid}, "
        f"data in {info.run_dir}). Use: export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap}",
        err=True,
    )


@kafka.command("stop")
@click.option("--dir", "run_dir", type=click.Path(path_type=Path), default=None)
def kafka_stop(run_dir: Path | None) -> None:
    """Stop the broker started from that folder."""
    from localkafka import stop

    click.echo("stopped" if stop(run_dir) else "no broker was running")


@kafka.command("status")
@click.option("--dir", "run_dir", type=click.Path(path_type=Path), default=None)
def kafka_status(run_dir: Path | None) -> None:
    """Print the running broker's bootstrap address (exit 1 if none runs)."""
    from localkafka import status

    info = status(run_dir)
    if info is None:
        click.echo("no broker is running", err=True)
        sys.exit(1)
    click.echo(info.bootstrap)


@kafka.command("fetch")
@click.option("--version", "version", default=None, help="Kafka version from Maven Central.")
def kafka_fetch(version: str | None) -> None:
    """Download the broker's jars into the cache (done by `start` when needed)."""
    from localkafka import DEFAULT_KAFKA_VERSION, BrokerError, fetch

    try:
        click.echo(fetch(version or DEFAULT_KAFKA_VERSION))
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def topics() -> None:
    """Create every topic the project declares (idempotent) and list them."""
    from streams.topics import TOPICS, ensure_topics, key_topic, topic_name

    settings = _settings(privacy_key=False)
    try:
        created = asyncio.run(ensure_topics(settings))
    except Exception as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from exc
    for t in TOPICS:
        name = topic_name(settings, t.name)
        state = "created" if created[name] else "exists"
        policy = "compact" if t.compacted else "delete"
        retention = "forever" if t.retention_ms < 0 else f"{t.retention_ms // 86_400_000} d"
        click.echo(f"{state:8} {name:40} key={t.key}; {policy}, retention {retention}")
    if settings.seal_personal_data:  # G1: the data keys sealed records open with
        name = key_topic(settings)
        state = "created" if created[name] else "exists"
        click.echo(f"{state:8} {name:40} key=<shop>/<key ref>; compact, the data keys (G1)")


@main.command()
def worker() -> None:
    """Run the stream worker (faust): Shopify topics in, HubSpot commands out."""
    from handlers.sealer import opener_for
    from streams.worker import run_worker

    settings = _settings()
    run_worker(settings, opener_for(settings))


@main.command()
def bridge() -> None:
    """Run the webhook bridge: Shopify's and HubSpot's webhooks in, Kafka appends out.

    Listens on SHOPSYNC_BRIDGE_HOST:SHOPSYNC_BRIDGE_PORT; POST /webhooks/shopify (needs
    SHOPIFY_WEBHOOK_SECRETS), POST /webhooks/hubspot (needs HUBSPOT_APP_SECRET), GET /healthz, /readyz.
    """
    from handlers.bridge import run_bridge

    settings = _settings()
    if not settings.webhook_secrets():
        raise click.ClickException("SHOPIFY_WEBHOOK_SECRETS is not set (the Shopify app's client secret)")
    run_bridge(settings)


@main.command(name="import")
@click.option(
    "--shop",
    "shops",
    multiple=True,
    help="The shop: example.myshopify.com, or a full base URL; repeat it for several shops (X3).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where progress is kept (delete it to import from scratch) [default: "
    ".local/import-state.json, with --graphql .local/bulk-import-state.json]; with several shops, "
    "one file per shop beside it (import-state.<shop>.json).",
)
@click.option(
    "--resources",
    default=None,
    help="[default: products,customers,orders,checkouts; with --sample-store also companies] With "
    "--graphql, companies too (B2B, Shopify Plus).",
)
@click.option("--api-version", default=None, help="[default: 2026-04, with --graphql 2026-07]")
@click.option(
    "--graphql",
    is_flag=True,
    help="Through the GraphQL Admin API's bulk operations (SPEC I1): one JSONL export per "
    "resource, downloaded resumably, instead of REST pages.",
)
@click.option(
    "--from-jsonl",
    "from_jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --graphql: import this downloaded bulk export with no network but Kafka (an air "
    "gap); needs --resource and one --shop (the records' shop).",
)
@click.option("--resource", default=None, help="What the --from-jsonl file holds: customers, orders, "
              "products or checkouts (abandoned checkouts).")  # fmt: skip
@click.option(
    "--sample-store",
    "sample_customers",
    type=int,
    default=None,
    metavar="CUSTOMERS",
    help="With --graphql: serve the sample store of CUSTOMERS customers through a local Admin API "
    "in this process and import it (the demo; no Shopify, no token needed).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="With --graphql: records appended between two saved offsets (a hard kill re-appends at "
    "most this many, which their event ids make harmless).",
)
@ALLOW_LOSS
def import_(
    shops: tuple[str, ...],
    state_path: Path | None,
    resources: str | None,
    api_version: str | None,
    graphql: bool,
    from_jsonl: Path | None,
    resource: str | None,
    sample_customers: int | None,
    checkpoint_every: int,
    allow_loss: bool,
) -> None:
    """Initial import (C5): append each shop's customers, orders, products and abandoned
    checkouts as import events, each record with its shop (X3). Resumable: run it again after a
    crash or Ctrl-C and it goes on where it stopped. Needs SHOPIFY_ADMIN_TOKEN (for several
    shops: 'shop.myshopify.com=token' entries, comma-separated).

    Records without an identity (no id or token) cannot be appended where they belong: they are
    dead-lettered, reported by reason, and the command exits 3, unless --allow-loss."""
    if graphql or from_jsonl or sample_customers is not None:
        _graphql_import(
            shops, state_path, resources, api_version, from_jsonl, resource, sample_customers, allow_loss,
            checkpoint_every,
        )  # fmt: skip
        return
    if not shops:
        raise click.UsageError("--shop is required (or --graphql --sample-store N)")
    state_path = state_path or Path(".local/import-state.json")
    api_version = api_version or "2026-04"
    from handlers.importer import import_plan, run_import
    from shopsync import import_cli

    settings = _settings()
    chosen = _import_resources(resources)
    plan = import_plan(settings, shops, state_path)
    missing = [p.shop for p in plan if not p.token]
    if missing:
        raise click.ClickException(
            f"SHOPIFY_ADMIN_TOKEN has no token for {', '.join(missing)} (the app's Admin API access token)"
        )
    from streams.runtime import tune_gc

    report = LossReport()
    tune_gc()
    progress = import_cli.progress_display()
    import_cli.each_shop(
        plan,
        lambda shop: run_import(
            settings, shop.url, shop.token, shop.state_path,
            resources=chosen, api_version=api_version, report=report, progress=progress,
        ),
    )  # fmt: skip
    _report_and_exit(report, allow_loss)


def _import_resources(resources: str | None, known: tuple[str, ...] | None = None) -> tuple[str, ...]:
    from handlers.importer import RESOURCES

    if resources is None:
        return RESOURCES
    known = known or RESOURCES
    chosen = tuple(r.strip() for r in resources.split(",") if r.strip())
    unknown = set(chosen) - set(known)
    if unknown:
        raise click.BadParameter(f"unknown resources {sorted(unknown)}; choose from {known}")
    return chosen


def _graphql_import(
    shops: tuple[str, ...],
    state_path: Path | None,
    resources: str | None,
    api_version: str | None,
    from_jsonl: Path | None,
    resource: str | None,
    sample_customers: int | None,
    allow_loss: bool,
    checkpoint_every: int = 1000,
) -> None:
    """``import --graphql``: a shop's bulk operations, a downloaded export, or the sample store."""
    from handlers.bulk_import import BULK_API_VERSION, BULK_RESOURCES
    from handlers.importer import import_plan
    from shopsync import import_cli

    settings = _settings()
    chosen = _import_resources(resources, BULK_RESOURCES)
    report = LossReport()
    version = api_version or BULK_API_VERSION
    if sample_customers is not None:
        chosen = BULK_RESOURCES if resources is None else chosen
        import_cli.import_sample_store(settings, sample_customers, chosen, report)
    elif from_jsonl is not None:
        if resource not in BULK_RESOURCES or len(shops) != 1:
            raise click.UsageError(f"--from-jsonl needs --resource (one of {BULK_RESOURCES}) and one --shop")
        import_cli.import_file(settings, from_jsonl, str(resource), shops[0], version, report)
    else:
        if not shops:
            raise click.UsageError("--shop is required (or --sample-store N)")
        plan = import_plan(settings, shops, state_path or Path(".local/bulk-import-state.json"))
        missing = [p.shop for p in plan if not p.token]
        if missing:
            raise click.ClickException(f"SHOPIFY_ADMIN_TOKEN has no token for {', '.join(missing)}")
        import_cli.import_shops(settings, plan, chosen, version, report, checkpoint_every)
    _report_and_exit(report, allow_loss)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only print how HubSpot differs from what it should hold.")
@click.option("--until", default=None, help="Advance the clock to this ISO instant at the end "
              "[default: the newest record's time].")  # fmt: skip
@ALLOW_LOSS
def replay(dry_run: bool, until: str | None, allow_loss: bool) -> None:
    """Rebuild what HubSpot should hold from the topics, from the beginning; send it to the
    writer (hubspot.commands), or with --dry-run print the diff against the account at
    HUBSPOT_BASE_URL (the sandbox or a real one).

    Reports the records it could not rebuild (unreadable or dead-lettered) and the field problems,
    by reason; exits 3 when a record was lost, unless --allow-loss."""
    from datetime import datetime

    from handlers.hubspot_client import HubSpotClient
    from handlers.replay import desired_commands, diff, read_account, rebuild, send
    from shopsync.import_cli import progress_display
    from streams.runtime import tune_gc

    settings = _settings()
    end = datetime.fromisoformat(until) if until else None
    tune_gc()
    rebuilt = asyncio.run(rebuild(settings, end, progress=progress_display()))
    click.echo(f"replayed {rebuilt.records_read} records ({len(rebuilt.skipped)} unreadable, skipped); "
               f"{rebuilt.command_count} commands from the rules", err=True)  # fmt: skip
    if not dry_run:
        sent = asyncio.run(
            send(settings, desired_commands(rebuilt, settings.rule_config()), rebuilt.subjects)
        )
        click.echo(f"sent {sent.appended} commands to {settings.topic_prefix}hubspot.commands")
        if sent.left_out_redacted:  # G1: a redacted customer's values are never written again
            click.echo(f"left out {sent.left_out_redacted} commands of redacted customers", err=True)
        _report_and_exit(rebuilt.report, allow_loss)
        return

    async def compare() -> list[str]:
        client = HubSpotClient(settings.hubspot_base_url, settings.hubspot_token.get_secret_value())
        try:
            return diff(rebuilt.account, await read_account(client, rebuilt.account))
        finally:
            await client.close()

    lines = asyncio.run(compare())
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} differences", err=True)
    _report_and_exit(rebuilt.report, allow_loss)


@main.group()
def compliance() -> None:
    """Shopify's compliance webhooks (SPEC G1): what the product holds on a customer."""


@compliance.command("report")
@click.option("--dir", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the reports [default: SHOPSYNC_COMPLIANCE_DIR].")  # fmt: skip
def compliance_report(out: Path | None) -> None:
    """Write a JSON report for every customers/data_request on shopify.compliance: the worker's
    state for that customer, every record of the topics that names them, the writer's HubSpot id
    map entries, and the note that HubSpot's records are the merchant's and untouched. One file per
    request (shop and data request id); send it to the merchant. Prints file names and counts only,
    and how many redact requests the redactor applied, with a warning and the first deadline when
    some are still pending."""
    from datetime import UTC, datetime

    from handlers.compliance import redactor_committed, stored_requests, write_reports
    from handlers.compliance_report import Outstanding, outstanding_redactions

    settings = _settings()
    written = asyncio.run(write_reports(settings, datetime.now(UTC), out))
    for w in written:
        click.echo(
            f"{w.path}: {w.records} records, {w.state_rows} state rows, {w.id_map_entries} id map entries"
        )
    click.echo(f"{len(written)} data request report(s) written", err=True)

    async def redacts() -> list[Outstanding]:
        return outstanding_redactions(await stored_requests(settings), await redactor_committed(settings))

    listed = asyncio.run(redacts())
    applied = sum(o.applied for o in listed)
    pending = [o for o in listed if not o.applied]
    if applied:
        click.echo(f"{applied} redact request(s) applied by the redactor", err=True)
    if pending:
        first = pending[0]
        click.echo(f"WARNING: {len(pending)} redact request(s) pending: `shopsync compliance redact` "
                   f"applies them, and erases only what was sealed "
                   f"(SHOPSYNC_SEAL_PERSONAL_DATA; README, Privacy (G1)); "
                   f"the first is due {first.due:%Y-%m-%d} "
                   f"({first.topic}, {first.shop_domain}, event {first.event_id})", err=True)  # fmt: skip


@compliance.command("redact")
@click.option(
    "--follow", is_flag=True, help="Keep applying requests as they arrive (a service), until stopped."
)
def compliance_redact(follow: bool) -> None:
    """Apply the customers/redact and shop/redact requests on shopify.compliance: append the
    tombstones of the customer's (or the shop's) data keys to privacy.keys, so everything sealed
    under them opens as erased everywhere, replays included. Each request is applied once (the
    consumer group SHOPSYNC_APP_ID.redactor commits it after Kafka acknowledged its tombstones).
    Prints counts only. Personal data is sealed only with SHOPSYNC_SEAL_PERSONAL_DATA on (see the
    README's Privacy (G1))."""
    from handlers.hubspot_client import HubSpotAccessError, HubSpotError, HubSpotUnavailableError
    from handlers.hubspot_erasure import eraser_for
    from handlers.redactor import UnreadableRequestError, redact_forever, redact_once, redactor_args

    settings = _settings()
    args = redactor_args(settings)
    try:
        hubspot = eraser_for(settings)  # SHOPSYNC_REDACT_HUBSPOT: also GDPR-delete the contact
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if follow:
            asyncio.run(redact_forever(*args, hubspot=hubspot))
            return
        applied = asyncio.run(redact_once(*args, hubspot=hubspot))
    except (HubSpotUnavailableError, HubSpotAccessError, HubSpotError) as exc:
        raise click.ClickException(
            f"HubSpot did not delete a redacted customer's contact ({type(exc).__name__}): the request "
            "stays pending and is tried again on the next run"
        ) from exc
    except UnreadableRequestError as exc:
        raise click.ClickException(f"{exc}: stopped before it, nothing after it applied") from exc
    except RuntimeError as exc:  # the key topic is missing: nothing was ever sealed on this cluster
        raise click.ClickException(
            f"{exc}: declared by `shopsync topics` with SHOPSYNC_SEAL_PERSONAL_DATA on "
            "(nothing is sealed without it)"
        ) from exc
    redacts = [a for a in applied if a.topic != "customers/data_request"]
    deleted = f", {sum(a.hubspot_deleted for a in redacts)} HubSpot contact(s) deleted" if hubspot else ""
    click.echo(
        f"{len(redacts)} redact request(s) applied, {sum(a.shredded for a in redacts)} key(s) shredded"
        f"{deleted}",
        err=True,
    )


@main.group()
def hubspot() -> None:
    """Set up the HubSpot account (what the writer cannot or should not do by itself)."""


@hubspot.command("add-stages")
@click.option("--pipeline", "pipeline_id", default="default", show_default=True,
              help="The deal pipeline's id ('default': the account's own, on every tier).")  # fmt: skip
def add_stages(pipeline_id: str) -> None:
    """Add the six legacy deal stages a pipeline lacks (by label), after its own stages.

    For a Free account, whose one pipeline the writer uses (HubSpot lets only Starter and above
    create pipelines, but every plan edit their stages). Stages already there are left alone."""
    from handlers.account_setup import AccountSetupError, add_missing_stages_at

    settings = _settings(privacy_key=False)
    try:
        token = settings.hubspot_token.get_secret_value()
        added = asyncio.run(add_missing_stages_at(settings.hubspot_base_url, token, pipeline_id))
    except AccountSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {len(added)} stages to pipeline {pipeline_id}: {', '.join(added) or 'none missing'}")


@main.command()
def writer() -> None:
    """Run the HubSpot writer: hubspot.commands in, HubSpot CRM API calls out.

    Sets up the account first (custom properties, the ecommerce pipeline), idempotently.
    HUBSPOT_BASE_URL and HUBSPOT_TOKEN say which account (the local sandbox or a real one).
    """
    from config.logs import configure_logging
    from handlers import writer_metrics
    from handlers.writer import WriterStats, run_writer
    from streams import metrics

    settings = _settings()
    if not settings.hubspot_token.get_secret_value():
        raise click.ClickException("HUBSPOT_TOKEN is not set (a private app's access token)")
    configure_logging(settings.log_level, settings.log_format)

    async def serve() -> WriterStats:
        stats = WriterStats()
        writer_metrics.watch(stats)
        runner = await metrics.serve(settings.metrics_host, settings.writer_metrics_port, "writer")
        try:
            return await run_writer(settings, stats=stats)
        finally:
            if runner is not None:
                await runner.cleanup()

    stats = asyncio.run(serve())
    click.echo(f"writer stopped: {stats}", err=True)


@main.command()
@click.option("--at", "at", default=None, help="ISO-8601 instant [default: now].")
def tick(at: str | None) -> None:
    """Advance the worker's clock: append a tick to every partition of its timer topics.

    Timers due by then fire. With live ticks off (SHOPSYNC_TICK_INTERVAL_S=0), this is how a
    simulation moves time: one tick 48 hours ahead fires everything due in those 48 hours.
    """
    from datetime import UTC, datetime

    from streams.ticker import append_ticks
    from streams.topics import ensure_topics

    settings = _settings(privacy_key=False)
    try:
        instant = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 instant: {at}", param_hint="--at") from exc
    if instant.tzinfo is None:
        raise click.BadParameter("give an offset or Z, e.g. 2026-03-04T09:00:00Z", param_hint="--at")
    asyncio.run(ensure_topics(settings, internal=True))
    count = asyncio.run(append_ticks(settings, instant))
    click.echo(f"appended {count} ticks at {instant.isoformat()}")


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where the resulting HubSpot account is written (the sandbox's dump JSON).",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for each settle.")
@click.option(
    "--hubspot-url",
    default=None,
    help="Run against this HubSpot (a real test account, or a sandbox started elsewhere; token from "
    "HUBSPOT_TOKEN) instead of a sandbox of its own.",
)
@COMMERCE_OBJECTS
@ALLOW_LOSS
def simulate(
    scenario: Path,
    out: Path,
    timeout: float,
    hubspot_url: str | None,
    commerce_objects: str,
    allow_loss: bool,
) -> None:
    """Run the whole pipeline (local Kafka, bridge, worker, writer, HubSpot sandbox) on a scenario
    file and write the resulting account to --out. The format is in the README.

    Reports dead letters, field problems and parked deliveries by reason; exits 3 when a record
    was lost (dead-lettered), unless --allow-loss."""
    import logging

    from devtools.simulate import ScenarioError
    from devtools.simulate import simulate as run_simulation

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retried sends to brand-new topics: noise
    token = _settings(privacy_key=False).hubspot_token.get_secret_value() if hubspot_url else None
    if hubspot_url and not token:
        raise click.ClickException("--hubspot-url needs HUBSPOT_TOKEN (a private app's token)")
    try:
        result = run_simulation(scenario, out, timeout, hubspot_url, token, commerce_objects)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    account = result.account
    counts = ", ".join(
        f"{kind} {len(account[kind])}"
        for kind in ("contacts", "deals", "orders", "carts", "companies", "products", "line_items")
        if kind in account
    )
    click.echo(f"{result.lines} lines applied; {counts}; account written to {out}")
    _report_and_exit(result.report, allow_loss)


@main.command()
@click.option("--customers", default=200, show_default=True, help="Customers in the sample store.")
@click.option("--seed", default=7, show_default=True, help="Seed of the sample-store generator.")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for each settle.")
@click.option("--exit", "exit_when_done", is_flag=True,
              help="Exit when done, even in a terminal (without one it always does).")  # fmt: skip
@click.option("--hubspot-tier", "tier", type=click.Choice(["free", "starter", "professional", "enterprise"]),
              default="professional", show_default=True,
              help="The sandbox's HubSpot subscription (its rate limits; on free, no pipeline can "
              "be created, so the stages are added to the default pipeline first, as an operator "
              "would).")  # fmt: skip
@COMMERCE_OBJECTS
@click.option("--shops", default=1, show_default=True, type=click.IntRange(1, 9),
              help="X3: generated shops in one deployment (the same sample data, so the same ids and "
              "emails in each), into one HubSpot account.")  # fmt: skip
@ALLOW_LOSS
def demo(
    customers: int, seed: int, timeout: float, exit_when_done: bool, tier: str, commerce_objects: str,
    shops: int, allow_loss: bool,
) -> None:  # fmt: skip
    """Run the whole pipeline on a generated sample store and print the summary (SPEC S1).

    Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts (and afterwards stops) a local broker.
    Reports dead letters, field problems and parked deliveries; exits 3 when a record was lost,
    unless --allow-loss. In a terminal it then prints the dashboard's address and keeps the
    pipeline up until Ctrl-C (--exit: it exits at once).
    """
    from devtools.demo import run_demo
    from hubspot_sandbox.tiers import TIERS

    keep = sys.stdin.isatty() and sys.stdout.isatty() and not exit_when_done
    try:
        result = run_demo(
            customers=customers,
            seed=seed,
            timeout_s=timeout,
            keep=keep,
            tier=next(t for t in TIERS if t == tier),
            commerce_objects=commerce_objects,
            shops=shops,
        )
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    _report_and_exit(result.report, allow_loss, printed=keep)


@main.command()
@click.option("--quick", is_flag=True, help="CI's smoke run: small inputs, the same code paths; "
              "targets are shown, not judged.")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure's measurement and the machine to this file.")  # fmt: skip
@click.option("--only", multiple=True, metavar="NAME", help="Measure only this figure (repeatable).")
@click.option("--strict", is_flag=True, help="Exit non-zero when a target is missed (full runs).")
def bench(quick: bool, json_path: Path | None, only: tuple[str, ...], strict: bool) -> None:
    """Run the benchmark suite (bench/figures/) against one local Kafka broker and print one table:
    figure, result, baseline measured in the same run, ratio, target, met?

    Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts (and afterwards stops) a local broker. Exits 1
    when a figure failed (or, with --strict, missed its target). Runs from a source checkout.
    """
    repo = Path(__file__).resolve().parents[1]
    if not (repo / "bench" / "runner.py").is_file():
        raise click.ClickException(f"the benchmark suite is not here ({repo / 'bench'}): run it from a "
                                   "source checkout")  # fmt: skip
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from bench.runner import run_suite

    try:
        code = run_suite(quick=quick, only=only, json_path=json_path, strict=strict, echo=click.echo,
                         progress=lambda text: click.echo(text, err=True))  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from exc
    sys.exit(code)


def _add_sandbox() -> None:
    """`shopsync sandbox serve|dump`: the local HubSpot (see hubspot_sandbox/)."""
    from hubspot_sandbox.__main__ import main as sandbox_main

    main.add_command(sandbox_main, name="sandbox")


_add_sandbox()


@main.command(
    name="shopify-sandbox",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def shopify_sandbox(ctx: click.Context) -> None:
    """The local Shopify GraphQL Admin API (see shopify_sandbox/; --help lists its options).

    Loaded only when run: it needs the dev extra (graphql-core) and the sample store."""
    try:
        from shopify_sandbox.__main__ import main as sandbox_main
    except ModuleNotFoundError as missing:
        raise click.ClickException(
            f"{missing.name} is missing: install the dev extra (pip install -e '.[dev]')"
        ) from None

    sandbox_main.main(args=ctx.args, prog_name="shopsync shopify-sandbox")
