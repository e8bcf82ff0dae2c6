"""Locate and read the real Shopify payloads in ../shared/fixtures/shopify, in place.

They are never copied into the repository; where the folder is absent, tests that need it are
skipped with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """``$SHOPSYNC_SHARED_DIR/fixtures/shopify``, else ``../shared/fixtures/shopify``."""
    shared = os.environ.get("SHOPSYNC_SHARED_DIR")
    base = Path(shared) if shared else REPO.parent / "shared"
    return base / "fixtures" / "shopify"


def require_fixtures() -> Path:
    path = fixtures_dir()
    if not path.is_dir():
        pytest.skip(f"Shopify fixtures not found at {path} (../shared is absent)")
    return path


def webhook_bodies() -> Iterator[tuple[str, Path, Any]]:
    """(Shopify topic, file, parsed JSON) for every ``webhooks/<resource>_<action>.json``."""
    for file in sorted((require_fixtures() / "webhooks").glob("*.json")):
        resource, _, action = file.stem.partition("_")
        yield f"{resource}/{action}", file, orjson.loads(file.read_bytes())


REST_RESOURCES = {
    "customer": "customers",
    "customers": "customers",
    "order": "orders",
    "orders": "orders",
    "checkout": "checkouts",
    "checkouts": "checkouts",
    "cart": "carts",
    "carts": "carts",
    "product": "products",
    "products": "products",
}


def rest_records() -> Iterator[tuple[str, Path, Any]]:
    """(resource, file, record) for every record in ``rest/*.json`` (wrapped or bare lists)."""
    for file in sorted((require_fixtures() / "rest").glob("*.json")):
        data = orjson.loads(file.read_bytes())
        if isinstance(data, dict) and len(data) == 1:
            ((wrapper, inner),) = data.items()
            resource = REST_RESOURCES[wrapper]
        else:
            inner, resource = data, REST_RESOURCES[file.stem]
        for record in inner if isinstance(inner, list) else [inner]:
            yield resource, file, record
