"""``python -m shopify_sandbox`` (or ``shopsync shopify-sandbox``): serve a local Shopify Admin
GraphQL API until interrupted; prints its base URL once it answers."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from shopify_sandbox.config import FIXTURES, ShopifySandboxConfig
from shopify_sandbox.server import serve


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8098, show_default=True, help="0 picks a free port.")
@click.option(
    "--token",
    envvar="SHOPIFY_ADMIN_TOKEN",
    required=True,
    help="The X-Shopify-Access-Token to accept [env SHOPIFY_ADMIN_TOKEN].",
)
@click.option("--customers", type=int, default=20, show_default=True, help="Sample-store customers.")
@click.option("--seed", type=int, default=7, show_default=True, help="Sample-store seed.")
@click.option(
    "--repeat-orders",
    type=int,
    default=0,
    show_default=True,
    help="Later purchases of each customer who bought (100,000 customers and 3: ~245,000 orders).",
)
@click.option(
    "--companies",
    type=int,
    default=0,
    show_default=True,
    help="B2B companies made from the first customers (three contacts, two locations each).",
)
@click.option(
    "--fixtures/--no-fixtures",
    default=False,
    show_default=True,
    help=f"Also serve Shopify's REST fixtures, read in place from {FIXTURES}.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where bulk exports are written (default: a temporary folder).",
)
def main(
    host: str,
    port: int,
    token: str,
    customers: int,
    seed: int,
    repeat_orders: int,
    companies: int,
    fixtures: bool,
    data_dir: Path | None,
) -> None:
    """A local Shopify GraphQL Admin API over the sample store (bulk operations, cost limits)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(
        ShopifySandboxConfig(
            token=token,
            host=host,
            port=port,
            customers=customers,
            seed=seed,
            repeat_orders=repeat_orders,
            companies=companies,
            fixtures_dir=FIXTURES if fixtures else None,
            data_dir=data_dir,
        )
    )


if __name__ == "__main__":
    main()
