"""G1 for B2B companies: a company's row and commands name its contacts by contact key only.

A company's row and the commands it emits are sealed under the *shop's* key (a company belongs to
no one customer), so a ``customers/redact`` cannot shred them. Before this, the row kept each
member's and each buyer's email, and the company's associations carried it as the contact ref's
``address``: a redacted customer's address stayed readable in the company's changelog and in the
command topic. With ``SHOPSYNC_REDACTABLE`` the members entity, its facts and the company's row now
hold the contact key (the pseudonym), and a company's link names the contact by it alone
(``RecordRef.by_pseudonym_only``); the writer finds its id in the id map, put there by the
contact's own upsert (``tests/writer/test_writer_companies_sandbox.py``). What HubSpot ends up
holding is unchanged, and so is every byte without the setting.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
from pydantic import SecretBytes

from config.rules import RuleConfig
from handlers.account_fold import fold
from schemas.commands import Associate, Dissociate, RecordRef, encode_command
from schemas.envelope import Delivery
from streams.inprocess import InProcessPipeline
from streams.rules.companies import COMPANY_TO_CONTACT
from streams.rules.contact_keys import contact_key
from streams.rules.keys import contact_ref
from tests.rules.test_companies import BUYER, company_body, order_body
from tests.rules.test_company_members import CUSTOMER_ID, EMAIL, REF, T0, contact_body, customer_body
from tests.rules.test_journeys import delivery

ON = RuleConfig(contact_pseudonym_key=SecretBytes(b"k" * 32))
OFF = RuleConfig()
MINUTE = timedelta(minutes=1)
NEW_EMAIL = "renamed@acme.test"


def history() -> list[Delivery]:
    """A member who never ordered (then changes address, then leaves), and a buyer who ordered."""
    return [
        delivery("customers/create", customer_body(T0), T0),
        delivery("companies/create", company_body(T0), T0),
        delivery("company_contacts/create", contact_body(T0 + MINUTE), T0 + MINUTE),
        delivery("customers/create", customer_body(T0, BUYER, CUSTOMER_ID + 1), T0 + MINUTE),
        delivery("orders/create", order_body(T0 + 2 * MINUTE), T0 + 2 * MINUTE),
        delivery("customers/update", customer_body(T0 + 3 * MINUTE, NEW_EMAIL), T0 + 3 * MINUTE),
        delivery("company_contacts/delete", contact_body(T0 + 4 * MINUTE), T0 + 4 * MINUTE),
    ]


def run(config: RuleConfig) -> InProcessPipeline:
    pipeline = InProcessPipeline(config=config)
    for event in history():
        pipeline.deliver(event)
    assert not pipeline.dead_letters and not pipeline.field_problems
    return pipeline


def test_a_company_s_row_and_commands_hold_no_member_or_buyer_email_under_pseudonyms() -> None:
    on = run(ON)
    company = [c for c in on.commands if c.record == REF]
    links = [c for c in company if isinstance(c, Associate | Dissociate)]
    contact_links = [c for c in links if c.association_type_id == COMPANY_TO_CONTACT]
    assert len(contact_links) >= 4, "member linked, re-linked under the new address, unlinked; buyer linked"
    for command in company:
        encoded = encode_command(command).lower()
        for email in (EMAIL, NEW_EMAIL, BUYER):
            assert email.encode() not in encoded, (email, encoded)
    for link in contact_links:
        assert link.to.by_pseudonym_only and link.to.address is None
    named = {link.to.id_value for link in contact_links}
    assert named == {contact_key(e, ON) for e in (EMAIL, NEW_EMAIL, BUYER)}
    for name in ("companies", "company-members"):
        rows = on.stores[name].states
        assert rows, name
        for key, state in rows.items():
            row = orjson.dumps(state.model_dump(mode="json")).lower()
            for email in (EMAIL, NEW_EMAIL, BUYER):
                assert email.encode() not in row, (name, key, email)


def test_hubspot_ends_up_holding_the_same_account_and_without_the_setting_nothing_changes() -> None:
    on, off = run(ON), run(OFF)
    assert fold(on.commands) == fold(off.commands)
    account = fold(off.commands)
    company = ("companies", REF.hubspot_value)
    linked = {end for start, end, type_id in account.associations if start == company and type_id == 280}
    assert linked == {("contacts", BUYER)}, "the member left; the buyer's order still links them"
    for link in (c for c in off.commands if isinstance(c, Associate) and c.record == REF):
        if link.to.object_type == "contacts":
            assert link.to in (contact_ref(EMAIL), contact_ref(NEW_EMAIL), contact_ref(BUYER))
            assert "address" not in orjson.loads(encode_command(link))["to"]


def test_the_fold_finds_a_pseudonym_only_end_s_address_whichever_comes_first() -> None:
    on = run(ON)
    company = [c for c in on.commands if c.record == REF]
    others = [c for c in on.commands if c.record != REF]
    assert fold(company + others) == fold(others + company) == fold(on.commands)


def test_only_a_contact_named_by_its_pseudonym_alone_is_pseudonym_only() -> None:
    """The writer never asks HubSpot for such a ref; a contact named by another property (an
    archive by ``firstname``) must still be looked up (found by the writer's delivery tests)."""
    key = contact_key(EMAIL, ON)
    assert RecordRef(object_type="contacts", id_property="email", id_value=key).by_pseudonym_only
    assert not RecordRef(
        object_type="contacts", id_property="email", id_value=key, address=EMAIL
    ).by_pseudonym_only
    assert not contact_ref(EMAIL).by_pseudonym_only
    assert not RecordRef(object_type="contacts", id_property="firstname", id_value="Ann").by_pseudonym_only
    assert not RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="j1").by_pseudonym_only
