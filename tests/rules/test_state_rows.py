"""State rows: ``model_dump(mode="json")`` writes one, ``model_validate`` reads it back, exactly.

The values nested in states are plain frozen dataclasses (``Version``, ``Stamped``, ``Snapshot``,
``Line``, the views); pydantic still reads and writes them as part of their state's row, in the
same JSON as when they were pydantic models, so rows stored before stay readable.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
from pydantic import BaseModel

from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from streams.inprocess import InProcessPipeline
from streams.rules.common import Version
from streams.rules.contacts import ContactState, Stamped
from streams.rules.journeys import JourneyState, Line, Snapshot
from streams.rules.products import ProductState, ProductView


def test_every_state_of_a_sample_store_round_trips_through_its_row() -> None:
    store = generate(customers=30, seed=11)
    pipeline = InProcessPipeline()
    for batch, tick_at in schedule(store.events, timedelta(hours=1), timedelta(days=3)):
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    tables: list[tuple[type[BaseModel], list[BaseModel]]] = [
        (ContactState, list(pipeline.contact_states.values())),
        (JourneyState, list(pipeline.journey_states.values())),
        (ProductState, list(pipeline.product_states.values())),
    ]
    for model, states in tables:
        assert states
        for state in states:
            row = orjson.loads(orjson.dumps(state.model_dump(mode="json")))  # as a table stores it
            loaded = model.model_validate(row)
            assert loaded == state
            assert loaded.model_dump(mode="json") == row
    contact = next(s for s in pipeline.contact_states.values() if s.profile)
    assert all(type(s) is Stamped and type(s.version) is Version for s in contact.profile.values())
    journey = next(s for s in pipeline.journey_states.values() if s.order is not None)
    loaded_journey = JourneyState.model_validate(journey.model_dump(mode="json"))
    assert type(loaded_journey.order) is Snapshot
    assert all(type(line) is Line for line in loaded_journey.order.lines)
    product = next(iter(pipeline.product_states.values()))
    assert type(ProductState.model_validate(product.model_dump(mode="json")).emitted) is ProductView


def test_a_row_in_the_stored_format_reads_as_before() -> None:
    """Written by the version before these were dataclasses (the same JSON it always was)."""
    row = {
        "email": "ada@example.com", "partition": -1, "seen": {"e1": "2026-03-02T09:00:00Z"},
        "deleted_in_hubspot_at": None, "customer": None, "details": None,
        "profile": {"firstname": {"version": {"updated_at": "2026-03-02T09:00:00Z", "digest": "ab"},
                                  "value": "Ada"}},
        "billing": {}, "origin": {"rank": [2, "2026-03-02T09:00:00Z", "ab"], "drill_down_1": "shopify",
                                  "drill_down_2": "customer"},
        "purchases": {}, "purchase_journeys": {}, "voided": {}, "reengagement_fired_at": None,
        "reengagement_late": False, "reengagement_basis": None, "first_purchase_journey": None,
        "emitted": {"exists": True, "properties": {"email": "ada@example.com", "firstname": "Ada"}},
    }  # fmt: skip
    state = ContactState.model_validate(row)
    assert state.profile["firstname"].value == "Ada" and state.origin is not None
    # a row from before X4 and X3: no consent yet, no shops
    assert state.model_dump(mode="json") == {**row, "consent": {}, "shops": [], "shop_counts": {}}
