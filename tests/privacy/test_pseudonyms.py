"""Pseudonyms and the compliance record, as pure functions (``streams.privacy``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import Delivery
from streams.privacy import compliance_request, normalize_phone, pseudonym

KEY, OTHER_KEY = b"k" * 32, b"o" * 32
local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20)
emails = st.builds(lambda a, b: f"{a}@{b}.com", local, local)


@given(emails, st.sampled_from([str.upper, str.lower, str.title]), st.text(" \t", max_size=3))
def test_one_address_one_pseudonym_whatever_its_case_and_spacing(email: str, case: object, pad: str) -> None:
    assert callable(case)
    assert pseudonym(KEY, "email", f"{pad}{case(email)}{pad}") == pseudonym(KEY, "email", email)


@given(emails, emails)
def test_two_addresses_two_pseudonyms(a: str, b: str) -> None:
    if a.lower() != b.lower():
        assert pseudonym(KEY, "email", a) != pseudonym(KEY, "email", b)


@given(emails)
def test_a_pseudonym_shows_nothing_of_the_address_and_needs_the_key(email: str) -> None:
    made = pseudonym(KEY, "email", email)
    assert made is not None and made.startswith("p1:")
    assert email.lower() not in made.lower() and email.split("@")[1] not in made
    assert made != pseudonym(OTHER_KEY, "email", email), "another key, another pseudonym"


def test_kinds_are_kept_apart_and_unusable_values_have_none() -> None:
    assert pseudonym(KEY, "email", "5551199@x.io") != pseudonym(KEY, "phone", "5551199@x.io")
    assert pseudonym(KEY, "email", "no-at-sign") is None
    assert pseudonym(KEY, "email", None) is None
    assert pseudonym(KEY, "phone", "call me") is None


@pytest.mark.parametrize(
    ("phone", "normal"),
    [
        ("+1 (555) 625-1199", "+15556251199"),
        ("555-625-1199", "5556251199"),
        (" +44 20 7946 0958", "+442079460958"),
    ],
)
def test_phones_are_compared_by_their_digits(phone: str, normal: str) -> None:
    assert normalize_phone(phone) == normal


def delivery(topic: str, body: dict[str, object]) -> Delivery:
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return Delivery(
        topic=topic, shop_domain="S.myshopify.com", webhook_id="w", event_id="e", received_at=at, body=body
    )


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).map("x-{}".format),
        st.text(max_size=12).map("PII-{}".format),
        max_size=4,
    ),
    emails,
)
def test_nothing_of_the_body_is_kept_but_ids_and_pseudonyms(extra: dict[str, str], email: str) -> None:
    body: dict[str, object] = {
        **extra, "shop_id": 1, "customer": {"id": "42", "email": email, "phone": "555", "first_name": "Zed"},
        "orders_to_redact": [7, "8", "x", True],
    }  # fmt: skip
    record = compliance_request(delivery("customers/redact", body), KEY)
    dumped = record.model_dump_json()
    assert email not in dumped and "Zed" not in dumped
    plain = record.model_dump_json(exclude={"email_pseudonym", "phone_pseudonym"})  # base64 may hold "PII-"
    assert "PII-" not in plain and "x-" not in plain, "a key the record does not know is dropped"
    assert (record.customer_id, record.orders, record.shop_domain) == (42, (7, 8), "s.myshopify.com")
    assert record.email_pseudonym == pseudonym(KEY, "email", email)


def test_only_compliance_topics_make_compliance_records() -> None:
    with pytest.raises(ValueError, match="not a compliance topic"):
        compliance_request(delivery("customers/create", {"id": 1}), KEY)
