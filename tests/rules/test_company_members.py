"""X2: a company's contacts who never ordered (``company_contacts/*``), joined with their customer.

The bodies follow Shopify's documented ``company_contacts/*`` sample payload: the contact, its
customer and its company are named by Admin GraphQL global ids only, and no email is carried (the
customer's ``customers/*`` deliveries hold it). The whole pipeline runs in process (the routers,
``company-members`` by customer id, ``companies`` by company id), so what is checked is what the
worker would emit. Time is data.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.samplestore import SHOP_DOMAIN
from schemas.commands import AnyCommand, Associate, Dissociate, Upsert
from schemas.envelope import Delivery
from schemas.problems import IdentityError
from schemas.shopify import CompanyContact
from streams.entities import ROWS
from streams.inprocess import InProcessPipeline
from streams.rules.companies import COMPANY_TO_CONTACT
from streams.rules.company_members import MemberState
from streams.rules.keys import company_ref, contact_ref
from streams.topics import UnroutableError, route
from tests.rules.test_companies import COMPANY_ID, order_body
from tests.rules.test_journeys import delivery

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CUSTOMER_ID = 12123842227812391
CONTACT_GID = "gid://shopify/CompanyContact/408372092144951419"
EMAIL = "reader@acme.test"
REF = company_ref(COMPANY_ID)
DEALS = RuleConfig()


def contact_body(at: datetime, customer_id: int = CUSTOMER_ID, contact_gid: str = CONTACT_GID,
                 **extra: Any) -> dict[str, Any]:  # fmt: skip
    """Shopify's documented company_contacts/* payload, for this company and customer."""
    company = {"name": "Acme Wholesale", "note": "net 30 terms", "external_id": "ACME-01",
               "main_contact_admin_graphql_api_id": CONTACT_GID, "created_at": at.isoformat(),
               "updated_at": at.isoformat(), "customer_since": at.isoformat(),
               "admin_graphql_api_id": f"gid://shopify/Company/{COMPANY_ID}"}  # fmt: skip
    return {"customer_admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}", "title": "Buyer",
            "locale": "en", "created_at": at.isoformat(), "updated_at": at.isoformat(),
            "admin_graphql_api_id": contact_gid, "company": company, **extra}  # fmt: skip


def customer_body(at: datetime, email: str = EMAIL, customer_id: int = CUSTOMER_ID) -> dict[str, Any]:
    return {"id": customer_id, "email": email, "first_name": "Rea", "last_name": "Der",
            "created_at": T0.isoformat(), "updated_at": at.isoformat()}  # fmt: skip


def pipeline_run(events: list[Delivery], config: RuleConfig = DEALS) -> InProcessPipeline:
    pipeline = InProcessPipeline(config=config)
    for event in events:
        pipeline.deliver(event)
    return pipeline


def company_links(commands: list[AnyCommand]) -> set[str]:
    """The company's contact associations the commands leave, applied in order."""
    made: set[str] = set()
    for c in commands:
        if c.record != REF:
            continue
        if isinstance(c, Associate) and c.association_type_id == COMPANY_TO_CONTACT:
            made.add(c.to.key)
        elif isinstance(c, Dissociate) and c.association_type_id == COMPANY_TO_CONTACT:
            made.discard(c.to.key)
    return made


def test_x2_shopifys_company_contact_payload_names_its_customer_and_company_by_global_id() -> None:
    record = delivery("company_contacts/create", contact_body(T0), T0).parse_body()
    assert isinstance(record, CompanyContact)
    assert (record.customer_id(), record.company_id()) == (CUSTOMER_ID, COMPANY_ID)
    assert route("company_contacts/create", contact_body(T0)) == (
        "shopify.customers",
        str(CUSTOMER_ID).encode(),
    )


def test_x2_a_company_contact_who_never_ordered_is_linked_to_the_company_and_has_a_contact() -> None:
    pipeline = pipeline_run([
        delivery("customers/create", customer_body(T0), T0),
        delivery("company_contacts/create", contact_body(T0 + MINUTE), T0 + MINUTE),
    ])  # fmt: skip
    assert not pipeline.dead_letters
    commands = pipeline.commands
    assert company_links(commands) == {contact_ref(EMAIL).key}
    company_upserts = [c for c in commands if isinstance(c, Upsert) and c.record == REF]
    assert company_upserts == [Upsert(record=REF, properties={"shopify_company_id": str(COMPANY_ID)})]
    first_link = next(i for i, c in enumerate(commands) if isinstance(c, Associate))
    assert commands.index(company_upserts[0]) < first_link  # the company before its link
    assert any(isinstance(c, Upsert) and c.record == contact_ref(EMAIL) for c in commands)


def test_x2_a_company_contact_before_its_customer_is_linked_once_the_email_is_known() -> None:
    contact = delivery("company_contacts/create", contact_body(T0), T0)
    pipeline = pipeline_run([contact])
    assert not pipeline.dead_letters and company_links(pipeline.commands) == set()
    pipeline.deliver(delivery("customers/create", customer_body(T0 + MINUTE), T0 + MINUTE))
    assert company_links(pipeline.commands) == {contact_ref(EMAIL).key}


def test_x2_a_new_email_moves_the_link_and_a_deleted_contact_unlinks_unless_an_order_links_it() -> None:
    pipeline = pipeline_run([
        delivery("customers/create", customer_body(T0), T0),
        delivery("company_contacts/create", contact_body(T0), T0),
        delivery("customers/update", customer_body(T0 + MINUTE, email="new@acme.test"), T0 + MINUTE),
    ])  # fmt: skip
    assert company_links(pipeline.commands) == {contact_ref("new@acme.test").key}
    gone = T0 + 2 * MINUTE
    pipeline.deliver(delivery("company_contacts/delete", contact_body(gone), gone))
    assert company_links(pipeline.commands) == set()
    late = delivery("company_contacts/update", contact_body(gone + MINUTE, title="Owner"), gone + MINUTE)
    assert [c for c in pipeline.deliver(late) if c.record == REF] == []  # a deleted contact stays deleted

    ordered = pipeline_run([
        delivery("customers/create", customer_body(T0), T0),
        delivery("company_contacts/create", contact_body(T0), T0),
        delivery("orders/create", order_body(T0, email=EMAIL), T0),
        delivery("company_contacts/delete", contact_body(gone), gone),
    ])  # fmt: skip
    assert company_links(ordered.commands) == {contact_ref(EMAIL).key}  # its order still links it


def test_x2_broken_company_contact_fields_are_problems_and_no_customer_is_parked_or_dead_lettered() -> None:
    broken = contact_body(T0, title={"x": 1})
    broken["company"]["admin_graphql_api_id"] = "Company 7001"
    parsed, problems = delivery("company_contacts/update", broken, T0).parse_body_with_problems()
    assert {p.path for p in problems} == {"title", "company.admin_graphql_api_id"}
    assert isinstance(parsed, CompanyContact) and parsed.company_id() is None
    pipeline = pipeline_run([
        delivery("customers/create", customer_body(T0), T0),
        delivery("company_contacts/update", broken, T0),
    ])  # fmt: skip
    assert not pipeline.dead_letters and company_links(pipeline.commands) == set()  # no company named

    nameless = contact_body(T0, customer_admin_graphql_api_id=None)
    with pytest.raises(UnroutableError):  # the bridge parks it
        route("company_contacts/create", nameless)
    with pytest.raises(IdentityError):  # and a record of it on the topic is dead-lettered
        delivery("company_contacts/create", nameless, T0).parse_body()


# --- properties: duplicates, reordering, replay ---------------------------------------------------


def history() -> list[Delivery]:
    """Two customers, one of whom also orders; contacts made, updated, one deleted; emails changed."""
    t = [T0 + i * MINUTE for i in range(10)]
    other, other_gid = 5550001, "gid://shopify/CompanyContact/777"
    return [
        delivery("company_contacts/create", contact_body(t[0]), t[0]),
        delivery("customers/create", customer_body(t[1]), t[1]),
        delivery("customers/create", customer_body(t[1], "second@acme.test", other), t[1]),
        delivery("company_contacts/create", contact_body(t[2], other, other_gid), t[2]),
        delivery("customers/update", customer_body(t[3], "renamed@acme.test"), t[3]),
        delivery("company_contacts/update", contact_body(t[4], title="Owner"), t[4]),
        delivery("orders/create", order_body(t[5], email="second@acme.test"), t[5]),
        delivery("company_contacts/delete", contact_body(t[6], other, other_gid), t[6]),
        delivery("customers/update", customer_body(t[7], "final@acme.test"), t[7]),
    ]


@settings(max_examples=40, deadline=None)
@given(
    config=st.sampled_from([DEALS, RuleConfig(commerce_objects="orders")]),
    seed=st.integers(0, 2**32),
    dupes=st.lists(st.integers(0, 8), max_size=5),
)
def test_x2_company_contacts_in_any_order_with_duplicates_end_in_the_same_links(
    config: RuleConfig, seed: int, dupes: list[int]
) -> None:
    events = history()
    shuffled = events + [events[i] for i in dupes]
    random.Random(seed).shuffle(shuffled)
    reference, shuffled_run = pipeline_run(events, config), pipeline_run(shuffled, config)
    assert not reference.dead_letters and not shuffled_run.dead_letters
    expected = {contact_ref("final@acme.test").key, contact_ref("second@acme.test").key}  # one ordered
    assert company_links(reference.commands) == company_links(shuffled_run.commands) == expected
    company = str(COMPANY_ID)
    assert (
        shuffled_run.stores["companies"].states[company].emitted
        == reference.stores["companies"].states[company].emitted
    )


def test_x2_replaying_company_contacts_emits_nothing_new() -> None:
    pipeline = pipeline_run(history())
    before = len(pipeline.commands)
    for event in history():
        pipeline.deliver(event)
    assert [c for c in pipeline.commands[before:] if c.record == REF] == []


def test_x2_a_member_state_survives_its_table_row() -> None:
    state: MemberState = pipeline_run(history()).stores["company-members"].states[str(CUSTOMER_ID)]
    rows = ROWS["company-members"]
    assert state.contacts and state.email is not None
    assert rows.from_row(orjson.loads(orjson.dumps(rows.to_row(state)))) == state


def test_x3_a_company_contact_of_another_shop_links_that_shops_company() -> None:
    """With several shops, the customer and its company are keyed in the delivery's shop: a
    non-primary shop's company contact links the company keyed ``<domain>/<id>``, not the primary's."""
    config = RuleConfig(primary_shop="primary.myshopify.com")
    pipeline = pipeline_run([
        delivery("customers/create", customer_body(T0), T0),
        delivery("company_contacts/create", contact_body(T0 + MINUTE), T0 + MINUTE),
    ], config)  # fmt: skip
    prefix = f"{SHOP_DOMAIN}/"
    assert not pipeline.dead_letters
    assert f"{prefix}{CUSTOMER_ID}" in pipeline.stores["company-members"].states
    theirs = company_ref(COMPANY_ID, prefix)
    links = [c for c in pipeline.commands if isinstance(c, Associate) and c.record == theirs]
    assert [c.to for c in links] == [contact_ref(EMAIL)]
    assert not [c for c in pipeline.commands if c.record == REF]  # the primary shop's company is untouched
