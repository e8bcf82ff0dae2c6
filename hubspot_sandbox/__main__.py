"""``python -m hubspot_sandbox serve|dump``: run a sandbox, or print a running one's account."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import httpx
from pydantic import ValidationError

from hubspot_sandbox.config import SandboxConfig
from hubspot_sandbox.server import serve as serve_forever
from hubspot_sandbox.tiers import TIERS, Tier


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A local HubSpot CRM API for development and tests."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True, help="0 picks a free port.")
@click.option(
    "--db", "db_path", type=click.Path(path_type=Path), default=Path("sandbox.db"), show_default=True
)
@click.option(
    "--token",
    envvar="HUBSPOT_SANDBOX_TOKEN",
    required=True,
    help="Bearer token to accept [env HUBSPOT_SANDBOX_TOKEN].",
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="professional",
    show_default=True,
    help="The account's HubSpot tier: its rate limits, and whether deal pipelines can be created.",
)
@click.option("--rate-limit-per-10s", type=int, default=None, help="Override the tier's burst limit.")
@click.option("--rate-limit-daily", type=int, default=None, help="Override the tier's daily limit.")
@click.option("--webhook-url", default=None, help="Where contact.deletion webhooks are POSTed.")
@click.option(
    "--webhook-secret",
    envvar="HUBSPOT_SANDBOX_WEBHOOK_SECRET",
    default="",
    help="App secret that signs them [env HUBSPOT_SANDBOX_WEBHOOK_SECRET].",
)
@click.option("--fault-5xx-rate", type=float, default=0.0, show_default=True)
@click.option("--latency-ms", type=int, default=0, show_default=True)
@click.option("--drop-rate", type=float, default=0.0, show_default=True)
@click.option(
    "--batch-error-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of batch inputs that fail on their own (answered with a 207).",
)
@click.option(
    "--batch-error-category",
    type=click.Choice(["INTERNAL_ERROR", "VALIDATION_ERROR"]),
    default="INTERNAL_ERROR",
    show_default=True,
    help="Transient failure, or final refusal.",
)
@click.option(
    "--time-zone",
    default="US/Eastern",
    show_default=True,
    help="The account's time zone: its midnight resets the daily limit.",
)
@click.option("--portal-id", type=int, default=62515, show_default=True)
@click.option("--log-level", default="info", show_default=True)
def serve(
    host: str,
    port: int,
    db_path: Path,
    token: str,
    tier: Tier,
    rate_limit_per_10s: int | None,
    rate_limit_daily: int | None,
    webhook_url: str | None,
    webhook_secret: str,
    fault_5xx_rate: float,
    latency_ms: int,
    drop_rate: float,
    batch_error_rate: float,
    batch_error_category: str,
    time_zone: str,
    portal_id: int,
    log_level: str,
) -> None:
    """Serve the sandbox until SIGINT/SIGTERM; prints its base URL on stdout."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = SandboxConfig(
            host=host,
            port=port,
            db_path=db_path,
            token=token,
            tier=tier,
            rate_limit_per_10s=rate_limit_per_10s,
            rate_limit_daily=rate_limit_daily,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            fault_5xx_rate=fault_5xx_rate,
            latency_ms=latency_ms,
            drop_rate=drop_rate,
            batch_error_rate=batch_error_rate,
            batch_error_category=batch_error_category,
            time_zone=time_zone,
            portal_id=portal_id,
        )
    except ValidationError as exc:  # secrets are SecretStr, so the message never shows them
        raise click.ClickException(f"invalid settings: {exc}") from exc
    serve_forever(config)


@main.command()
@click.option("--url", required=True, help="Base URL of a running sandbox.")
@click.option(
    "--token",
    envvar="HUBSPOT_SANDBOX_TOKEN",
    default=None,
    help="Sent as a bearer token (the dump needs none).",
)
def dump(url: str, token: str | None) -> None:
    """Print the sandbox's whole account as JSON (compact, written as it streams in: an account of
    1,000,000 records is a few hundred MB; pipe it to ``python -m json.tool`` to read a small one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.stream("GET", url.rstrip("/") + "/_sandbox/dump", headers=headers, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                sys.stdout.buffer.write(chunk)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not dump {url}: {exc}") from exc
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
