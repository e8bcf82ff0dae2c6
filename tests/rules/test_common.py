"""The shared rule machinery: duplicate memory with an event-time TTL, versions, diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from config.rules import RuleConfig
from schemas.commands import RecordRef, Upsert
from streams.mapping import format_value
from streams.rules.common import Version, body_digest, evolve, remember, upsert_if_changed
from streams.rules.contacts import ContactState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_duplicate_event_id_is_recognised_within_the_ttl() -> None:
    seen = remember({}, "e1", T0, timedelta(hours=48))
    assert seen == {"e1": T0}
    assert remember(seen, "e1", T0 + timedelta(hours=47), timedelta(hours=48)) is None


def test_the_duplicate_memory_expires_by_event_time_not_wall_clock() -> None:
    """Entries older than the TTL (in the events' own time) are dropped as newer events come."""
    ttl = RuleConfig().dedupe_ttl
    assert ttl >= timedelta(hours=24), "longer than Shopify's retry window, at least a day"
    seen = remember({}, "old", T0, ttl)
    assert seen is not None
    later = remember(seen, "new", T0 + ttl + timedelta(seconds=1), ttl)
    assert later == {"new": T0 + ttl + timedelta(seconds=1)}


def test_versions_order_by_updated_at_then_a_stable_body_hash() -> None:
    a = Version(updated_at=T0, digest=body_digest({"id": 1, "x": 1}))
    b = Version(updated_at=T0, digest=body_digest({"x": 2, "id": 1}))
    later = Version(updated_at=T0 + timedelta(seconds=1), digest="0")
    assert later.newer_than(a) and later.newer_than(b)
    assert a.newer_than(b) != b.newer_than(a), "ties are broken the same way whatever the order"
    assert body_digest({"a": 1, "b": 2}) == body_digest({"b": 2, "a": 1})


def test_an_upsert_carries_only_changed_properties_plus_the_unique_key() -> None:
    ref = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="cart:1")
    (first,) = upsert_if_changed(ref, {"dealname": "#1", "amount": "5"}, None)
    assert isinstance(first, Upsert)
    assert first.properties == {"amount": "5", "dealname": "#1", "shopify_deal_key": "cart:1"}
    assert upsert_if_changed(ref, {"dealname": "#1", "amount": "5"}, {"dealname": "#1", "amount": "5"}) == []
    (changed,) = upsert_if_changed(ref, {"dealname": "#1", "amount": "6"}, {"dealname": "#1", "amount": "5"})
    assert isinstance(changed, Upsert)
    assert changed.properties == {"amount": "6", "shopify_deal_key": "cart:1"}


def test_a_digest_is_the_bodys_whatever_was_hashed_before() -> None:
    """Digests are remembered per body object; equal bodies agree, and a new body is hashed anew."""
    body = {"id": 1, "x": [1, 2]}
    first = body_digest(body)
    assert body_digest(body) == first == body_digest({"x": [1, 2], "id": 1})
    assert body_digest({"id": 1, "x": [1, 3]}) != first


def test_evolve_is_model_copy_without_validation() -> None:
    state = ContactState(email="a@b.co")
    changed = evolve(state, {"seen": {"e1": T0}, "reengagement_late": True})
    want = state.model_copy(update={"seen": {"e1": T0}, "reengagement_late": True})
    assert changed == want and changed.model_fields_set == want.model_fields_set
    assert changed.model_dump(mode="json") == want.model_dump(mode="json")
    assert state.seen == {} and state.model_fields_set == {"email"}


@given(
    at=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(3009, 12, 30)),
    offset_minutes=st.integers(-23 * 60, 23 * 60),
)
def test_instants_are_written_as_utc_with_milliseconds(at: datetime, offset_minutes: int) -> None:
    aware = at.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    utc = aware.astimezone(UTC)
    assert format_value(aware) == utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
