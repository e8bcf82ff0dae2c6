"""A Shopify sandbox's settings: where it listens, the token it accepts, the store it serves."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shopify_sandbox.cost import STANDARD, Plan

_SHARED = os.environ.get("SHOPSYNC_SHARED_DIR")
FIXTURES = (
    Path(_SHARED) if _SHARED else Path(__file__).resolve().parents[2] / "shared"
) / "fixtures/shopify/rest"
"""Shopify's REST fixtures (``$SHOPSYNC_SHARED_DIR`` or the ``shared`` folder beside the
repository), read in place when a sandbox serves them."""


@dataclass(frozen=True)
class ShopifySandboxConfig:
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    customers: int = 20
    seed: int = 7
    repeat_orders: int = 0
    """Later purchases of every customer who bought: 100,000 customers and 3 make ~245,000 orders."""
    companies: int = 0
    """B2B companies made from the first customers, three contacts each (``shopify_sandbox.b2b``)."""
    fixtures_dir: Path | None = None
    data_dir: Path | None = None
    """Where bulk exports are written (a fresh temporary folder when None)."""
    plan: Plan = STANDARD
    poll_wait_s: float = 2.0
    """How long a poll of a RUNNING operation waits for its export before answering RUNNING."""
