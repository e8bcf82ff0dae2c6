"""Calculated query cost and the standard plan's bucket, on a clock the test moves by hand."""

from __future__ import annotations

import httpx

from shopify_sandbox.cost import STANDARD
from tests.shopify_sandbox.conftest import Admin, StartSandbox

# 2 + 50 x (1 customer + 1 address + (2 + 10 x 1 order)) = 702 points asked for
HEAVY = "{ customers(first: 50) { nodes { id defaultAddress { city } orders(first: 10) { nodes { id } } } } }"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_every_answer_carries_its_cost_and_the_bucket(admin: Admin) -> None:
    body = await admin.post(HEAVY)
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 702
    customers = body["data"]["customers"]["nodes"]
    orders = sum(len(c["orders"]["nodes"]) for c in customers)
    assert cost["actualQueryCost"] == 2 + len(customers) * (1 + 1 + 2) + orders
    assert cost["throttleStatus"]["maximumAvailable"] == STANDARD.maximum == 2000.0
    assert cost["throttleStatus"]["restoreRate"] == STANDARD.restore_rate == 100.0


async def test_an_empty_bucket_throttles_until_it_refills(start_sandbox: StartSandbox) -> None:
    clock = Clock()
    sandbox = await start_sandbox(customers=50, monotonic=clock)
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        admin = Admin(sandbox, http)
        charged = []
        while True:
            body = await admin.post(HEAVY)
            if "errors" in body:
                break
            charged.append(body["extensions"]["cost"]["actualQueryCost"])
        [error] = body["errors"]
        assert error["message"] == "Throttled" and error["extensions"]["code"] == "THROTTLED"
        cost = body["extensions"]["cost"]
        assert "data" not in body and cost["actualQueryCost"] is None
        left = cost["throttleStatus"]["currentlyAvailable"]
        assert left == 2000 - sum(charged) < 702  # charged the actual cost: the rest refunded
        clock.now += (702 - left) / 100 - 0.05  # not quite enough restored yet
        assert "errors" in await admin.post(HEAVY)
        clock.now += 0.1
        assert "errors" not in await admin.post(HEAVY)
        clock.now += 3600  # the bucket never holds more than its size
        status = (await admin.post("{ products(first: 1) { nodes { id } } }"))["extensions"]["cost"][
            "throttleStatus"
        ]
        assert status["currentlyAvailable"] == 2000 - 3


async def test_a_query_above_1000_points_is_refused_whatever_the_bucket(admin: Admin) -> None:
    body = await admin.post("{ customers(first: 250) { nodes { id orders(first: 10) { nodes { id } } } } }")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + 250 * (1 + 12)
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] >= 1999  # nothing charged
