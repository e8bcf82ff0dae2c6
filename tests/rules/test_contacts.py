"""The contact rules (SPEC C1-C8) and the contact-side triggers (W1, W3, W4), as pure functions.

No Kafka: every test builds Shopify bodies with ``devtools.samplestore``, wraps them in the
envelope the bridge would append, and folds them through ``streams.rules.contacts`` with ``now``
passed explicitly. A small model of HubSpot (:func:`hubspot_after`) applies the emitted commands,
so properties can be stated about what HubSpot ends up holding, not only about the commands.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.samplestore import (
    API_VERSION,
    CITIES,
    PRODUCTS,
    SHOP_DOMAIN,
    Line,
    SampleEvent,
    address,
    checkout_body,
    customer_body,
    generate,
    order_body,
    product_body,
    stable_id,
    token,
)
from schemas.commands import AnyCommand, Archive, Dissociate, PropertyValue, Upsert
from schemas.envelope import Delivery, HubSpotContactDeletion
from schemas.shopify import Checkout, Customer, CustomerDeleted, Order
from streams.rules import contacts
from streams.rules.common import body_digest
from streams.rules.journeys import FirstPurchase
from streams.rules.keys import contact_ref, journey_key, normalize_email

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = RuleConfig()
CID = stable_id("customer", "test-contacts", 1)
EMAIL = "ada.lovelace.1@example.com"
PRODUCT = product_body(stable_id("product", "test-contacts", 0), PRODUCTS[1], T0 - timedelta(days=30))
LINES = [Line(PRODUCT, PRODUCT["variants"][0], 2)]

# C7: the 16 HubSpot contact properties the SPEC lists, by HubSpot name.
C7_PROPERTIES = {
    "shopify_accepts_marketing",  # Accepts marketing
    "shopify_customer_created_at",  # Created at
    "firstname",  # First name
    "lastname",  # Last name
    "email",  # Email
    "phone",  # Phone
    "shopify_customer_note",  # Note
    "shopify_orders_count",  # Orders count
    "shopify_customer_tags",  # Tags
    "shopify_tax_exempt",  # Tax exempt
    "shopify_verified_email",  # Verified email
    "address",  # Street address
    "city",  # City
    "country",  # Country
    "state",  # State/Province
    "zip",  # Zip code
}
DRILL_DOWNS = ("shopify_source_drill_down_1", "shopify_source_drill_down_2")


# ---- builders ----


def hs_time(at: datetime) -> str:
    """How HubSpot is sent an instant: UTC ISO-8601 with milliseconds (see streams.mapping)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def delivery_for(event: SampleEvent) -> Delivery:
    """The envelope the bridge (or the importer, ``source='import'``) appends for a sample event
    (as ``devtools.localrun.delivery_for`` builds it, without importing the Kafka client)."""
    return Delivery(
        topic=event.topic, shop_domain=SHOP_DOMAIN, webhook_id=f"wh-{event.event_id}",
        event_id=event.event_id, triggered_at=event.at, api_version=API_VERSION, received_at=event.at,
        source="import" if event.source == "import" else "webhook", body=event.body,
    )  # fmt: skip


def deliver(
    topic: str, body: dict[str, Any], at: datetime, *, source: str = "webhook", event_id: str | None = None
) -> Delivery:
    """A delivery of ``body`` at ``at``; the event id is derived from its content unless given."""
    eid = event_id or token("event", topic, body_digest(body), at.isoformat(), source)
    return delivery_for(SampleEvent(at=at, topic=topic, body=body, event_id=eid, source=source))


def customer(
    at: datetime = T0, *, email: str | None = EMAIL, updated_at: datetime | None = None, **kw: Any
) -> dict[str, Any]:
    return customer_body(CID, email, "Ada", "Lovelace", at, updated_at=updated_at, **kw)


def order(
    n: int,
    at: datetime,
    *,
    cust: dict[str, Any] | None = None,
    email: str | None = EMAIL,
    updated_at: datetime | None = None,
    financial_status: str = "paid",
) -> dict[str, Any]:
    return order_body(
        stable_id("order", "test-contacts", n), n, LINES, at, customer=cust, email=email,
        checkout_token=token("checkout", n), cart_token=token("cart", n), updated_at=updated_at,
        financial_status=financial_status,
    )  # fmt: skip


def checkout(
    n: int,
    at: datetime,
    *,
    cust: dict[str, Any] | None = None,
    email: str | None = EMAIL,
    created: datetime | None = None,
) -> dict[str, Any]:
    return checkout_body(
        token("checkout", n), token("cart", n), LINES, at, created or at, customer=cust, email=email
    )


def deletion(at: datetime, email: str = EMAIL) -> HubSpotContactDeletion:
    return HubSpotContactDeletion(event_id=f"hs-del-{email}-{at.isoformat()}", object_id=501, email=email,
                                  occurred_at=at)  # fmt: skip


@dataclass
class Run:
    state: contacts.ContactState
    commands: list[AnyCommand] = field(default_factory=list)
    facts: list[FirstPurchase] = field(default_factory=list)


def fold(
    deliveries: Iterable[Delivery],
    *,
    state: contacts.ContactState | None = None,
    now: datetime | None = None,
    config: RuleConfig = CONFIG,
    email: str = EMAIL,
) -> Run:
    """Feed deliveries to one contact, as the contacts agent does (``now`` = the delivery's time
    unless given)."""
    run = Run(state=state or contacts.ContactState(email=email))
    for d in deliveries:
        assert contacts.email_of(d.parse_body()) == run.state.email, "the router would send it elsewhere"
        outcome = contacts.decide(run.state, d, now or d.event_time, config)
        run.state = outcome.state
        run.commands += outcome.commands
        run.facts += outcome.facts
    return run


def tick(run: Run, now: datetime, config: RuleConfig = CONFIG) -> list[AnyCommand]:
    outcome = contacts.on_tick(run.state, now, config)
    run.state = outcome.state
    run.commands += outcome.commands
    run.facts += outcome.facts
    return outcome.commands


def hubspot_after(commands: Iterable[AnyCommand]) -> dict[str, dict[str, PropertyValue]]:
    """What a HubSpot account holds after the commands: record key -> properties."""
    records: dict[str, dict[str, PropertyValue]] = {}
    for command in commands:
        if isinstance(command, Upsert):
            records.setdefault(command.record.key, {}).update(command.properties)
        elif isinstance(command, Archive):
            records.pop(command.record.key, None)
    return records


def only_upsert(commands: Sequence[AnyCommand]) -> Upsert:
    assert len(commands) == 1, commands
    (command,) = commands
    assert isinstance(command, Upsert)
    return command


def view(run: Run) -> dict[str, PropertyValue]:
    return contacts.render(run.state).properties


def held(run: Run, email: str = EMAIL) -> dict[str, PropertyValue]:
    """HubSpot's copy of the contact, restricted to the properties the product manages now."""
    record = hubspot_after(run.commands)[contact_ref(email).key]
    return {k: record.get(k, "<never sent>") for k in view(run)}


# ---- keys: C1 ----


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"),
        ("\tGRACE@EXAMPLE.COM\n", "grace@example.com"),
        ("already@normal.org", "already@normal.org"),
        (None, None),
        ("", None),
        ("   ", None),
        ("not-an-address", None),
    ],
)
def test_c1_normalize_email_trims_and_lower_cases(raw: str | None, expected: str | None) -> None:
    """C1: contacts are de-duplicated by email, so the key is the trimmed, lower-cased address."""
    assert normalize_email(raw) == expected


# ---- C1 / C2 ----


def test_c1_c2_customer_with_email_makes_one_upsert_keyed_by_normalised_email() -> None:
    body = customer(email="  Ada.Lovelace.1@Example.COM ")
    d = deliver("customers/create", body, T0)
    assert contacts.email_of(d.parse_body()) == EMAIL
    run = fold([d])
    upsert = only_upsert(run.commands)
    assert upsert.record == contact_ref(EMAIL)
    assert (upsert.record.object_type, upsert.record.id_property) == ("contacts", "email")
    assert upsert.properties["email"] == EMAIL
    assert upsert.create_if_missing, "C2: the upsert creates the contact when none has this email"


def test_c1_customer_and_checkout_with_differently_cased_email_feed_one_contact() -> None:
    """C1: de-duplicated by email: case and whitespace do not make a second contact."""
    cust = deliver("customers/create", customer(email="Ada.Lovelace.1@EXAMPLE.com"), T0)
    later = T0 + timedelta(hours=1)
    chk = deliver("checkouts/create", checkout(1, later, email=" ADA.LOVELACE.1@example.com"), later)
    assert contacts.email_of(cust.parse_body()) == contacts.email_of(chk.parse_body()) == EMAIL
    run = fold([cust, chk])
    assert {c.record.key for c in run.commands} == {contact_ref(EMAIL).key}


@pytest.mark.parametrize("email", [None, "", "   ", "no-at-sign"])
def test_c2_records_without_an_email_feed_no_contact(email: str | None) -> None:
    """C2: no email address, no contact: customers, checkouts and orders without one route nowhere
    (and D7: such an order still becomes a deal, without a contact)."""
    assert contacts.email_of(Customer.model_validate(customer(email=email))) is None
    assert contacts.email_of(Checkout.model_validate(checkout(1, T0, email=email))) is None
    assert contacts.email_of(Order.model_validate(order(1, T0, email=email))) is None


def test_c2_order_without_own_email_uses_its_customers_email() -> None:
    """C2: the contact is the buyer's: an order with no email of its own feeds its customer's."""
    body = order(1, T0, cust=customer(), email=None)
    body["contact_email"] = None
    assert contacts.email_of(Order.model_validate(body)) == EMAIL


def test_c2_existing_contact_is_updated_with_only_the_changed_properties() -> None:
    """C2: when the contact exists, the same email's upsert updates it; unchanged values are not
    re-sent."""
    first = deliver("customers/create", customer(), T0)
    later = T0 + timedelta(days=1)
    second = deliver("customers/update", customer(updated_at=later, note="Prefers email"), later)
    run = fold([first])
    more = fold([second], state=run.state)
    upsert = only_upsert(more.commands)
    assert upsert.record == contact_ref(EMAIL)
    assert upsert.properties == {"email": EMAIL, "shopify_customer_note": "Prefers email"}


def test_d3_c2_abandoned_checkout_without_customer_makes_contact_from_billing_address() -> None:
    """D3/C2: an abandoned checkout with an email makes the contact, its names and address taken
    from the billing address when the checkout has no customer object; C8: not the address phone."""
    grace = stable_id("customer", "test-contacts", 2)
    body = checkout(2, T0, email=" Grace.Hopper@Example.com ")
    body["billing_address"] = address(grace, "Grace", "Hopper", CITIES[1])
    body["phone"] = "555-0142"  # a checkout-level phone is not the customer overview's either
    d = deliver("checkouts/create", body, T0)
    run = fold([d], email="grace.hopper@example.com")
    upsert = only_upsert(run.commands)
    assert upsert.record == contact_ref("grace.hopper@example.com")
    props = upsert.properties
    expected = {
        "email": "grace.hopper@example.com",
        "firstname": "Grace",
        "lastname": "Hopper",
        "address": body["billing_address"]["address1"],
        "city": "Louisville",
        "state": "Kentucky",
        "country": "United States",
        "zip": "40202",
    }
    assert {k: props.get(k) for k in expected} == expected
    assert props.get("phone") is None


def test_d3_checkout_customer_object_wins_over_billing_address() -> None:
    """D3: the checkout's contact details are its customer's when it has one."""
    body = checkout(3, T0, cust=customer(city=CITIES[2]))
    body["billing_address"] = address(CID, "Someone", "Else", CITIES[1])
    upsert = only_upsert(fold([deliver("checkouts/create", body, T0)]).commands)
    assert (upsert.properties["firstname"], upsert.properties["lastname"]) == ("Ada", "Lovelace")
    assert (upsert.properties["city"], upsert.properties["country"]) == ("Lyon", "France")


def test_d3_older_checkout_arriving_late_does_not_overwrite_newer_contact_details() -> None:
    """D3: the contact details are the newest checkout's or order's; an older version delivered late
    changes nothing."""
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    old = checkout(6, t1, email=EMAIL)
    old["billing_address"] = address(CID, "Ada", "Lovelace", CITIES[1])
    new = checkout(6, t2, created=t1, email=EMAIL)
    new["billing_address"] = address(CID, "Ada", "Lovelace", CITIES[3])
    run = fold([deliver("checkouts/update", new, t2)])
    assert view(run)["city"] == "Berlin"
    late = fold([deliver("checkouts/create", old, t2 + timedelta(minutes=1))], state=run.state)
    assert late.commands == []
    assert view(late)["city"] == "Berlin"


def test_d3_c2_checkout_contact_then_customer_record_updates_the_same_contact() -> None:
    """D3 then C2: the checkout made the contact; the customer record later updates it."""
    body = checkout(4, T0, email=EMAIL)
    body["billing_address"] = address(CID, "A.", "Lovelace", CITIES[1])
    run = fold([deliver("checkouts/create", body, T0)])
    assert view(run)["firstname"] == "A."
    later = T0 + timedelta(hours=2)
    more = fold([deliver("customers/create", customer(later), later)], state=run.state)
    upsert = only_upsert(more.commands)
    assert upsert.record == contact_ref(EMAIL)
    assert upsert.properties["firstname"] == "Ada"
    assert upsert.properties["shopify_customer_id"] == str(CID)


# ---- C3 ----


def test_c3_customers_delete_is_not_routed_to_contacts() -> None:
    """C3: deleting a customer in Shopify does not touch the HubSpot contact: the delete is not
    routed to the contacts at all, even when its body happens to carry an email."""
    d = deliver("customers/delete", {"id": CID, "email": EMAIL, "phone": None, "addresses": []}, T0)
    record = d.parse_body()
    assert isinstance(record, CustomerDeleted)
    assert contacts.email_of(record) is None


def test_c3_no_contact_rule_ever_archives_a_contact() -> None:
    """C3: nothing in the contact rules deletes a contact: over a whole sample store, with HubSpot
    deletions and a year of ticks, the contact rules only ever upsert."""
    store = generate(customers=15, seed=11)
    by_email: dict[str, list[Delivery]] = defaultdict(list)
    for event in store.ordered():
        d = delivery_for(event)
        email = contacts.email_of(d.parse_body())
        if email is not None:
            by_email[email].append(d)
    assert len(by_email) >= 5
    commands: list[AnyCommand] = []
    for i, (email, deliveries) in enumerate(sorted(by_email.items())):
        run = fold(deliveries, email=email)
        end = deliveries[-1].event_time
        if i % 3 == 0:
            run.state = contacts.decide_deletion(run.state, deletion(end, email), end, CONFIG).state
        for day in range(0, 400, 30):
            tick(run, end + timedelta(days=day))
        commands += run.commands
    assert commands
    assert all(isinstance(c, Upsert) and c.record.object_type == "contacts" for c in commands)
    assert not any(isinstance(c, Archive | Dissociate) for c in commands)


# ---- C4 ----


def test_c4_after_hubspot_deletion_later_shopify_records_write_nothing_ever() -> None:
    """C4: once HubSpot deleted the contact, later customer updates, checkouts, orders and timers
    for that email emit no commands at all (the contact is not re-created)."""
    run = fold([deliver("customers/create", customer(), T0)])
    assert run.commands
    gone = contacts.decide_deletion(run.state, deletion(T0 + timedelta(hours=1)), T0, CONFIG)
    assert gone.commands == []
    t = T0 + timedelta(days=1)
    run2 = fold(
        [
            deliver("customers/update", customer(updated_at=t, note="changed", orders_count=1), t),
            deliver("checkouts/create", checkout(5, t + timedelta(minutes=1)), t + timedelta(minutes=1)),
            deliver("orders/create", order(5, t + timedelta(minutes=5), cust=customer()),
                    t + timedelta(minutes=5)),
            deliver("customers/create", customer(updated_at=t + timedelta(days=1)), t + timedelta(days=1),
                    source="import"),
        ],
        state=gone.state,
    )  # fmt: skip
    assert run2.commands == []
    for days in (1, 89, 91, 200, 1000):
        assert tick(run2, t + timedelta(days=days)) == []
    assert contacts.timers(run2.state, CONFIG) == {}
    assert contacts.next_due(run2.state, CONFIG) is None


def test_c4_deletion_seen_before_any_shopify_record_prevents_creation() -> None:
    """C4: on a replay the HubSpot deletion may be read before the Shopify records; the contact is
    still never created."""
    gone = contacts.decide_deletion(contacts.ContactState(email=EMAIL), deletion(T0), T0, CONFIG)
    run = fold([deliver("customers/create", customer(), T0 + timedelta(minutes=1))], state=gone.state)
    assert run.commands == []


def test_c4_repeated_deletion_changes_nothing() -> None:
    """C4: a second deletion event (HubSpot retries webhooks) keeps the first deletion time."""
    run = fold([deliver("customers/create", customer(), T0)])
    once = contacts.decide_deletion(run.state, deletion(T0 + timedelta(hours=1)), T0, CONFIG)
    twice = contacts.decide_deletion(once.state, deletion(T0 + timedelta(hours=2)), T0, CONFIG)
    assert twice.commands == [] and twice.state == once.state
    assert once.state.deleted_in_hubspot_at == T0 + timedelta(hours=1)


# ---- C5 / C6 ----


def test_c5_import_record_gives_integration_sync_drill_downs() -> None:
    """C5: a contact from the initial import gets drill-downs INTEGRATION_SYNC / integrations-sync."""
    run = fold([deliver("customers/create", customer(), T0, source="import")])
    props = only_upsert(run.commands).properties
    assert (props[DRILL_DOWNS[0]], props[DRILL_DOWNS[1]]) == ("INTEGRATION_SYNC", "integrations-sync")


def test_c5_import_wins_even_when_a_live_record_came_first() -> None:
    """C5: the import and live webhooks race at set-up; a contact that came through the initial
    import gets the import drill-downs whichever arrived first."""
    live = deliver("orders/create", order(7, T0 + timedelta(days=1), cust=customer()), T0 + timedelta(days=1))
    imported = deliver("customers/create", customer(), T0 + timedelta(days=1, minutes=1), source="import")
    live_first = fold([live])
    assert (view(live_first)[DRILL_DOWNS[0]], view(live_first)[DRILL_DOWNS[1]]) == (
        "web",
        "https://www.google.com/",
    )
    live_first = fold([imported], state=live_first.state)
    upsert = only_upsert(live_first.commands)
    assert upsert.properties[DRILL_DOWNS[0]] == "INTEGRATION_SYNC"
    assert upsert.properties[DRILL_DOWNS[1]] == "integrations-sync"
    import_first = fold([imported, live])
    assert contacts.render(import_first.state) == contacts.render(live_first.state)


def test_c6_drill_downs_come_from_the_earliest_checkout_or_order_in_any_arrival_order() -> None:
    """C6: a live contact's drill-downs are the earliest checkout's or order's source name and
    referring site, whatever order the records arrive in (not the customer's, not the latest)."""
    chk = checkout(8, T0 + timedelta(hours=1))
    chk["source_name"], chk["referring_site"] = "web", "https://duckduckgo.com/"
    later = order(9, T0 + timedelta(days=3), cust=customer())
    later["source_name"], later["referring_site"] = "pos", "https://www.bing.com/"
    deliveries = [
        deliver("customers/create", customer(), T0),
        deliver("checkouts/create", chk, T0 + timedelta(hours=1)),
        deliver("orders/create", later, T0 + timedelta(days=3)),
    ]
    views = set()
    for perm in itertools.permutations(deliveries):
        props = view(fold(perm))
        views.add((props[DRILL_DOWNS[0]], props[DRILL_DOWNS[1]]))
    assert views == {("web", "https://duckduckgo.com/")}


def test_c6_landing_site_when_the_source_record_has_no_referring_site() -> None:
    """C6: drill-down 2 is the referring site, else the landing site."""
    body = order(10, T0, cust=customer())
    body["referring_site"], body["source_name"] = None, "shopify_draft_order"
    props = view(fold([deliver("orders/create", body, T0)]))
    assert props[DRILL_DOWNS[0]] == "shopify_draft_order"
    assert props[DRILL_DOWNS[1]] == "/products/sample?utm_source=newsletter"


def test_c6_customer_only_contact_gets_shopify_customer_drill_downs() -> None:
    """C6: with no checkout or order yet, the source record is the Shopify customer itself."""
    props = view(fold([deliver("customers/create", customer(), T0)]))
    assert (props[DRILL_DOWNS[0]], props[DRILL_DOWNS[1]]) == ("shopify", "customer")


def test_c6_first_order_replaces_customer_drill_downs_once() -> None:
    """C6: the first order is a better source than the bare customer record, so it replaces it;
    a later order does not move the drill-downs again."""
    run = fold([deliver("customers/create", customer(), T0)])
    first = order(11, T0 + timedelta(days=1), cust=customer())
    run = fold([deliver("orders/create", first, T0 + timedelta(days=1))], state=run.state)
    assert (view(run)[DRILL_DOWNS[0]], view(run)[DRILL_DOWNS[1]]) == ("web", "https://www.google.com/")
    second = order(12, T0 + timedelta(days=2), cust=customer())
    second["source_name"], second["referring_site"] = "pos", "https://www.bing.com/"
    more = fold([deliver("orders/create", second, T0 + timedelta(days=2))], state=run.state)
    assert all(k not in c.properties for c in more.commands if isinstance(c, Upsert) for k in DRILL_DOWNS)


# ---- C7 / C8 ----


def test_c7_all_sixteen_customer_properties_are_synced() -> None:
    """C7: Accepts marketing, Created at, First/Last name, Email, Phone, Note, Orders count, Tags,
    Tax exempt, Verified email, Street address, City, Country, State/Province, Zip code."""
    body = customer(
        T0, city=CITIES[3], phone="+49 30 1234567", orders_count=3, tags="vip, wholesale",
        accepts_marketing=True, note="Prefers email",
    )  # fmt: skip
    body["tax_exempt"] = True
    props = only_upsert(fold([deliver("customers/create", body, T0)]).commands).properties
    expected: dict[str, PropertyValue] = {
        "shopify_accepts_marketing": "true",
        "shopify_customer_created_at": "2026-03-02T09:00:00.000Z",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": EMAIL,
        "phone": "+49 30 1234567",
        "shopify_customer_note": "Prefers email",
        "shopify_orders_count": "3",
        "shopify_customer_tags": "vip, wholesale",
        "shopify_tax_exempt": "true",
        "shopify_verified_email": "true",
        "address": body["default_address"]["address1"],
        "city": "Berlin",
        "country": "Germany",
        "state": "Berlin",
        "zip": "10115",
    }
    assert set(expected) == C7_PROPERTIES
    assert {k: props.get(k) for k in C7_PROPERTIES} == expected
    assert props["shopify_customer_id"] == str(CID)


def test_c7_accepts_marketing_read_from_email_marketing_consent_when_legacy_field_is_absent() -> None:
    """C7: newer API versions drop ``accepts_marketing``; the consent state still sets the checkbox."""
    body = customer(accepts_marketing=True)
    del body["accepts_marketing"]
    props = only_upsert(fold([deliver("customers/create", body, T0)]).commands).properties
    assert props["shopify_accepts_marketing"] == "true"
    body["email_marketing_consent"]["state"] = "unsubscribed"
    props = only_upsert(fold([deliver("customers/create", body, T0)]).commands).properties
    assert props["shopify_accepts_marketing"] == "false"


def test_c8_phone_never_comes_from_the_default_address() -> None:
    """C8: the customer overview has no phone; the default address has one: no phone is synced."""
    body = customer(phone=None)
    assert body["default_address"]["phone"] == "555-0100"
    props = only_upsert(fold([deliver("customers/create", body, T0)]).commands).properties
    assert props["phone"] is None


def test_c8_customer_overview_phone_is_synced_not_the_address_phone() -> None:
    """C8: with both, the overview's phone is the one synced."""
    props = view(fold([deliver("customers/create", customer(phone="+1 613 555 0199"), T0)]))
    assert props["phone"] == "+1 613 555 0199"


def test_c8_order_billing_address_phone_is_never_synced() -> None:
    """C8 with D3: an order's billing address (and the order's own phone) never give the contact
    a phone; only its customer's overview phone could."""
    body = order(13, T0, cust=customer(phone=None))
    body["phone"] = "555-0142"
    assert body["billing_address"]["phone"] == "555-0100"
    props = view(fold([deliver("orders/create", body, T0)]))
    assert props.get("phone") is None
    assert contacts.details_of(Order.model_validate(body)).get("phone") is None  # carried as null
    with_phone = order(14, T0, cust=customer(phone="+1 613 555 0199"))
    assert contacts.details_of(Order.model_validate(with_phone))["phone"] == "+1 613 555 0199"


# ---- W1 ----


def test_w1_first_purchase_at_is_the_first_orders_created_at_and_its_journey_is_told() -> None:
    """W1: the contact's first purchase sets shopify_first_purchase_at and tells that order's deal
    (journey) it is a new customer's first purchase."""
    at = T0 + timedelta(days=2, hours=3)
    body = order(20, at, cust=customer())
    run = fold([deliver("customers/create", customer(), T0), deliver("orders/create", body, at)])
    assert view(run)["shopify_first_purchase_at"] == "2026-03-04T12:00:00.000Z"
    key = journey_key(Order.model_validate(body))
    assert key is not None
    assert [(f.journey, f.first) for f in run.facts] == [(key, True)]


def test_w1_repeated_deliveries_of_the_first_order_do_not_repeat_the_fact() -> None:
    """W1: the trigger is set once: orders/paid and orders/fulfilled of the same order add nothing."""
    at = T0 + timedelta(days=1)
    body = order(21, at, cust=customer())
    run = fold([deliver("orders/create", body, at)])
    more = fold(
        [deliver("orders/paid", body, at + timedelta(minutes=1)),
         deliver("orders/fulfilled", order(21, at, cust=customer(), updated_at=at + timedelta(days=1)),
                 at + timedelta(days=1))],
        state=run.state,
    )  # fmt: skip
    assert more.facts == []
    assert all(
        "shopify_first_purchase_at" not in c.properties for c in more.commands if isinstance(c, Upsert)
    )


def test_w1_an_earlier_order_arriving_later_moves_the_first_purchase_flag() -> None:
    """W1: first means earliest by creation, not by arrival: when an earlier order arrives late,
    the flag moves (unset on the old journey, set on the new) and first_purchase_at moves back."""
    late_body = order(22, T0 + timedelta(days=10), cust=customer())
    early_body = order(23, T0 + timedelta(days=2), cust=customer())
    late_key = journey_key(Order.model_validate(late_body))
    early_key = journey_key(Order.model_validate(early_body))
    assert late_key and early_key and late_key != early_key
    run = fold([deliver("orders/create", late_body, T0 + timedelta(days=10))])
    assert [(f.journey, f.first) for f in run.facts] == [(late_key, True)]
    moved = fold([deliver("orders/create", early_body, T0 + timedelta(days=11), source="import")],
                 state=run.state)  # fmt: skip
    assert [(f.journey, f.first) for f in moved.facts] == [(late_key, False), (early_key, True)]
    assert len({f.event_id for f in moved.facts}) == 2, "each fact has its own id (journeys dedupe on it)"
    upsert = only_upsert(moved.commands)
    assert upsert.properties["shopify_first_purchase_at"] == hs_time(T0 + timedelta(days=2))
    third = fold([deliver("orders/create", order(24, T0 + timedelta(days=20), cust=customer()),
                          T0 + timedelta(days=20))], state=moved.state)  # fmt: skip
    assert third.facts == []
    assert view(third)["shopify_first_purchase_at"] == hs_time(T0 + timedelta(days=2))


# ---- W3 / W4 ----


def bought(at: datetime, n: int = 30, state: contacts.ContactState | None = None) -> Run:
    return fold([deliver("orders/create", order(n, at, cust=customer()), at)], state=state)


def test_w3_reengagement_is_due_reengage_after_the_last_purchase_and_fires_then() -> None:
    """W3: with no purchase for reengage_after (90 days by default), the trigger property is set to
    the due time; not a second earlier."""
    at = T0 + timedelta(days=1)
    run = bought(at)
    due = at + timedelta(days=90)
    assert contacts.timers(run.state, CONFIG) == {"reengagement": due}
    assert contacts.next_due(run.state, CONFIG) == due
    assert view(run)["shopify_reengagement_trigger_at"] is None
    assert tick(run, due - timedelta(seconds=1)) == []
    upsert = only_upsert(tick(run, due))
    assert upsert.record == contact_ref(EMAIL)
    assert upsert.properties == {
        "email": EMAIL,
        "shopify_reengagement_trigger_at": "2026-06-01T09:00:00.000Z",
    }


def test_w3_a_purchase_before_the_due_time_moves_the_trigger() -> None:
    """W3: the contact bought again before 90 days passed: nothing at the old due time, the trigger
    comes 90 days after the new purchase."""
    run = bought(T0)
    run = bought(T0 + timedelta(days=60), n=31, state=run.state)
    assert tick(run, T0 + timedelta(days=90)) == []
    assert tick(run, T0 + timedelta(days=149)) == []
    upsert = only_upsert(tick(run, T0 + timedelta(days=150)))
    assert upsert.properties["shopify_reengagement_trigger_at"] == hs_time(T0 + timedelta(days=150))


def test_w3_a_new_purchase_after_the_trigger_fired_re_arms_it() -> None:
    """W3: each purchase re-arms the trigger: it fires again 90 days after the new last purchase."""
    run = bought(T0)
    only_upsert(tick(run, T0 + timedelta(days=90)))
    assert contacts.timers(run.state, CONFIG) == {}
    t2 = T0 + timedelta(days=120)
    run = bought(t2, n=32, state=run.state)
    assert contacts.timers(run.state, CONFIG) == {"reengagement": t2 + timedelta(days=90)}
    upsert = only_upsert(tick(run, t2 + timedelta(days=90)))
    assert upsert.properties["shopify_reengagement_trigger_at"] == hs_time(t2 + timedelta(days=90))


def test_w4_reengagement_delay_is_configurable() -> None:
    """W4: the N days of W3 are a setting (here 30 days)."""
    config = RuleConfig(reengage_after=timedelta(days=30))
    run = Run(state=bought(T0).state)
    assert contacts.timers(run.state, config) == {"reengagement": T0 + timedelta(days=30)}
    assert tick(run, T0 + timedelta(days=30) - timedelta(seconds=1), config) == []
    upsert = only_upsert(tick(run, T0 + timedelta(days=30), config))
    assert upsert.properties["shopify_reengagement_trigger_at"] == hs_time(T0 + timedelta(days=30))


def test_w3_firing_twice_emits_nothing_new() -> None:
    """W3: the trigger is set once per due time: later ticks (or a replayed tick) write nothing."""
    run = bought(T0)
    due = T0 + timedelta(days=90)
    only_upsert(tick(run, due))
    fired = run.state
    assert tick(run, due) == []
    assert tick(run, due + timedelta(days=5)) == []
    assert run.state.emitted == fired.emitted
    assert run.state.reengagement_fired_at == due


def test_w3_trigger_due_longer_ago_than_grace_is_recorded_but_not_written() -> None:
    """W3/W4: found due more than trigger_grace ago (worker down, old imported order), the trigger
    is recorded as fired (never fires later) but is not written; within the grace it is."""
    due = T0 + timedelta(days=90)
    run = bought(T0)
    assert tick(run, due + CONFIG.trigger_grace + timedelta(seconds=1)) == []
    assert run.state.reengagement_fired_at == due
    assert contacts.timers(run.state, CONFIG) == {}
    assert tick(run, due + timedelta(days=30)) == []
    assert view(run)["shopify_reengagement_trigger_at"] is None

    on_time = bought(T0)
    upsert = only_upsert(tick(on_time, due + CONFIG.trigger_grace))
    assert upsert.properties["shopify_reengagement_trigger_at"] == hs_time(due)


def test_w3_imported_old_order_never_writes_a_stale_trigger() -> None:
    """W3: an order imported long after it was placed is already far past due: recorded, not written,
    also when the late firing happens inside a later delivery's decide rather than a tick."""
    placed = T0 - timedelta(days=200)
    run = fold([deliver("orders/create", order(33, placed, cust=customer()), T0, source="import")], now=T0)
    later = T0 + timedelta(hours=1)
    more = fold([deliver("customers/update", customer(updated_at=later, note="x"), later)], state=run.state)
    assert all(
        "shopify_reengagement_trigger_at" not in c.properties for c in more.commands if isinstance(c, Upsert)
    )
    assert more.state.reengagement_fired_at == placed + timedelta(days=90)


def test_w3_a_late_trigger_does_not_clear_the_earlier_written_one() -> None:
    """W3: a late trigger is 'recorded but not written': it must not overwrite (here: clear) the value
    an earlier, on-time firing wrote."""
    run = bought(T0)
    only_upsert(tick(run, T0 + timedelta(days=90)))
    t2 = T0 + timedelta(days=100)
    run = bought(t2, n=34, state=run.state)
    run.commands = []
    assert tick(run, t2 + timedelta(days=200)) == []
    assert view(run)["shopify_reengagement_trigger_at"] == hs_time(T0 + timedelta(days=90))


def test_w3_fire_records_the_due_time_and_whether_it_was_late() -> None:
    """W3/W4: fire, directly: before the due time nothing changes; at or after it the due time (not
    the firing time) is recorded, with lateness judged against trigger_grace."""
    state = bought(T0).state
    due = T0 + timedelta(days=90)
    assert contacts.fire(state, due - timedelta(microseconds=1), CONFIG) == state
    on_time = contacts.fire(state, due + timedelta(hours=3), CONFIG)
    assert (on_time.reengagement_fired_at, on_time.reengagement_late) == (due, False)
    late = contacts.fire(state, due + timedelta(days=3), CONFIG)
    assert (late.reengagement_fired_at, late.reengagement_late) == (due, True)
    lenient = contacts.fire(state, due + timedelta(days=3), RuleConfig(trigger_grace=timedelta(days=7)))
    assert lenient.reengagement_late is False
    assert contacts.fire(on_time, due + timedelta(days=1), CONFIG) == on_time


def test_w3_no_trigger_without_a_purchase() -> None:
    """W3: re-engagement is about purchases: a contact who never bought has no timer."""
    run = fold(
        [deliver("customers/create", customer(), T0), deliver("checkouts/create", checkout(35, T0), T0)]
    )
    assert contacts.timers(run.state, CONFIG) == {}
    assert tick(run, T0 + timedelta(days=400)) == []


# ---- properties: idempotence, convergence, replay ----

OFFSETS = st.lists(st.integers(min_value=0, max_value=47 * 60), min_size=2, max_size=5, unique=True)


def _pool(minutes: list[int], notes: list[str | None]) -> list[Delivery]:
    """A mix of one contact's records inside one dedupe window: customer versions, a checkout, orders,
    one import record."""
    out: list[Delivery] = []
    for i, m in enumerate(minutes):
        at = T0 + timedelta(minutes=m)
        note = notes[i % len(notes)]
        out.append(deliver("customers/update", customer(updated_at=at, note=note, orders_count=i), at))
    at = T0 + timedelta(minutes=minutes[0] + 7)
    out.append(deliver("checkouts/update", checkout(40, at, cust=customer(note="from checkout")), at))
    for n, m in enumerate(minutes[:3]):  # their customer notes show where the customer record has none
        at = T0 + timedelta(minutes=m + 3)
        out.append(deliver("orders/create", order(41 + n, at, cust=customer(note=f"from order {n}")), at))
    out.append(deliver("customers/create", customer(), T0 + timedelta(minutes=minutes[-1]), source="import"))
    return out


NOTES = st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=8)), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(OFFSETS, NOTES, st.data())
def test_property_duplicate_delivery_emits_nothing_and_leaves_state_equal(
    minutes: list[int], notes: list[str | None], data: st.DataObject
) -> None:
    """Shopify delivers at least once: a repeated delivery (same event id) emits no command, no fact
    and leaves the state exactly as it was, even when it arrives after a timer fell due (the timer
    is the next tick's business, not the duplicate's)."""
    pool = data.draw(st.permutations(_pool(minutes, notes)))
    run = fold(pool)
    again = data.draw(st.sampled_from(pool))
    now = max(d.event_time for d in pool) + timedelta(days=data.draw(st.integers(0, 200)))
    outcome = contacts.decide(run.state, again, now, CONFIG)
    assert outcome.commands == [] and outcome.facts == []
    assert outcome.state == run.state


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=12).map(lambda k: k * 24 * 60),  # days; ties are likely
            st.one_of(st.none(), st.text(max_size=10)),
            st.integers(min_value=0, max_value=50),
            st.one_of(st.none(), st.sampled_from(["+1 613 555 0101", "+33 1 23 45 67 89"])),
            st.sampled_from(["", "vip", "vip, wholesale"]),
        ),
        min_size=2,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_property_customer_versions_converge_to_the_newest_in_any_order(
    versions: list[tuple[int, str | None, int, str | None, str]], rnd: Any
) -> None:
    """C1/C7: whatever order customer versions arrive in, the contact ends with the properties of
    the newest updated_at (versions sharing it: the same one of them in every order), and HubSpot
    (the commands applied) holds exactly that."""
    bodies = [
        (T0 + timedelta(minutes=m), customer(updated_at=T0 + timedelta(minutes=m), note=note,
                                             orders_count=count, phone=phone, tags=tags))
        for m, note, count, phone, tags in versions
    ]  # fmt: skip
    deliveries = [deliver("customers/update", body, at) for at, body in bodies]
    shuffled = list(deliveries)
    rnd.shuffle(shuffled)
    run = fold(shuffled)
    assert run.state.emitted == fold(deliveries).state.emitted == fold(reversed(deliveries)).state.emitted
    newest_at = max(at for at, _ in bodies)
    newest = [b for at, b in bodies if at == newest_at]
    candidates = [contacts.contact_upsert_properties(Customer.model_validate(b)) for b in newest]
    props = view(run)
    assert any({k: props[k] for k in c} == c for c in candidates)
    if len(newest) == 1:
        (body,) = newest
        note = body["note"]
        assert props["shopify_customer_note"] == (note if note and note.strip() else None)  # blank: absent
        assert props["shopify_orders_count"] == str(body["orders_count"])
        assert props["phone"] == body["phone"]
    assert held(run) == props


@settings(max_examples=60, deadline=None)
@given(OFFSETS, NOTES, st.data())
def test_property_any_arrival_order_converges_and_replay_gives_the_same_view(
    minutes: list[int], notes: list[str | None], data: st.DataObject
) -> None:
    """C1/C5/C6/W1: customers, checkouts, orders and an import record in any order end in the same
    contact view and the same HubSpot contents; the first-purchase flag ends on the earliest order's
    journey; replaying the same log from a fresh state emits the same final view; replaying it on
    top of the state emits nothing."""
    pool = _pool(minutes, notes)
    reference = fold(pool)
    perm = data.draw(st.permutations(pool))
    run = fold(perm)
    assert run.state.emitted == reference.state.emitted
    assert held(run) == view(run) == held(reference)
    assert view(run)[DRILL_DOWNS[0]] == "INTEGRATION_SYNC"

    flags: dict[str, bool] = {}
    for fact in run.facts:
        flags[fact.journey] = fact.first
    orders = [Order.model_validate(d.body) for d in pool if d.resource == "orders"]
    earliest = min(orders, key=lambda o: (o.created_at, str(o.id)))
    assert {j for j, first in flags.items() if first} == {journey_key(earliest)}

    replay = fold(perm)
    assert replay.state.emitted == run.state.emitted
    assert replay.commands == run.commands
    assert fold(perm, state=run.state).commands == []


@settings(max_examples=50, deadline=None)
@given(OFFSETS, NOTES, st.data())
def test_property_c4_after_deletion_no_sequence_of_records_writes_anything(
    minutes: list[int], notes: list[str | None], data: st.DataObject
) -> None:
    """C4: whatever arrives after HubSpot deleted the contact, in whatever order, nothing is written."""
    pool = data.draw(st.permutations(_pool(minutes, notes)))
    cut = data.draw(st.integers(min_value=0, max_value=len(pool)))
    run = fold(pool[:cut])
    gone = contacts.decide_deletion(run.state, deletion(T0), T0, CONFIG)
    rest = fold(pool[cut:], state=gone.state)
    assert gone.commands == [] and rest.commands == []
    assert tick(rest, T0 + timedelta(days=365)) == []


def test_w3_an_order_delivered_after_the_trigger_but_placed_before_it_withdraws_it() -> None:
    """W3 by Shopify's data: the contact had bought before the due time, so it never went quiet;
    the trigger value is withdrawn and re-armed from that purchase, as if it had arrived in time."""
    at = T0 + timedelta(days=1)
    run = bought(at)
    due = at + timedelta(days=90)
    assert tick(run, due)  # fired on time
    late = fold([deliver("orders/create", order(7, due - timedelta(days=2)), due + timedelta(hours=1))],
                state=run.state)  # fmt: skip
    assert view(late)["shopify_reengagement_trigger_at"] is None
    assert contacts.next_due(late.state, CONFIG) == due - timedelta(days=2) + timedelta(days=90)


def test_c4_only_the_first_upsert_of_a_contact_may_create_it() -> None:
    """C4: once the product created a contact, later upserts are update-only, so a contact HubSpot
    deleted before its contact.deletion reached the worker is not re-created by the writer."""
    run = fold([deliver("customers/create", customer(), T0)])
    assert only_upsert(run.commands).create_if_missing is True
    update = fold([deliver("customers/update", customer(updated_at=T0 + timedelta(hours=1), note="vip"),
                           T0 + timedelta(hours=1))], state=run.state)  # fmt: skip
    assert only_upsert(update.commands).create_if_missing is False
