"""A large store streams: an export's memory does not grow with the number of customers, so
issue 15's 100,000-customer import runs against the sandbox without holding the store."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from shopify_sandbox import bulk_rules, jsonl
from shopify_sandbox.operations import Operations
from shopify_sandbox.resolvers import wire
from shopify_sandbox.schema import schema_for
from shopify_sandbox.shop import ShopData
from tests.shopify_sandbox.test_shopify_bulk import ORDERS


def _export_peak(tmp_path: Path, customers: int) -> tuple[jsonl.Written, int]:
    """Write the orders export of a ``customers`` store as the sandbox does; its peak memory."""
    schema = wire(schema_for("2026-04"))
    operations = Operations(ShopData(customers, repeat_orders=1), lambda: datetime.now(UTC), tmp_path)
    op = operations.start(ORDERS, bulk_rules.check(ORDERS, schema))
    tracemalloc.start()
    try:
        written = jsonl.write(tmp_path / f"{customers}.jsonl", operations.roots(op, schema), jsonl.Written())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return written, peak


def test_export_memory_does_not_grow_with_the_store(tmp_path: Path) -> None:
    small, small_peak = _export_peak(tmp_path, 200)
    large, large_peak = _export_peak(tmp_path, 2000)
    assert large.roots > 9 * small.roots
    # Holding the records would cost several times the file's size in Python objects.
    assert large_peak - small_peak < large.size / 20, (small_peak, large_peak, large.size)
