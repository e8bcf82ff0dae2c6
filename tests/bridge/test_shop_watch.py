"""X3: the bridge warns when several shops' deliveries arrive and no primary shop tells them apart."""

from __future__ import annotations

from handlers.bridge import ShopWatch


def test_a_second_shop_without_a_primary_is_noticed_once() -> None:
    watch = ShopWatch(primary=None)
    assert watch.seen("a.myshopify.com") is None  # the first shop: nothing to tell apart yet
    assert watch.seen("a.myshopify.com") is None
    assert watch.seen("b.myshopify.com") == "a.myshopify.com"
    assert watch.seen("b.myshopify.com") is None  # once per shop
    assert watch.seen("c.myshopify.com") == "a.myshopify.com"


def test_with_a_primary_shop_every_shop_is_told_apart_and_nothing_is_noticed() -> None:
    watch = ShopWatch(primary="a.myshopify.com")
    assert [watch.seen(s) for s in ("a.myshopify.com", "b.myshopify.com", "c.myshopify.com")] == [None] * 3


def test_a_delivery_without_a_shop_domain_is_no_shop() -> None:
    watch = ShopWatch(primary=None)
    assert watch.seen("") is None and watch.seen("a.myshopify.com") is None
