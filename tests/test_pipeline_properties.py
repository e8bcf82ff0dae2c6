"""Whole-store properties of the processing pipeline (routing + rules + timers), without Kafka.

Over generated stores, with the clock advanced by hourly ticks as the log would carry them:
duplicates change nothing, replay from scratch gives the same commands, and any order of the
deliveries between two ticks converges to the same HubSpot account.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.localrun import delivery_for
from devtools.samplestore import SampleEvent, generate
from handlers.account_fold import Account, fold
from schemas.envelope import HubSpotContactDeletion
from streams.inprocess import InProcessPipeline
from streams.rules.reports import compute

TICK = timedelta(hours=1)


def windows(events: list[SampleEvent]) -> Iterator[list[SampleEvent]]:
    """The events between consecutive hourly ticks."""
    ordered = sorted(events, key=lambda e: e.at)
    start = ordered[0].at
    batch: list[SampleEvent] = []
    for event in ordered:
        while event.at >= start + TICK:
            yield batch
            batch, start = [], start + TICK
        batch.append(event)
    yield batch


def play(
    events: list[SampleEvent],
    seed: int = 0,
    shuffle: bool = False,
    duplicate: bool = False,
    config: RuleConfig | None = None,
) -> InProcessPipeline:
    """Deliver ``events`` with an hourly tick; optionally shuffled within each hour, and with about
    half of them delivered a second time (Shopify's retries), both chosen by ``seed``."""
    pipeline = InProcessPipeline(config=config or RuleConfig())
    rng = random.Random(seed)
    clock = min(e.at for e in events)
    for batch in windows(events):
        batch = list(batch)
        if duplicate:
            batch = batch + [e for e in batch if rng.random() < 0.5]
        if shuffle:
            rng.shuffle(batch)
        for event in batch:
            pipeline.deliver(delivery_for(event))
        clock += TICK
        pipeline.tick(clock)
    pipeline.tick(clock + timedelta(days=3))
    return pipeline


def account_of(pipeline: InProcessPipeline) -> Account:
    return fold(pipeline.commands)


STORE = generate(customers=40, seed=21)


def test_the_store_exercises_every_stage_and_trigger() -> None:
    """The scenario is rich enough for the properties below to mean something."""
    account = account_of(play(STORE.events))
    stages = {p.get("dealstage") for p in account.of("deals").values()}
    assert {"Checkout Abandoned", "Processed", "Shipped", "Cancelled"} <= stages
    deals = account.of("deals").values()
    assert any(p.get("shopify_abandoned_cart_trigger_at") for p in deals), "W2 fired somewhere"
    assert any(p.get("shopify_recovered_checkout") == "true" for p in deals), "a recovered checkout"
    assert any(p.get("shopify_new_customer_order") == "true" for p in deals), "W1 marked a deal"
    assert account.archived, "D4 archived a never-promoted checkout's deal"
    assert account.of("products") and account.of("line_items") and account.of("contacts")


def test_replay_from_scratch_emits_exactly_the_same_commands() -> None:
    first = play(STORE.events).commands
    second = play(STORE.events).commands
    assert first == second


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_duplicate_deliveries_change_nothing(seed: int) -> None:
    plain = account_of(play(STORE.events))
    pipeline = play(STORE.events, seed=seed, duplicate=True)
    assert account_of(pipeline) == plain
    assert len(pipeline.commands) == len(play(STORE.events).commands), "a duplicate emitted a command"


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_any_order_between_ticks_converges_to_the_same_account(seed: int) -> None:
    assert account_of(play(STORE.events, seed=seed, shuffle=True)) == account_of(play(STORE.events))


def test_a_contact_deleted_in_hubspot_is_never_written_again() -> None:
    """C4 across the pipeline: after the deletion, no command names that contact."""
    pipeline = InProcessPipeline()
    events = sorted(STORE.events, key=lambda e: e.at)
    victim = next(c["email"] for c in STORE.customers if c["email"])
    cut = len(events) // 3
    for event in events[:cut]:
        pipeline.deliver(delivery_for(event))
    deletion = HubSpotContactDeletion(event_id="hs-1", object_id=1, email=victim, occurred_at=events[cut].at)
    pipeline.deletion(deletion)
    after = len(pipeline.commands)
    for event in events[cut:]:
        pipeline.deliver(delivery_for(event))
    pipeline.tick(events[-1].at + timedelta(days=200))
    later = pipeline.commands[after:]
    assert not [c for c in later if c.record.object_type == "contacts" and c.record.id_value == victim]


# ---- X1: the same properties with Orders and Carts (SHOPSYNC_COMMERCE_OBJECTS) ----

ORDERS = RuleConfig(commerce_objects="orders")
BOTH = RuleConfig(commerce_objects="deals,orders")
COMMERCE_MODES = {"orders": ORDERS, "deals,orders": BOTH}


@pytest.mark.parametrize("mode", sorted(COMMERCE_MODES))
def test_x1_the_store_makes_orders_carts_and_their_triggers(mode: str) -> None:
    account = account_of(play(STORE.events, config=COMMERCE_MODES[mode]))
    orders, carts = account.of("orders").values(), account.of("carts").values()
    assert {"Processed", "Shipped", "Cancelled"} <= {p.get("hs_pipeline_stage") for p in orders}
    assert any(p.get("shopify_abandoned_cart_trigger_at") for p in carts), "W2 fired on a cart"
    assert any(p.get("hs_external_status") == "recovered" for p in carts), "a recovered cart"
    assert any(p.get("shopify_new_customer_order") == "true" for p in orders), "W1 marked an order"
    assert bool(account.of("deals")) == (mode == "deals,orders")
    cart_to_order = {(a[0][0], a[1][0]) for a in account.associations} & {("carts", "orders")}
    assert cart_to_order, "a recovered cart is associated with its order"


@pytest.mark.parametrize("mode", sorted(COMMERCE_MODES))
def test_x1_replay_from_scratch_emits_the_same_commands(mode: str) -> None:
    config = COMMERCE_MODES[mode]
    assert play(STORE.events, config=config).commands == play(STORE.events, config=config).commands


@settings(max_examples=4, deadline=None)
@given(st.sampled_from(sorted(COMMERCE_MODES)), st.integers(min_value=0, max_value=10_000))
def test_x1_duplicates_and_reordering_change_nothing(mode: str, seed: int) -> None:
    config = COMMERCE_MODES[mode]
    plain = play(STORE.events, config=config)
    duplicated = play(STORE.events, seed=seed, duplicate=True, config=config)
    assert account_of(duplicated) == account_of(plain)
    assert len(duplicated.commands) == len(plain.commands), "a duplicate emitted a command"
    assert account_of(play(STORE.events, seed=seed, shuffle=True, config=config)) == account_of(plain)


def test_x1_reports_are_the_same_in_every_mode() -> None:
    """E1 in every mode: the reports read the journey's decision, whatever objects it is written as."""
    reports = {
        mode: compute(play(STORE.events, config=config).report_facts.values())
        for mode, config in {"deals": RuleConfig(), **COMMERCE_MODES}.items()
    }
    assert reports["orders"] == reports["deals"] == reports["deals,orders"]


def test_x1_switching_deals_to_both_fills_in_orders_and_carts_from_a_replay_without_duplicates() -> None:
    """An account written in `deals` mode, then the mode switched to `deals,orders` and the topics
    replayed (the rules rebuilt in the new mode, their commands applied over the account): it holds
    what `deals,orders` from scratch holds; its deals are the same records (by their unique keys)
    as before, with the same values, and the orders and carts are added beside them."""
    before = play(STORE.events)
    replayed = play(STORE.events, config=BOTH)
    switched = fold([*before.commands, *replayed.commands])
    assert switched == fold(replayed.commands), "the switch ends where `deals,orders` from scratch ends"
    old = account_of(before)
    assert switched.of("deals") == old.of("deals"), "no deal duplicated or changed by the switch"
    assert switched.of("contacts") == old.of("contacts")
    assert switched.of("orders") and switched.of("carts") and not old.of("orders")
