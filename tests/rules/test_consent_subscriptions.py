"""X4, opt-in: a Shopify email consent change as a HubSpot subscription status change.

Off by default (``test_consent.py::test_x4_nothing_subscribes_or_unsubscribes_anyone_in_hubspot``).
With ``sync_email_subscription`` set, the contact rules emit a ``SetSubscription`` when the
contact's email consent state (the newest, as X4 folds it) becomes ``unsubscribed`` or, with a
legal basis configured, ``subscribed``; never for the other states, never twice for one state.
"""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from schemas.commands import SetSubscription
from schemas.envelope import Delivery
from streams.rules.keys import contact_ref
from tests.rules.test_consent import email_consent, with_consent
from tests.rules.test_contacts import EMAIL, T0, deliver, fold

SUBSCRIPTION = "Marketing Information"
UNSUBSCRIBE_ONLY = RuleConfig(sync_email_subscription=SUBSCRIPTION)
BOTH_WAYS = RuleConfig(sync_email_subscription=SUBSCRIPTION, email_legal_basis="CONSENT_WITH_NOTICE")
DAY = timedelta(days=1)


def states(*names: str) -> list[Delivery]:
    """Customer deliveries whose email consent moves through ``names``, a day apart."""
    return [deliver("customers/update", with_consent(T0 + i * DAY, email=email_consent(n, T0 + i * DAY)),
                    T0 + i * DAY) for i, n in enumerate(names)]  # fmt: skip


def moves(config: RuleConfig, *names: str) -> list[SetSubscription]:
    run = fold(states(*names), config=config)
    return [c for c in run.commands if isinstance(c, SetSubscription)]


def test_x4_with_the_setting_an_unsubscribe_in_shopify_unsubscribes_in_hubspot() -> None:
    (move,) = moves(UNSUBSCRIBE_ONLY, "subscribed", "unsubscribed")
    assert move == SetSubscription(record=contact_ref(EMAIL), subscription=SUBSCRIPTION, state="UNSUBSCRIBED")


def test_x4_subscribing_needs_a_legal_basis_and_carries_it() -> None:
    assert moves(UNSUBSCRIBE_ONLY, "subscribed") == []
    (move,) = moves(BOTH_WAYS, "subscribed")
    assert (move.state, move.legal_basis) == ("SUBSCRIBED", "CONSENT_WITH_NOTICE")
    assert move.legal_basis_explanation == BOTH_WAYS.email_legal_basis_explanation


def test_x4_other_states_and_unchanged_states_change_nothing_in_hubspot() -> None:
    assert moves(BOTH_WAYS, "not_subscribed", "pending", "invalid", "redacted") == []
    again = moves(BOTH_WAYS, "unsubscribed", "unsubscribed", "not_subscribed", "unsubscribed")
    assert [m.state for m in again] == ["UNSUBSCRIBED", "UNSUBSCRIBED"]  # each time it becomes so
    legacy = deliver("customers/update", with_consent(T0, accepts_marketing=False), T0)
    assert [c for c in fold([legacy], config=BOTH_WAYS).commands if isinstance(c, SetSubscription)] == []


def test_x4_the_setting_off_emits_no_subscription_change_at_all() -> None:
    assert moves(RuleConfig(), "subscribed", "unsubscribed", "subscribed") == []
    assert moves(RuleConfig(sync_email_subscription="  "), "unsubscribed") == []  # blank: off


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(st.sampled_from(["subscribed", "unsubscribed", "not_subscribed"]), min_size=1, max_size=5),
    seed=st.integers(0, 2**32),
    dupes=st.lists(st.integers(0, 4), max_size=3),
)
def test_x4_in_any_arrival_order_the_last_change_is_the_newest_consents(
    names: list[str], seed: int, dupes: list[int]
) -> None:
    """Duplicates and reordering: the last status asked for follows the newest consent, and a
    duplicate never asks again."""
    deliveries = states(*names)
    shuffled = deliveries + [deliveries[i] for i in dupes if i < len(deliveries)]
    random.Random(seed).shuffle(shuffled)
    run = fold(shuffled, config=BOTH_WAYS, now=T0 + 10 * DAY)
    asked = [c.state for c in run.commands if isinstance(c, SetSubscription)]
    final = {"subscribed": "SUBSCRIBED", "unsubscribed": "UNSUBSCRIBED"}.get(names[-1])
    if final is not None:
        assert asked and asked[-1] == final
    assert len(asked) <= len(names)  # at most once a change of state, duplicates never ask
    replayed = fold(shuffled, config=BOTH_WAYS, state=run.state, now=T0 + 10 * DAY)
    assert [c for c in replayed.commands if isinstance(c, SetSubscription)] == []
