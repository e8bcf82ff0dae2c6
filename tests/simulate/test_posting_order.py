"""Simulate posts deliveries concurrently: lines about the same checkout, order or customer must
still reach the bridge in file order, and at most a few may be in flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import ClientSession, web

from devtools import simulate
from devtools.simulate import Line, _identities, _Posts
from tests.importer.bulk_support import serving

AT = datetime(2026, 3, 1, tzinfo=UTC)


def line(topic: str, body: dict[str, Any]) -> Line:
    return Line(at=AT, shopify=topic, body=body)


def test_a_checkout_created_without_email_and_updated_with_one_shares_an_identity() -> None:
    created = _identities(line("checkouts/create", {"id": 1, "token": "T1"}))
    updated = _identities(line("checkouts/update", {"id": 1, "token": "T1", "email": "A@x.com"}))
    order = _identities(line("orders/create", {"id": 9, "checkout_token": "t1", "email": "a@x.com"}))
    other = _identities(line("orders/create", {"id": 10, "email": "b@x.com"}))
    assert created & updated and updated & order
    assert not other & (created | updated | order)
    assert _identities(line("orders/create", {})) == frozenset({"unknown"})
    broken = {"id": {"nested": 1}, "email": ["a@x.com"], "token": None, "customer": "x"}
    assert _identities(line("checkouts/create", broken)) == frozenset({"unknown"})


async def test_lines_sharing_an_identity_go_in_file_order_and_few_at_once() -> None:
    posts = _Posts()
    log: list[tuple[str, int]] = []
    running = 0
    most = 0

    def sender(number: int) -> Any:
        async def send() -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            log.append(("start", number))
            await asyncio.sleep(0.001 * (20 - number % 20))  # later lines would finish first
            log.append(("end", number))
            running -= 1

        return send

    keys = [frozenset({f"email:{n % 3}"}) for n in range(30)]
    for number, key in enumerate(keys):
        posts.post(key, sender(number))
    await posts.finish()
    assert most <= simulate.DELIVERIES_IN_FLIGHT
    assert most > 1, "unrelated lines should be in flight together"
    for customer in range(3):
        numbers = [n for n in range(30) if n % 3 == customer]
        ends = [log.index(("end", n)) for n in numbers]
        starts = [log.index(("start", n)) for n in numbers]
        assert all(end < start for end, start in zip(ends, starts[1:], strict=False))


async def test_finish_raises_a_failed_post_and_waits_for_the_rest() -> None:
    posts = _Posts()
    done: list[int] = []

    async def fails() -> None:
        raise simulate.ScenarioError("line 1: the bridge answered 500")

    async def works() -> None:
        await asyncio.sleep(0.01)
        done.append(2)

    posts.post(frozenset({"a"}), fails)
    posts.post(frozenset({"b"}), works)
    with pytest.raises(simulate.ScenarioError, match="line 1"):
        await posts.finish()
    assert done == [2]


async def test_a_delivery_the_bridge_could_not_append_is_retried_as_the_same_delivery() -> None:
    """A 503 (Kafka did not acknowledge in time, as on a loaded machine) is retried as Shopify
    retries a failed delivery, with the same webhook and event ids; anything else fails the line."""
    seen: list[tuple[str, str]] = []
    answers = [503, 503, 200, 500]

    async def webhook(request: web.Request) -> web.Response:
        seen.append((request.headers["X-Shopify-Webhook-Id"], request.headers["X-Shopify-Event-Id"]))
        return web.Response(status=answers[len(seen) - 1])

    app = web.Application()
    app.router.add_post("/webhooks/shopify", webhook)
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    async with serving(app) as url, ClientSession() as session:
        await simulate._post_delivery(session, url, 1, line("orders/create", {"id": 1}), pause)
        assert len(seen) == 3 and len(set(seen)) == 1, seen
        assert pauses == [1.0, 2.0]
        with pytest.raises(simulate.ScenarioError, match="500"):
            await simulate._post_delivery(session, url, 2, line("orders/create", {"id": 2}), pause)
