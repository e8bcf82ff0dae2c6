"""X4: Shopify's email and SMS marketing consent as contact properties (``streams.rules.consent``).

Bodies are the sample store's, with the consent objects as Shopify's REST Admin API shapes them
(``email_marketing_consent``: state, opt_in_level, consent_updated_at; ``sms_marketing_consent``
adds consent_collected_from), folded through the contact rules with ``now`` passed explicitly.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.commands import Upsert
from schemas.shopify import Customer
from schemas.tolerance import parse_tolerant
from schemas.types import EmailMarketingState, MarketingOptInLevel, SmsMarketingState
from streams.inprocess import InProcessPipeline
from streams.rules import consent
from streams.rules.consent import (
    EMAIL_OPT_IN_LEVEL,
    EMAIL_STATE,
    EMAIL_UPDATED_AT,
    SMS_COLLECTED_FROM,
    SMS_OPT_IN_LEVEL,
    SMS_STATE,
    SMS_UPDATED_AT,
)
from streams.rules.keys import contact_ref
from tests.rules.test_contacts import EMAIL, T0, customer, deliver, fold, hs_time, hubspot_after, order, view

CONSENT = {p.name for p in consent.CONSENT_PROPERTIES}


def email_consent(state: str, at: Any, level: str | None = "single_opt_in") -> dict[str, Any]:
    return {"state": state, "opt_in_level": level, "consent_updated_at": at.isoformat() if at else None}


def sms_consent(
    state: str, at: Any, level: str | None = "single_opt_in", source: str = "SHOPIFY"
) -> dict[str, Any]:
    return {**email_consent(state, at, level), "consent_collected_from": source}


def with_consent(
    updated_at: Any, email: dict[str, Any] | None = None, sms: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """A ``customers/update`` body of the test customer with these consents (the legacy boolean
    and the newer objects as a current API version sends them)."""
    body = customer(updated_at=updated_at, **kw)
    if email is not None:
        body["email_marketing_consent"] = email
    if sms is not None:
        body["sms_marketing_consent"] = sms
    return body


def consent_view(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    run = fold([deliver("customers/update", b, T0 + timedelta(minutes=i)) for i, b in enumerate(bodies)])
    return {k: v for k, v in view(run).items() if k in CONSENT}


# ---- what is synced ----


def test_x4_email_and_sms_consent_are_synced_as_shopify_holds_them() -> None:
    body = with_consent(
        T0,
        email=email_consent("subscribed", T0 - timedelta(days=3), "confirmed_opt_in"),
        sms=sms_consent("pending", T0 - timedelta(days=1), "unknown", "OTHER"),
    )
    assert consent_view([body]) == {
        EMAIL_STATE: "subscribed", EMAIL_OPT_IN_LEVEL: "confirmed_opt_in",
        EMAIL_UPDATED_AT: hs_time(T0 - timedelta(days=3)),
        SMS_STATE: "pending", SMS_OPT_IN_LEVEL: "unknown", SMS_UPDATED_AT: hs_time(T0 - timedelta(days=1)),
        SMS_COLLECTED_FROM: "OTHER",
    }  # fmt: skip


def test_x4_every_documented_state_and_level_is_an_option_of_its_property() -> None:
    """HubSpot refuses a value that is not an option, so every value Shopify documents is one
    (Admin API: CustomerEmailMarketingState, CustomerSmsMarketingState, CustomerMarketingOptInLevel,
    CustomerConsentCollectedFrom), and ``unknown`` only where Shopify has it (the opt-in level)."""
    options = {p.name: [v for _, v in p.options] for p in consent.CONSENT_PROPERTIES}
    assert options[EMAIL_STATE] == [
        "subscribed",
        "not_subscribed",
        "unsubscribed",
        "pending",
        "redacted",
        "invalid",
    ]
    assert options[SMS_STATE] == ["subscribed", "not_subscribed", "unsubscribed", "pending", "redacted"]
    assert (
        options[EMAIL_OPT_IN_LEVEL]
        == options[SMS_OPT_IN_LEVEL]
        == ["single_opt_in", "confirmed_opt_in", "unknown"]
    )
    assert options[SMS_COLLECTED_FROM] == ["SHOPIFY", "OTHER"]
    for state in EmailMarketingState:
        got = consent_view([with_consent(T0, email=email_consent(state.value, T0))])
        assert got[EMAIL_STATE] in options[EMAIL_STATE]


def test_x4_a_cleared_opt_in_level_clears_the_property() -> None:
    """Shopify gives no opt-in level once a customer is not subscribed: a newer ``null`` clears it."""
    subscribed = with_consent(T0, email=email_consent("subscribed", T0))
    withdrawn = with_consent(
        T0 + timedelta(hours=1), email=email_consent("unsubscribed", T0 + timedelta(hours=1), None)
    )
    got = consent_view([subscribed, withdrawn])
    assert got[EMAIL_STATE] == "unsubscribed" and got[EMAIL_OPT_IN_LEVEL] is None


def test_x4_the_consent_nested_in_orders_and_checkouts_counts_too() -> None:
    nested = with_consent(T0 + timedelta(days=2), sms=sms_consent("subscribed", T0 + timedelta(days=2)))
    run = fold([
        deliver("customers/create", with_consent(T0, sms=sms_consent("not_subscribed", T0, None)), T0),
        deliver("orders/create", order(1, T0 + timedelta(days=2), cust=nested), T0 + timedelta(days=2)),
    ])  # fmt: skip
    assert view(run)[SMS_STATE] == "subscribed"


def test_x4_legacy_accepts_marketing_is_used_only_without_the_newer_object() -> None:
    legacy = customer(accepts_marketing=True)
    del legacy["email_marketing_consent"]
    legacy["accepts_marketing_updated_at"] = (T0 - timedelta(days=5)).isoformat()
    legacy["marketing_opt_in_level"] = "confirmed_opt_in"
    assert consent_view([legacy]) == {
        EMAIL_STATE: "subscribed", EMAIL_OPT_IN_LEVEL: "confirmed_opt_in",
        EMAIL_UPDATED_AT: hs_time(T0 - timedelta(days=5)),
    }  # fmt: skip
    # Both in one version (API versions 2022-04 to the removal): the newer object decides.
    both = with_consent(
        T0, email=email_consent("unsubscribed", T0 - timedelta(days=1), None), accepts_marketing=True
    )
    assert consent_view([both])[EMAIL_STATE] == "unsubscribed"


def test_x4_no_consent_object_says_nothing() -> None:
    """``null`` (a customer without an email or a phone) or a field left out keeps what was synced."""
    first = with_consent(T0, email=email_consent("subscribed", T0), sms=sms_consent("subscribed", T0))
    later = with_consent(T0 + timedelta(days=1), email=None)
    later["email_marketing_consent"] = None
    del later["accepts_marketing"]
    later.pop("sms_marketing_consent", None)
    got = consent_view([first, later])
    assert got[EMAIL_STATE] == "subscribed" and got[SMS_STATE] == "subscribed"


def test_x4_nothing_subscribes_or_unsubscribes_anyone_in_hubspot() -> None:
    """By default consent changes write only the project's own properties: never HubSpot's
    subscription fields (``hs_email_optout`` and the like), never a subscription status (only
    ``sync_email_subscription`` turns that on: ``tests/rules/test_consent_subscriptions.py``)."""
    bodies = [
        with_consent(T0, email=email_consent("subscribed", T0), sms=sms_consent("subscribed", T0)),
        with_consent(
            T0 + timedelta(days=1),
            email=email_consent("unsubscribed", T0 + timedelta(days=1), None),
            sms=sms_consent("unsubscribed", T0 + timedelta(days=1), None),
        ),
    ]
    run = fold([deliver("customers/update", b, T0 + timedelta(days=i)) for i, b in enumerate(bodies)])
    written = {k for c in run.commands if isinstance(c, Upsert) for k in c.properties}
    assert written >= CONSENT
    assert not {k for k in written if k.startswith("hs_") or "optout" in k or "subscription" in k}
    assert all(isinstance(c, Upsert) for c in run.commands)


# ---- newest consent_updated_at wins, whatever the arrival order ----


def test_x4_an_older_consent_delivered_late_does_not_roll_consent_back() -> None:
    newer = with_consent(
        T0 + timedelta(hours=2), email=email_consent("unsubscribed", T0 + timedelta(hours=2), None)
    )
    older = with_consent(T0 + timedelta(hours=1), email=email_consent("subscribed", T0 + timedelta(hours=1)))
    assert consent_view([newer, older])[EMAIL_STATE] == "unsubscribed"


def test_x4_consent_is_dated_by_consent_updated_at_not_by_the_customers_updated_at() -> None:
    """A customer edited later (a newer ``updated_at``) may still carry an older consent record,
    as an order's nested customer snapshot does: the consent's own date decides."""
    fresh = with_consent(T0, email=email_consent("unsubscribed", T0, None))
    stale = with_consent(T0 + timedelta(days=1), email=email_consent("subscribed", T0 - timedelta(days=30)))
    assert consent_view([fresh, stale])[EMAIL_STATE] == "unsubscribed"
    assert consent_view([stale, fresh])[EMAIL_STATE] == "unsubscribed"


EMAIL_STATES = [m.value for m in EmailMarketingState]
SMS_STATES = [m.value for m in SmsMarketingState]
LEVELS = [None, *(m.value for m in MarketingOptInLevel)]


@st.composite
def consent_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Customer versions whose consents were updated at distinct minutes (some without a date:
    then the version's own ``updated_at`` dates it), each with its own ``updated_at``."""
    n = draw(st.integers(min_value=1, max_value=6))
    minutes = draw(st.lists(st.integers(0, 500), min_size=2 * n, max_size=2 * n, unique=True))
    bodies = []
    for i in range(n):
        email_at = T0 + timedelta(minutes=minutes[i]) if draw(st.booleans()) else None
        sms_at = T0 + timedelta(minutes=minutes[n + i])
        updated = T0 + timedelta(
            minutes=minutes[i] if email_at is None else draw(st.integers(0, 500)), seconds=i
        )
        bodies.append(with_consent(
            updated,
            email=email_consent(draw(st.sampled_from(EMAIL_STATES)), email_at, draw(st.sampled_from(LEVELS))),
            sms=sms_consent(draw(st.sampled_from(SMS_STATES)), sms_at, draw(st.sampled_from(LEVELS)),
                            draw(st.sampled_from(["SHOPIFY", "OTHER"]))),
        ))  # fmt: skip
    return bodies


def _expected(bodies: list[dict[str, Any]]) -> tuple[str, str]:
    """Shopify's rule: the consent with the most recent date (no date: the version's own time)."""

    def email_at(b: dict[str, Any]) -> str:
        return str(b["email_marketing_consent"]["consent_updated_at"] or b["updated_at"])

    def parse(text: str) -> Any:
        return Customer.model_validate({"id": 1, "updated_at": text}).updated_at

    email = max(bodies, key=lambda b: parse(email_at(b)))["email_marketing_consent"]["state"]
    sms = max(bodies, key=lambda b: parse(b["sms_marketing_consent"]["consent_updated_at"]))
    return email, sms["sms_marketing_consent"]["state"]


@settings(max_examples=60, deadline=None)
@given(bodies=consent_histories(), data=st.data())
def test_x4_any_arrival_order_with_duplicates_ends_with_the_newest_consent(
    bodies: list[dict[str, Any]], data: st.DataObject
) -> None:
    deliveries = [deliver("customers/update", b, T0 + timedelta(minutes=i)) for i, b in enumerate(bodies)]
    arrivals = data.draw(
        st.permutations(deliveries + data.draw(st.lists(st.sampled_from(deliveries), max_size=4)))
    )
    in_order = fold(deliveries)
    shuffled = fold(arrivals, now=T0 + timedelta(days=1))
    assert view(shuffled) == view(in_order)
    email, sms = _expected(bodies)
    assert (view(shuffled)[EMAIL_STATE], view(shuffled)[SMS_STATE]) == (email, sms)
    # What HubSpot ends up holding, from the commands, agrees with the view.
    held = hubspot_after(shuffled.commands)[contact_ref(EMAIL).key]
    assert {k: held.get(k) for k in CONSENT} == {k: view(shuffled).get(k) for k in CONSENT}


# ---- broken consent fields are field problems, the rest syncs ----


def test_x4_broken_consent_fields_are_reported_and_the_rest_of_the_customer_syncs() -> None:
    body = with_consent(
        T0,
        email={"state": "opted_in_by_magic", "opt_in_level": ["single_opt_in"],
               "consent_updated_at": "yesterday"},
        sms={"state": True, "opt_in_level": "confirmed_opt_in", "consent_updated_at": 1700000000,
             "consent_collected_from": "THE_MOON"},
        note="Prefers email",
    )  # fmt: skip
    problems = {p.path: p.reason for p in parse_tolerant(Customer, body).problems}
    assert set(problems) == {
        "email_marketing_consent.state", "email_marketing_consent.opt_in_level",
        "email_marketing_consent.consent_updated_at", "sms_marketing_consent.state",
        "sms_marketing_consent.consent_updated_at", "sms_marketing_consent.consent_collected_from",
    }  # fmt: skip
    assert all("magic" not in r and "MOON" not in r for r in problems.values()), "reasons carry no values"
    pipeline = InProcessPipeline()
    commands = pipeline.deliver(deliver("customers/update", body, T0))
    assert {p.path for _, p in pipeline.field_problems} == set(problems)
    (upsert,) = [c for c in commands if isinstance(c, Upsert) and c.record.object_type == "contacts"]
    assert (
        upsert.properties["shopify_customer_note"] == "Prefers email"
        and upsert.properties["firstname"] == "Ada"
    )
    # The one consent field that fitted is synced; the broken ones are absent, not cleared.
    assert upsert.properties[SMS_OPT_IN_LEVEL] == "confirmed_opt_in"
    assert not {EMAIL_STATE, EMAIL_OPT_IN_LEVEL, EMAIL_UPDATED_AT, SMS_STATE, SMS_UPDATED_AT} & set(
        upsert.properties
    )


def test_x4_a_broken_field_keeps_the_value_an_earlier_consent_gave() -> None:
    good = with_consent(T0, sms=sms_consent("subscribed", T0))
    broken = copy.deepcopy(good)
    broken["updated_at"] = (T0 + timedelta(hours=1)).isoformat()
    broken["sms_marketing_consent"] = {**sms_consent("unsubscribed", T0 + timedelta(hours=1), None),
                                       "consent_collected_from": 42}  # fmt: skip
    got = consent_view([good, broken])
    assert got[SMS_STATE] == "unsubscribed" and got[SMS_COLLECTED_FROM] == "SHOPIFY"


def test_x4_consent_values_are_read_in_any_letter_case() -> None:
    """GraphQL spells the values in upper case; they are the same values."""
    body = with_consent(
        T0, email={"state": "SUBSCRIBED", "opt_in_level": "CONFIRMED_OPT_IN", "consent_updated_at": None}
    )
    parsed = parse_tolerant(Customer, body)
    assert not parsed.problems
    assert consent_view([body])[EMAIL_STATE] == "subscribed"
