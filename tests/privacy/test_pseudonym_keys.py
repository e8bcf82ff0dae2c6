"""G1 wiring step 2, the pure core: with ``SHOPSYNC_REDACTABLE`` every contact key is the email's
pseudonym (``streams.rules.contact_keys``), and what HubSpot ends up holding does not change.

- the key: one address in any spelling gives one key, two addresses never share one, and the key
  is the compliance topic's pseudonym (``streams.privacy.pseudonym``), showing nothing of the
  address; without the setting it is the normalised email, byte for byte as before;
- a contact's ref: its natural key (the commands' Kafka key, the id map's key) holds the
  pseudonym, and the email rides along as ``address`` for HubSpot only;
- the generated store (two shops, X4 subscriptions on, every commerce mode) through the
  in-process pipeline: the account its commands fold into is the same with the setting and
  without, and no command key, ref key, table key or forwarded key holds any customer's email;
- C4's join reads pseudonym keys from the id map, and the data-request report still finds the
  customer by them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretBytes

from config import Settings
from config.rules import RuleConfig
from devtools.localrun import delivery_for, schedule
from devtools.samplestore import SampleStore, generate
from handlers.account_fold import fold
from handlers.compliance_report import Matcher, Sources, Subject
from handlers.replay import Rebuilt, desired_commands
from schemas.commands import AnyCommand, Associate, Dissociate, RecordRef, Upsert, command_key, encode_command
from schemas.envelope import HubSpotContactDeletion
from streams.deletions import HubSpotObjectState, contact_id_mapping, on_deletion
from streams.entities import HUBSPOT_OBJECTS
from streams.inprocess import InProcessPipeline
from streams.privacy import pseudonym
from streams.rules.contact_keys import contact_key, contact_record, email_contact_key, is_pseudonym
from streams.rules.keys import contact_ref, normalize_email
from streams.topic_reader import Record

SECRET = b"s" * 32
ON = RuleConfig(contact_pseudonym_key=SecretBytes(SECRET))
local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20)
emails = st.builds(lambda a, b: f"{a}@{b}.com", local, local)
spellings = st.sampled_from([str.upper, str.lower, str.title, str.swapcase])


@given(emails, spellings, st.text(" \t", max_size=3))
def test_one_address_in_any_spelling_is_one_contact_key(email: str, case: object, pad: str) -> None:
    assert callable(case)
    spelt = email_contact_key(f"{pad}{case(email)}{pad}", ON)
    assert spelt == email_contact_key(email, ON) == contact_key(email.lower(), ON)
    assert spelt == pseudonym(SECRET, "email", email), "the compliance topic's pseudonym, not a second one"


@given(emails, emails)
def test_two_addresses_never_share_a_contact_key(a: str, b: str) -> None:
    if a.lower() != b.lower():
        assert email_contact_key(a, ON) != email_contact_key(b, ON)


@given(emails)
def test_a_contact_key_shows_nothing_of_the_address(email: str) -> None:
    key = contact_key(email, ON)
    assert is_pseudonym(key) and "@" not in key
    assert email.split("@")[0] not in key.removeprefix("p1:") or len(email.split("@")[0]) < 4
    assert email.split("@")[1] not in key


@given(emails)
def test_without_the_setting_the_key_and_the_ref_are_what_they_were(email: str) -> None:
    normal = email.lower()
    assert contact_key(normal, RuleConfig()) == normal
    assert contact_record(normal, RuleConfig()) == contact_ref(normal)
    encoded = orjson.loads(encode_command(Upsert(record=contact_ref(normal), properties={"email": normal})))
    assert list(encoded["record"]) == ["object_type", "id_property", "id_value"], "no address field at all"


@given(emails)
def test_a_pseudonym_ref_keys_by_the_pseudonym_and_asks_hubspot_by_the_email(email: str) -> None:
    normal = email.lower()
    ref = contact_record(normal, ON)
    assert ref.id_value == contact_key(normal, ON) and ref.address == normal
    assert normal not in ref.key and ref.hubspot_value == normal
    upsert = Upsert(record=ref, properties={"email": normal})
    assert normal not in command_key(upsert)
    assert RecordRef.model_validate_json(orjson.dumps(ref.model_dump(mode="json"))) == ref


def test_settings_hand_the_rules_the_privacy_key_only_when_redactable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRETS", "shh")
    monkeypatch.setenv("SHOPSYNC_PRIVACY_SECRET", "p" * 32)
    monkeypatch.delenv("SHOPSYNC_REDACTABLE", raising=False)
    assert Settings().redactable, "on by default (G1)"
    monkeypatch.setenv("SHOPSYNC_REDACTABLE", "0")
    off = Settings()
    monkeypatch.setenv("SHOPSYNC_REDACTABLE", "1")
    on = Settings()
    assert on.redactable and not off.redactable
    assert off.rule_config().contact_pseudonym_key is None and not off.rule_config().redactable
    key = on.rule_config().contact_pseudonym_key
    assert key is not None and key.get_secret_value() == on.privacy_key()
    env = on.to_env()
    assert env["SHOPSYNC_REDACTABLE"] == "true" and on.privacy_key() == b"p" * 32
    assert not any("PSEUDONYM" in name for name in env), "the key is derived, never a setting of its own"
    assert "contact_pseudonym_key" not in on.rule_config().model_dump()


# ---- the whole rules, on a generated store ----

SECOND_SHOP = "second.myshopify.com"


def _run(config: RuleConfig, customers: int = 40) -> InProcessPipeline:
    """The generated store of two shops (the same customers' emails in both: X3's one contact per
    email) through the in-process pipeline, with a HubSpot deletion (C4) in the middle."""
    pipeline = InProcessPipeline(config=config)
    one, two = generate(customers=customers, seed=5), generate(customers=customers, seed=5, shop=SECOND_SHOP)
    plan = schedule([*one.events, *two.events], timedelta(hours=1), timedelta(days=3))
    deleted = sorted(_emails(pipeline_events(one)))[0]
    for n, (batch, tick_at) in enumerate(plan):
        for event in sorted(batch, key=lambda e: (e.at, e.event_id)):
            pipeline.deliver(delivery_for(event))
        if n == len(plan) // 2:
            pipeline.deletion(HubSpotContactDeletion(event_id="del-1", object_id=1, email=deleted.upper(),
                                                     occurred_at=tick_at))  # fmt: skip
        pipeline.tick(tick_at)
    return pipeline


def pipeline_events(store: SampleStore) -> list[dict[str, Any]]:
    return [e.body for e in store.events]


def _emails(values: object) -> set[str]:
    """Every email address in a JSON tree, normalised."""
    found: set[str] = set()
    if isinstance(values, dict):
        for v in values.values():
            found |= _emails(v)
    elif isinstance(values, list):
        for v in values:
            found |= _emails(v)
    elif isinstance(values, str) and (normal := normalize_email(values)) is not None:
        found.add(normal)
    return found


def _refs(command: AnyCommand) -> list[RecordRef]:
    return [command.record, command.to] if isinstance(command, Associate | Dissociate) else [command.record]


def _plain(command: AnyCommand) -> bytes:
    """A command as it would be without the setting: every ref named by what HubSpot holds."""
    value = orjson.loads(encode_command(command))
    for name in ("record", "to"):
        if name in value and value[name].get("address") is not None:
            value[name]["id_value"] = value[name].pop("address")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize("mode", ["deals", "orders", "deals,orders"])
def test_the_store_syncs_the_same_account_and_no_key_holds_an_email(mode: str) -> None:
    shops = {"primary_shop": "shopify-hubspot-sync-dev.myshopify.com", "commerce_objects": mode}
    x4 = {"sync_email_subscription": "Marketing Information", "email_legal_basis": "CONSENT_WITH_NOTICE"}
    off = _run(RuleConfig(**shops, **x4))
    on = _run(ON.model_copy(update={**shops, **x4}))
    assert len(off.commands) > 500, "the store must exercise the rules"
    assert not off.dead_letters and not on.dead_letters

    # What HubSpot ends up holding, command for command (in the order of each contact's own).
    assert fold(on.commands) == fold(off.commands)
    assert sorted(map(_plain, on.commands)) == sorted(map(_plain, off.commands))
    contacts = [c for c in on.commands if c.record.object_type == "contacts"]
    assert any(c.op == "subscription" for c in contacts), "X4's subscriptions are exercised"
    assert any(c.op == "upsert" and c.properties.get("email") for c in contacts), "the email reaches HubSpot"

    emails = _emails([c.model_dump(mode="json") for c in off.commands])
    assert len(emails) >= 30, "most of the store's customers have an address"
    for command in on.commands:
        assert not {e for e in emails if e in command_key(command).lower()}
        for ref in _refs(command):
            assert "@" not in ref.key, ref.key
            if ref.object_type == "contacts":
                assert is_pseudonym(ref.id_value) and ref.address is not None
    for name, store in on.stores.items():  # every table's keys, the contacts' by pseudonym
        assert not [k for k in store.states if "@" in k], name
    assert on.contact_states and all(is_pseudonym(k) for k in on.contact_states)
    assert sorted(s.address or "" for s in on.contact_states.values()) == sorted(off.contact_states)
    deleted = [s for s in on.contact_states.values() if s.deleted_in_hubspot_at is not None]
    assert len(deleted) == 1, "C4: the deletion reached the pseudonym-keyed contact"


# ---- C4's join and the data-request report ----


def test_the_deletion_join_reads_pseudonym_keys_of_the_id_map() -> None:
    key = contact_key("ann@example.com", ON)
    mapping = contact_id_mapping(f"contacts:email:{key}".encode(), b"501")
    assert mapping is not None and mapping.email == key and mapping.object_id == 501
    state, released = on_deletion(
        HubSpotObjectState(email=key),
        HubSpotContactDeletion(event_id="e", object_id=501, occurred_at=datetime(2026, 3, 1, tzinfo=UTC)),
    )
    assert [d.email for d in released] == [key]
    outcome = HUBSPOT_OBJECTS.decide(state, released[0], released[0].occurred_at, ON)
    assert [(f.target, f.key) for f in outcome.forwards] == [("contacts", key)], "on to the contact, by key"
    assert contact_id_mapping(b"contacts:email:p1:@x", b"501") is not None  # an email is still read as one


def test_a_data_request_finds_the_customer_by_their_pseudonym_key() -> None:
    key = contact_key("ann@example.com", ON)
    subject = Subject("shop.myshopify.com", None, key, None)
    matcher = Matcher(SECRET, Sources(orders="", customer_keyed=frozenset(), tables={}, id_map="hubspot.ids"))
    ids = Record("hubspot.ids", 0, 1, f"contacts:email:{key}".encode(), b"501")
    other = Record("hubspot.ids", 0, 2, f"contacts:email:{contact_key('bob@example.com', ON)}".encode(), b"7")
    assert matcher.identifiers(subject, ids, "501")[0]
    assert not matcher.identifiers(subject, other, "7")[0]
    assert matcher.identifiers(subject, Record("t", 0, 3, b"x", b"{}"), {"email": key})[0]


def test_replay_sends_pseudonym_refs_and_leaves_out_a_contact_deleted_in_hubspot() -> None:
    """``replay`` folds by what HubSpot holds (emails) and sends refs keyed as the rules key them."""
    pipeline = _run(ON, customers=10)
    account = fold(pipeline.commands)
    deleted = {s.address for s in pipeline.contact_states.values() if s.deleted_in_hubspot_at is not None}
    assert len(deleted) == 1 and all(isinstance(a, str) for a in deleted)
    rebuilt = Rebuilt(len(pipeline.commands), "", account, deleted_in_hubspot={a for a in deleted if a})
    sent = desired_commands(rebuilt, ON)
    refs = [ref for command in sent for ref in _refs(command) if ref.object_type == "contacts"]
    assert refs and all(is_pseudonym(r.id_value) and r.address is not None for r in refs)
    assert {r.address for r in refs} == {key for kind, key in account.records if kind == "contacts"} - deleted
    assert {r.key for r in refs} == {contact_record(r.hubspot_value, ON).key for r in refs}
    assert not [r for r in refs if r.address in deleted], "C4: never re-created"
