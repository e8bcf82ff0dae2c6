"""The bulk-import figure's judgement of a killed-and-resumed import against a clean one
(``bench.figures.bulk_import.compare``) and how it reads a record's identity; the figure itself
runs in CI's ``shopsync bench --quick``."""

from __future__ import annotations

from collections import Counter

import orjson

from bench.figures.bulk_import import CHECKED, FIGURE, Scan, _event_id, compare
from bench.runner import discover


def scans(**records: list[tuple[bytes, str]]) -> dict[str, Scan]:
    """A Scan per checked topic; ``records`` by topic name with dots as underscores."""
    out: dict[str, Scan] = {t: Scan() for t in CHECKED}
    for name, pairs in records.items():
        out[name.replace("_", ".")] = Scan(Counter(pairs))
    return out


CLEAN = [(b"1", "import:orders:1:t"), (b"2", "import:orders:2:t"), (b"3", "import:orders:3:t")]


def test_equal_topics_with_a_batch_re_appended_per_kill_pass() -> None:
    resumed = scans(shopify_orders=[*CLEAN, CLEAN[1], CLEAN[2]])
    assert resumed["shopify.orders"].repeats == 2
    assert compare(scans(shopify_orders=CLEAN), resumed, kills=2, checkpoint=1) == []


def test_a_skipped_record_a_foreign_one_or_too_many_repeats_are_reported() -> None:
    clean = scans(shopify_orders=CLEAN)
    skipped = compare(clean, scans(shopify_orders=CLEAN[:2]), kills=2, checkpoint=1)
    assert skipped == ["shopify.orders: 1 records missing from the resumed import, 0 foreign"]
    foreign = compare(clean, scans(shopify_orders=[*CLEAN, (b"4", "x")]), kills=2, checkpoint=1)
    assert foreign == ["shopify.orders: 0 records missing from the resumed import, 1 foreign"]
    repeated = compare(clean, scans(shopify_orders=CLEAN * 2), kills=1, checkpoint=1)
    assert repeated == ["3 records re-appended, more than 2 batches of 1 per kill"], "two batches in flight"
    assert compare(clean, scans(shopify_orders=CLEAN * 2), kills=2, checkpoint=1) == [], "4 allowed"
    twice = compare(scans(shopify_orders=CLEAN * 2), scans(shopify_orders=CLEAN * 2), kills=2, checkpoint=5)
    assert twice == ["shopify.orders: the clean import appended 3 records twice"]


def test_a_record_is_known_by_its_event_id_and_a_dead_letter_by_its_bytes() -> None:
    delivery = orjson.dumps({"kind": "delivery", "event_id": "import:orders:1:t"})
    assert _event_id(delivery) == "import:orders:1:t"
    letter = orjson.dumps({"reason": "no id"})
    assert _event_id(letter).startswith("sha256:") and _event_id(letter) == _event_id(letter)
    assert _event_id(b"not json").startswith("sha256:")


def test_the_figure_is_one_of_the_suite() -> None:
    figures, broken = discover()
    assert FIGURE in figures and not [b for b in broken if b.name == "bulk_import"]
