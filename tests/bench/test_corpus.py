"""The benchmarks' record copier: every copy is a store of its own, and every record still reads."""

from __future__ import annotations

from datetime import timedelta

from bench import corpus
from devtools.localrun import delivery_for
from schemas.envelope import Delivery, decode_log_record, encode
from streams.topics import route


def test_copies_have_identities_of_their_own_and_decode() -> None:
    template = corpus.template(30)
    n = len(template)
    records = list(template.copies(3 * n))
    assert len(records) == 3 * n
    first, second = records[:n], records[n : 2 * n]
    assert {k for _, k, _ in first}.isdisjoint({k for _, k, _ in second})
    for (topic, key, value), (topic2, key2, value2) in zip(first, second, strict=True):
        assert topic == topic2
        one, two = decode_log_record(value), decode_log_record(value2)
        assert isinstance(one, Delivery) and isinstance(two, Delivery)
        assert one.event_id != two.event_id and one.topic == two.topic
        body = one.parse_body_with_problems()[0]
        assert body is not None
        assert route(one.topic, dict(one.body))[1] == key  # the key still matches the body
        assert route(two.topic, dict(two.body))[1] == key2
        if one.body.get("email"):
            assert one.body["email"] != two.body["email"]


def test_a_cut_short_count_and_the_enlarged_sizes() -> None:
    template = corpus.template(30)
    assert len(list(template.copies(len(template) + 7))) == len(template) + 7
    if template.realistic:  # Shopify's samples are there: orders are several KB
        orders = [v for t, _, v in template.copies(len(template)) if t == "shopify.orders"]
        assert max(map(len, orders)) > 6_000


def test_a_second_pass_is_news_not_a_duplicate() -> None:
    event = corpus.sample_events(10, topics=frozenset({"checkouts/create"}))[0]
    later = corpus.updated(event, timedelta(hours=1))
    assert later.topic == "checkouts/update" and later.event_id != event.event_id
    assert later.body["token"] == event.body["token"]
    one = corpus.template_of([event], realistic=False).records[0]
    two = corpus.template_of([later], realistic=False).records[0]
    mark = b"7"
    assert one.copy(mark)[1] == two.copy(mark)[1]  # the same checkout
    first, again = decode_log_record(one.copy(mark)[2]), decode_log_record(two.copy(mark)[2])
    assert isinstance(first, Delivery) and isinstance(again, Delivery)
    assert first.event_id != again.event_id


def test_a_copy_marked_with_nothing_is_the_template_itself() -> None:
    event = corpus.sample_events(5)[3]
    record = corpus.template_of([event], realistic=False).records[0]
    assert record.copy(b"")[2] == encode(delivery_for(event))
