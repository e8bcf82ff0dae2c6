"""Pacing the bulk import's small queries by Shopify's calculated query cost
(``handlers.graphql_cost``): the pure wait, and the client paced by it against the local Admin
API, with one clock shared by the sandbox's bucket and the client's sleeps (nothing sleeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import bulk_import, graphql_cost
from handlers.bulk_import import BULK_API_VERSION, AdminGraphQL, start_operation, wait_for
from handlers.graphql_cost import (
    MARGIN_POINTS,
    SMALLEST_WAIT_S,
    Bucket,
    available_after,
    requested_cost,
    throttled_wait,
    wait_before,
)
from handlers.importer import RESOURCES
from shopify_sandbox import ShopifySandboxConfig, running_shopify_sandbox
from shopify_sandbox.cost import Plan
from tests.importer.bulk_support import TOKEN, SharedClock


def answer(
    available: float, maximum: float = 1000.0, rate: float = 50.0, requested: float = 10
) -> dict[str, Any]:
    status = {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": rate}
    return {"extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                    "throttleStatus": status}}}  # fmt: skip


def test_the_bucket_is_read_from_an_answer_s_cost_extension() -> None:
    body = answer(988.0, 1000.0, 50.0, requested=252)
    assert Bucket.from_answer(body) == Bucket(988.0, 1000.0, 50.0)
    assert requested_cost(body) == 252
    assert Bucket.from_answer({"data": {}}) is None and requested_cost({"data": {}}) is None
    unreadable = {"extensions": {"cost": {"throttleStatus": {"currentlyAvailable": "x"}}}}
    assert Bucket.from_answer(unreadable) is None


def test_no_wait_when_the_bucket_holds_the_cost_or_nothing_is_known() -> None:
    bucket = Bucket(500.0, 1000.0, 50.0)
    assert wait_before(bucket, 0.0, 10.0) == 0.0
    assert wait_before(None, 0.0, 10.0) == 0.0, "no answer yet"
    assert wait_before(bucket, 0.0, None) == 0.0, "a query never sent: its cost is not known"


def test_the_wait_is_until_the_bucket_refills_to_the_cost() -> None:
    bucket = Bucket(2.0, 1000.0, 50.0)
    assert wait_before(bucket, 0.0, 10.0) == pytest.approx((10 + MARGIN_POINTS - 2) / 50)
    later = wait_before(bucket, 0.1, 10.0)
    assert later == pytest.approx((10 + MARGIN_POINTS - 7) / 50), "the time passed counts"
    assert wait_before(bucket, 1.0, 10.0) == 0.0


def test_a_cost_above_the_bucket_is_paced_as_the_full_bucket() -> None:
    bucket = Bucket(0.0, 100.0, 50.0)
    assert wait_before(bucket, 0.0, 5000.0) == pytest.approx(2.0)


@given(
    available=st.floats(0, 2000),
    maximum=st.floats(1, 2000),
    rate=st.floats(1, 2000),
    elapsed=st.floats(0, 100),
    cost=st.floats(0, 3000),
)
def test_after_the_wait_the_bucket_holds_the_cost_and_not_a_moment_sooner(
    available: float, maximum: float, rate: float, elapsed: float, cost: float
) -> None:
    bucket = Bucket(min(available, maximum), maximum, rate)
    wait = wait_before(bucket, elapsed, cost)
    wanted = min(cost + MARGIN_POINTS, maximum)
    assert wait >= 0
    assert available_after(bucket, elapsed + wait) >= wanted - 1e-6
    if wait > 1e-6:
        assert available_after(bucket, elapsed + wait * 0.99) < wanted


def test_a_throttled_answer_is_waited_out_by_its_restore_rate() -> None:
    assert throttled_wait(answer(0.0, rate=100.0, requested=50)) == pytest.approx((50 + MARGIN_POINTS) / 100)
    assert throttled_wait(answer(999.0, requested=10)) == SMALLEST_WAIT_S, "never hammered"
    assert throttled_wait({"errors": [{"message": "Throttled"}]}) == pytest.approx(
        (10 + MARGIN_POINTS) / graphql_cost.DEFAULT_RESTORE_RATE
    ), "an answer without numbers: a guess on the slow side"


async def test_the_import_s_queries_are_paced_so_that_none_is_throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket of 25 points restored at 5 a second: four bulkOperationRunQuery (10 points each)
    and their polls. Each document is sent unpaced once (its cost is not known before) and paced
    after: no THROTTLED answer at all, and the run takes about what the points restore at."""
    clock = SharedClock()
    throttled: list[float] = []

    def counted(body: dict[str, Any]) -> float:
        throttled.append(1.0)
        return 1.0

    monkeypatch.setattr(bulk_import, "throttled_wait", counted)
    config = ShopifySandboxConfig(token=TOKEN, customers=5, data_dir=tmp_path, plan=Plan(25.0, 5.0))
    headers = {"X-Shopify-Access-Token": TOKEN}
    async with (
        running_shopify_sandbox(config, monotonic=clock) as shop,
        httpx.AsyncClient(base_url=shop.url, headers=headers) as http,
    ):
        admin = AdminGraphQL(http, BULK_API_VERSION, clock=clock, sleep=clock.sleep)
        started = [await start_operation(admin, r) for r in RESOURCES]
        ops = [await wait_for(admin, op_id, 0.0) for op_id in started]
    assert [op["status"] for op in ops] == ["COMPLETED"] * len(RESOURCES)
    assert throttled == [], "paced: the bucket always held the next query's cost"
    assert admin.paced_s > 0
    assert admin.paced_s == pytest.approx(clock.now - 1000.0), "the only time that passed is the pacing"
    assert admin.paced_s < 4 * (10 + MARGIN_POINTS) / 5.0 + 10, "no longer than the points restore at"
