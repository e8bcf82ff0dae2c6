"""Whole-store properties of the processing pipeline (routing + rules + timers), without Kafka.

Over generated stores, with the clock advanced by hourly ticks as the log would carry them:
duplicates change nothing, replay from scratch gives the same commands, and any order of the
deliveries between two ticks converges to the same HubSpot account.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.localrun import delivery_for
from devtools.samplestore import SampleEvent, generate
from handlers.account_fold import Account, fold
from schemas.envelope import HubSpotContactDeletion
from streams.inprocess import InProcessPipeline

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
    events: list[SampleEvent], seed: int = 0, shuffle: bool = False, duplicate: bool = False
) -> InProcessPipeline:
    """Deliver ``events`` with an hourly tick; optionally shuffled within each hour, and with about
    half of them delivered a second time (Shopify's retries), both chosen by ``seed``."""
    pipeline = InProcessPipeline()
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
