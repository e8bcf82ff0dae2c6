"""X2: Shopify B2B companies as HubSpot companies, as pure rules.

There are no company fixtures, so the bodies are built here from the shapes Shopify documents:
a company (``companies/*``: id, name, external id, note, customer since, created/updated at), a
company location (``company_locations/*``: id, company_id, name, phone, billing and shipping
addresses) and a B2B order (an order with ``company: {id, location_id}``). Time is data.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from schemas.commands import DEFAULT_ASSOCIATION, AnyCommand, Archive, Associate, Dissociate, Upsert
from schemas.envelope import Delivery
from streams.entities import ROWS
from streams.inprocess import InProcessPipeline
from streams.rules import companies
from streams.rules.companies import COMPANY_TO_CONTACT, COMPANY_TO_DEAL, CompanyState
from streams.rules.keys import company_ref, contact_ref, deal_ref, order_ref
from streams.topics import route
from tests.rules.test_journeys import delivery

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
COMPANY_ID = 7001
LOCATION_ID = 8101
BRANCH_ID = 8102
BUYER = "buyer@acme.test"
DEALS = RuleConfig()
ORDERS = RuleConfig(commerce_objects="orders")
BOTH = RuleConfig(commerce_objects="deals,orders")
REF = company_ref(COMPANY_ID)


def stamp(at: datetime) -> str:
    return at.isoformat()


def company_body(at: datetime, name: str = "Acme Wholesale", **extra: Any) -> dict[str, Any]:
    return {"id": COMPANY_ID, "name": name, "external_id": "ACME-01", "note": "net 30 terms",
            "customer_since": stamp(T0 - 365 * 24 * 60 * MINUTE), "created_at": stamp(T0 - MINUTE),
            "updated_at": stamp(at), **extra}  # fmt: skip


def location_body(
    at: datetime, location_id: int = LOCATION_ID, name: str = "Head office", **extra: Any
) -> dict[str, Any]:
    address = {"address1": "1 Market St", "address2": "Floor 3", "city": "Springfield",
               "province": "Oregon", "province_code": "OR", "zip": "97477", "country": "United States",
               "country_code": "US"}  # fmt: skip
    return {"id": location_id, "company_id": COMPANY_ID, "name": name, "phone": "+15415550100",
            "created_at": stamp(T0 + (location_id - LOCATION_ID) * MINUTE), "updated_at": stamp(at),
            "billing_address": address, "shipping_address": {**address, "address1": "9 Dock Rd"},
            **extra}  # fmt: skip


def order_body(
    at: datetime, order_id: int = 9001, email: str = BUYER, cart: str = "cart-b2b-1"
) -> dict[str, Any]:
    return {"id": order_id, "email": email, "cart_token": cart, "financial_status": "pending",
            "created_at": stamp(T0), "updated_at": stamp(at), "total_price": "1200.00",
            "currency": "USD", "company": {"id": COMPANY_ID, "location_id": LOCATION_ID}}  # fmt: skip


def run(deliveries: list[Delivery], config: RuleConfig = DEALS, state: CompanyState | None = None
        ) -> tuple[CompanyState, list[AnyCommand]]:  # fmt: skip
    state = state or CompanyState(company_id=COMPANY_ID)
    log: list[AnyCommand] = []
    for d in deliveries:
        outcome = companies.decide(state, d, d.received_at, config)
        state, log = outcome.state, log + outcome.commands
    return state, log


def upserts(commands: list[AnyCommand]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for c in commands:
        if isinstance(c, Upsert):
            assert c.record == REF
            merged |= c.properties
    return merged


def links(commands: list[AnyCommand]) -> set[tuple[str, int]]:
    """The associations the commands leave, applied in order."""
    made: set[tuple[str, int]] = set()
    for c in commands:
        if isinstance(c, Associate):
            made.add((c.to.key, c.association_type_id))
        elif isinstance(c, Dissociate):
            made.discard((c.to.key, c.association_type_id))
    return made


def test_x2_a_company_known_only_from_an_order_is_created_with_what_the_order_says() -> None:
    _, commands = run([delivery("orders/create", order_body(T0), T0)])
    assert upserts(commands) == {
        "shopify_company_id": str(COMPANY_ID),
        "shopify_company_locations": str(LOCATION_ID),
    }
    assert commands[0] == Upsert(record=REF, properties=upserts(commands))  # the company before its links
    assert links(commands) == {
        (contact_ref(BUYER).key, COMPANY_TO_CONTACT),
        (deal_ref("cart:cart-b2b-1").key, COMPANY_TO_DEAL),
    }


def test_x2_the_companys_webhooks_fill_in_name_details_main_address_and_locations() -> None:
    order = delivery("orders/create", order_body(T0), T0)
    state, first = run([order])
    later = [
        delivery("companies/create", company_body(T0 + MINUTE), T0 + MINUTE),
        delivery("company_locations/create", location_body(T0 + MINUTE), T0 + MINUTE),
        delivery("company_locations/create", location_body(T0 + MINUTE, BRANCH_ID, "Depot"), T0 + 2 * MINUTE),
    ]
    _, more = run(later, state=state)
    assert not [c for c in more if isinstance(c, Associate | Dissociate)]  # the links were made already
    props = upserts(first + more)
    assert props == {
        "shopify_company_id": str(COMPANY_ID),
        "name": "Acme Wholesale",
        "shopify_company_external_id": "ACME-01",
        "shopify_company_note": "net 30 terms",
        "shopify_company_created_at": "2026-03-02T08:59:00.000Z",
        "shopify_company_customer_since": "2025-03-02T09:00:00.000Z",
        "shopify_company_locations": f"Head office ({LOCATION_ID}); Depot ({BRANCH_ID})",
        "address": "1 Market St",  # the earliest location's billing address
        "address2": "Floor 3",
        "city": "Springfield",
        "state": "Oregon",
        "zip": "97477",
        "country": "United States",
        "phone": "+15415550100",
    }


def test_x2_orders_mode_associates_the_company_with_the_order_and_both_modes_with_both() -> None:
    order = delivery("orders/create", order_body(T0), T0)
    contact = (contact_ref(BUYER).key, COMPANY_TO_CONTACT)
    deal = (deal_ref("cart:cart-b2b-1").key, COMPANY_TO_DEAL)
    hs_order = (order_ref("cart:cart-b2b-1").key, DEFAULT_ASSOCIATION)
    assert links(run([order], ORDERS)[1]) == {contact, hs_order}
    assert links(run([order], BOTH)[1]) == {contact, deal, hs_order}


def test_x2_switching_to_deals_and_orders_adds_the_order_links_without_repeating_anything() -> None:
    order = delivery("orders/create", order_body(T0), T0)
    state, _ = run([order], DEALS)
    second = delivery(
        "orders/updated", order_body(T0 + MINUTE, order_id=9002, cart="cart-b2b-2"), T0 + MINUTE
    )
    _, commands = run([second], BOTH, state)
    assert links(commands) == {
        (order_ref("cart:cart-b2b-1").key, DEFAULT_ASSOCIATION),
        (order_ref("cart:cart-b2b-2").key, DEFAULT_ASSOCIATION),
        (deal_ref("cart:cart-b2b-2").key, COMPANY_TO_DEAL),
    }


def test_x2_delete_marks_the_company_keeps_its_links_and_a_late_update_does_not_unmark_it() -> None:
    state, _ = run(
        [delivery("companies/create", company_body(T0), T0), delivery("orders/create", order_body(T0), T0)]
    )
    gone = T0 + 5 * MINUTE
    state, commands = run([delivery("companies/delete", {"id": COMPANY_ID}, gone)], state=state)
    assert not [c for c in commands if isinstance(c, Archive | Dissociate)]
    assert upserts(commands)["shopify_company_deleted_at"] is not None
    _, late = run(
        [delivery("companies/update", company_body(T0 + MINUTE, name="Acme Ltd"), gone + MINUTE)], state=state
    )
    assert upserts(late) == {"shopify_company_id": str(COMPANY_ID), "name": "Acme Ltd"}


def test_x2_a_deleted_location_leaves_the_list_and_the_next_location_gives_the_address() -> None:
    made = [
        delivery("company_locations/create", location_body(T0), T0),
        delivery("company_locations/create", location_body(T0, BRANCH_ID, "Depot", billing_address=None), T0),
    ]
    state, _ = run(made)
    gone = {"id": LOCATION_ID, "company_id": COMPANY_ID}
    _, commands = run([delivery("company_locations/delete", gone, T0 + MINUTE)], state=state)
    props = upserts(commands)
    assert props["shopify_company_locations"] == f"Depot ({BRANCH_ID})"
    assert props["address"] == "9 Dock Rd"  # the depot has no billing address: its shipping address


def test_x2_broken_fields_are_field_problems_and_the_rest_of_the_company_syncs() -> None:
    broken = company_body(T0, created_at="not a date", note={"text": "x"})
    company = delivery("companies/update", broken, T0)
    _, problems = company.parse_body_with_problems()
    assert {p.path for p in problems} == {"note", "created_at"}
    location = delivery("company_locations/update", location_body(T0, billing_address=[], id=True), T0)
    _, location_problems = location.parse_body_with_problems()
    assert {p.path for p in location_problems} == {"billing_address", "id"}
    order = order_body(T0)
    order["company"] = {"id": COMPANY_ID, "location_id": "branch-1"}
    order_delivery = delivery("orders/create", order, T0)
    _, order_problems = order_delivery.parse_body_with_problems()
    assert [p.path for p in order_problems] == ["company.location_id"]
    _, commands = run([company, location, order_delivery])
    props = upserts(commands)
    assert props["name"] == "Acme Wholesale" and props["shopify_company_note"] is None
    assert props["shopify_company_created_at"] is None
    assert props["shopify_company_locations"] is None  # the location had no readable id; the order's none
    assert (contact_ref(BUYER).key, COMPANY_TO_CONTACT) in links(commands)


# --- properties: duplicates, reordering, replay ---------------------------------------------------


def history() -> list[Delivery]:
    """Every kind of input a company gets, several versions of each, in Shopify's order."""
    t = [T0 + i * MINUTE for i in range(12)]
    return [
        delivery("orders/create", order_body(t[0]), t[0]),
        delivery("companies/create", company_body(t[1]), t[1]),
        delivery("company_locations/create", location_body(t[2]), t[2]),
        delivery("orders/updated", order_body(t[3], email="other@acme.test"), t[3]),
        delivery("companies/update", company_body(t[4], name="Acme Ltd"), t[4]),
        delivery("company_locations/create", location_body(t[5], BRANCH_ID, "Depot"), t[5]),
        delivery("company_locations/update", location_body(t[6], name="HQ"), t[6]),
        delivery("orders/create", order_body(t[7], order_id=9002, cart="cart-b2b-2"), t[7]),
        delivery("company_locations/delete", {"id": BRANCH_ID, "company_id": COMPANY_ID}, t[8]),
        delivery("companies/delete", {"id": COMPANY_ID}, t[9]),
    ]


CONFIGS = st.sampled_from([DEALS, ORDERS, BOTH])


@settings(max_examples=60, deadline=None)
@given(config=CONFIGS, seed=st.integers(0, 2**32), dupes=st.lists(st.integers(0, 9), max_size=6))
def test_x2_any_arrival_order_with_duplicates_ends_in_the_same_company(
    config: RuleConfig, seed: int, dupes: list[int]
) -> None:
    events = history()
    shuffled = events + [events[i] for i in dupes]
    random.Random(seed).shuffle(shuffled)
    in_order, reference = run(events, config)
    state, commands = run(shuffled, config)
    assert state.emitted == in_order.emitted
    applied = upserts(commands)
    assert {key: applied.get(key) for key in state.emitted.properties} == state.emitted.properties
    assert links(commands) == links(reference)  # the commands, applied in order, realise the view


@settings(max_examples=30, deadline=None)
@given(config=CONFIGS, upto=st.integers(1, 10))
def test_x2_duplicates_emit_nothing_and_replay_rebuilds_the_same_commands(
    config: RuleConfig, upto: int
) -> None:
    events = history()[:upto]
    state, commands = run(events, config)
    again, repeated = run(events, config, state)
    assert repeated == [] and again.emitted == state.emitted
    assert run(events, config)[1] == commands


@settings(max_examples=20, deadline=None)
@given(config=CONFIGS, seed=st.integers(0, 2**32))
def test_x2_through_the_routing_any_arrival_order_ends_in_the_same_company(
    config: RuleConfig, seed: int
) -> None:
    """The same through the real routers (``streams.inprocess``): every delivery, the location's
    and the order's included, reaches the company's entity, whatever the order of arrival."""

    def company_after(events: list[Delivery]) -> CompanyState:
        pipeline = InProcessPipeline(config=config)
        for event in events:
            pipeline.deliver(event)
        assert not pipeline.dead_letters
        state: CompanyState = pipeline.stores["companies"].states[str(COMPANY_ID)]
        return state

    events = history()
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    assert company_after(shuffled).emitted == company_after(events).emitted == run(events, config)[0].emitted


def test_x2_a_company_state_survives_its_table_row() -> None:
    """The worker stores states as JSON rows (``streams.entities.ROWS``): read back, the same state."""
    state, _ = run(history(), BOTH)
    rows = ROWS["companies"]
    assert rows.from_row(orjson.loads(orjson.dumps(rows.to_row(state)))) == state


# --- Shopify's documented payloads: global ids only -------------------------------------------


SAMPLE_COMPANY_GID = "gid://shopify/Company/408372092144951419"


def sample_company(at: datetime) -> dict[str, Any]:
    """``companies/*`` as Shopify's webhook reference shows it: no numeric id, a global id."""
    return {"name": "Example Company", "note": "This is an example company", "external_id": "123456789",
            "main_contact_admin_graphql_api_id": "gid://shopify/CompanyContact/408372092144951652",
            "created_at": stamp(T0), "updated_at": stamp(at), "customer_since": stamp(T0),
            "admin_graphql_api_id": SAMPLE_COMPANY_GID}  # fmt: skip


def sample_location(at: datetime) -> dict[str, Any]:
    """``company_locations/*`` as the reference shows it: its own and its company's global ids."""
    address = {"address1": "175 Sherbrooke Street West", "city": "Montreal", "province": "Quebec",
               "country": "Canada", "zip": "H3A 0G4", "phone": "+49738001239", "zone_code": "QC",
               "country_code": "CA", "admin_graphql_api_id": "gid://shopify/CompanyAddress/141016871799219115",
               "company_admin_graphql_api_id": SAMPLE_COMPANY_GID}  # fmt: skip
    return {"name": "Montreal", "external_id": "123456789", "phone": "555-555-5555", "locale": "en",
            "created_at": stamp(T0), "updated_at": stamp(at), "note": "Head Office Location",
            "admin_graphql_api_id": "gid://shopify/CompanyLocation/408372092144951419",
            "company": sample_company(at), "billing_address": address,
            "shipping_address": address}  # fmt: skip


def test_x2_shopifys_documented_payloads_without_numeric_ids_make_the_same_company() -> None:
    number = 408372092144951419
    assert route("companies/create", sample_company(T0)) == ("shopify.companies", str(number).encode())
    assert route("company_locations/create", sample_location(T0)) == (
        "shopify.companies",
        str(number).encode(),
    )
    pipeline = InProcessPipeline(config=DEALS)
    for d in [delivery("companies/create", sample_company(T0), T0),
              delivery("company_locations/create", sample_location(T0), T0),
              delivery("companies/delete", sample_company(T0 + MINUTE), T0 + MINUTE)]:  # fmt: skip
        pipeline.deliver(d)
    assert not pipeline.dead_letters and not pipeline.field_problems
    state: CompanyState = pipeline.stores["companies"].states[str(number)]
    props = state.emitted.properties
    assert props["name"] == "Example Company" and props["city"] == "Montreal"
    assert props["shopify_company_locations"] == f"Montreal ({number})"
    assert props["shopify_company_deleted_at"] is not None
