"""``shopsync import``'s ways in (kept out of ``cli`` so it stays a list of commands): each shop
of a plan (REST pages or, with ``--graphql``, bulk operations), a downloaded bulk export (an air
gap), and the sample store served by a local Admin API in this process (the one-command demo of
the bulk import)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click
import httpx

from config import Settings
from handlers.importer import ShopifyImportError, ShopImport
from handlers.loss import LossReport
from handlers.progress import Progress, choose


def progress_display() -> Progress:
    """Progress on stderr, for the imports and ``replay``: one redrawn line (records of the total,
    rate, ETA) on a terminal, log lines every few seconds otherwise; the commands' own log lines
    (exports started, ready, done) at INFO either way."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    for name in ("handlers.bulk_import", "handlers.importer", "handlers.progress", "handlers.replay"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    return choose(sys.stderr)


def each_shop(
    plan: list[ShopImport], run: Callable[[ShopImport], Coroutine[Any, Any, dict[str, int]]]
) -> None:
    """``run`` each shop of ``plan`` in turn; a refusal or Ctrl-C ends the command with how to go on."""
    for shop in plan:
        try:
            counts = asyncio.run(run(shop))
        except ShopifyImportError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            raise click.ClickException(
                f"interrupted; run the same command again to resume ({shop.state_path})"
            ) from None
        click.echo(f"imported {shop.shop}: {counts}")


def import_shops(
    settings: Settings,
    plan: list[ShopImport],
    resources: tuple[str, ...],
    api_version: str,
    report: LossReport,
    checkpoint_every: int = 1000,
) -> None:
    """Each shop of ``plan`` through its bulk operations, one after the other."""
    from handlers.bulk_import import run_bulk_import

    progress = progress_display()
    each_shop(
        plan,
        lambda shop: run_bulk_import(
            settings, shop.url, shop.token, shop.state_path,
            resources=resources, api_version=api_version, report=report, progress=progress,
            checkpoint_every=checkpoint_every,
        ),
    )  # fmt: skip


def import_file(
    settings: Settings, path: Path, resource: str, shop: str, api_version: str, report: LossReport
) -> None:
    """One downloaded export, no network but Kafka; ``shop`` a domain or a base URL."""
    from handlers.bulk_import import import_jsonl

    progress = progress_display()
    shop = httpx.URL(shop).host if shop.startswith("http") else shop
    count = asyncio.run(
        import_jsonl(
            settings, path, resource, shop, api_version=api_version, report=report, progress=progress
        )
    )
    click.echo(f"imported {shop}: {{'{resource}': {count}}} from {path}")


def sample_companies(customers: int) -> int:
    """The sample store's B2B companies when imported: one for every hundred customers (at
    least one), three of its customers each (``shopify_sandbox.b2b``)."""
    return max(1, customers // 100) if customers >= 3 else 0


def import_sample_store(
    settings: Settings, customers: int, resources: tuple[str, ...], report: LossReport
) -> None:
    """The sample store (``devtools.samplestore``, the webhook path's store) served by a local
    Admin API on a free port with a one-time token, imported through it over HTTP. Its progress
    file is temporary: the local API's operations end with the process, so there is nothing to
    resume (running it again appends duplicates the processors drop, by their event ids)."""
    from devtools.samplestore import SHOP_DOMAIN
    from handlers.bulk_import import BULK_API_VERSION, run_bulk_import
    from shopify_sandbox import ShopifySandboxConfig, running_shopify_sandbox

    progress = progress_display()
    token = secrets.token_urlsafe(16)

    async def run() -> dict[str, int]:
        config = ShopifySandboxConfig(token=token, customers=customers, companies=sample_companies(customers))
        with tempfile.TemporaryDirectory(prefix="shopsync-sample-import-") as scratch:
            async with running_shopify_sandbox(config) as shop:
                return await run_bulk_import(
                    settings, shop.url, token, Path(scratch) / "state.json", resources=resources,
                    api_version=BULK_API_VERSION, report=report, shop=SHOP_DOMAIN, poll_s=0.2,
                    progress=progress,
                )  # fmt: skip

    try:
        counts = asyncio.run(run())
    except ShopifyImportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported {SHOP_DOMAIN} (sample store, {customers} customers): {counts}")
