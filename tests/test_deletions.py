"""HubSpot deletions joined with the writer's id map (streams.deletions): in any arrival order,
with duplicates, every deletion of a contact the product wrote is released with its email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import HubSpotContactDeletion
from streams.deletions import (
    ContactIdMapping,
    HubSpotObjectState,
    contact_id_mapping,
    on_deletion,
    on_mapping,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MAPPING = ContactIdMapping(object_id=501, email="ann@example.com")


def deletion(n: int) -> HubSpotContactDeletion:
    return HubSpotContactDeletion(event_id=f"ev-{n}", object_id=501, occurred_at=T0 + timedelta(minutes=n))


def test_the_id_map_record_of_a_contact_is_a_mapping_and_others_are_not() -> None:
    assert contact_id_mapping(b"contacts:email:Ann@Example.com ", b"501") == MAPPING
    assert contact_id_mapping(b"deals:shopify_deal_key:j1", b"77") is None
    assert contact_id_mapping(b"contacts:email:ann@example.com", None) is None  # a tombstone
    assert contact_id_mapping(b"contacts:email:ann@example.com", b"not-an-id") is None
    # HubSpot no longer holds it: the writer keeps the id, so the join survives compaction (C4)
    assert contact_id_mapping(b"contacts:email:ann@example.com", b"gone:501") == MAPPING
    assert contact_id_mapping(b"contacts:email:ann@example.com", b"gone:") is None


def test_a_deletion_before_its_mapping_waits_and_is_released_with_the_email() -> None:
    state, out = on_deletion(HubSpotObjectState(), deletion(1))
    assert out == [] and len(state.pending) == 1
    state, out = on_mapping(state, MAPPING)
    assert [d.email for d in out] == ["ann@example.com"] and state.pending == ()
    state, out = on_deletion(state, deletion(2))
    assert [(d.event_id, d.email) for d in out] == [("ev-2", "ann@example.com")]


@given(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=12),
)
def test_every_deletion_is_released_once_the_mapping_is_known_in_any_order(
    deletions: list[int], mapping_at: int
) -> None:
    inputs: list[ContactIdMapping | HubSpotContactDeletion] = [deletion(n) for n in deletions]
    inputs.insert(min(mapping_at, len(inputs)), MAPPING)
    state = HubSpotObjectState()
    released: list[HubSpotContactDeletion] = []
    for item in inputs:
        if isinstance(item, ContactIdMapping):
            state, out = on_mapping(state, item)
        else:
            state, out = on_deletion(state, item)
        released += out
    assert {d.event_id for d in released} == {f"ev-{n}" for n in deletions}
    assert all(d.email == "ann@example.com" for d in released)
    assert state.pending == ()
