"""The writer with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on (G1, step 3's second part), on a real Kafka
and the HubSpot sandbox. The test seals the commands as the worker does (``seal(..., COMMAND,
...)``), under keys it makes on the key topic with a ``KeyRing``, one subject per contact:

- sealed commands write the account the same commands write unsealed;
- a command whose key was tombstoned (its customer redacted) is never sent: counted as
  ``skipped_redacted`` and committed, no dead letter;
- a command HubSpot refuses is dead-lettered, and nothing personal is readable in the letter's
  bytes (HubSpot's answer quotes the address it refused), though it opens with the key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from pydantic import SecretBytes, SecretStr

from config import Settings
from config.rules import RuleConfig
from devtools.localrun import wait_until_written
from handlers.keyring import KeyRing
from handlers.sealer import Opener
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from schemas.commands import AnyCommand, Associate, RecordRef, Upsert
from schemas.sealing import open_tree, opening
from streams.shredding import KeyRecord, key_encryption_key
from streams.topic_reader import read_all
from streams.topics import TopicName, ensure_topics, key_topic, topic_name
from tests.privacy.test_sealed_end_to_end import account, differences
from tests.writer.conftest import TOKEN, admin, append_commands, store_commands, write_all
from tests.writer.test_writer_sandbox import writer
from tests.writer.test_writer_sealed import sealed

pytestmark = pytest.mark.kafka

SHOP = "s.myshopify.com"
SECRET = SecretStr("writer-sealed-privacy-secret")


def sealed_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"seal_personal_data": True, "privacy_secret": SECRET})


@asynccontextmanager
async def key_ring(settings: Settings) -> AsyncIterator[KeyRing]:
    """The test's own ring on the key topic (the worker's, in production)."""
    kek = key_encryption_key(settings.privacy_key())
    ring = KeyRing(settings.kafka_bootstrap_servers, key_topic(settings), kek)
    await ring.start()
    try:
        yield ring
    finally:
        await ring.stop()


def subject_of(command: AnyCommand) -> str:
    """The key id a command is sealed under: the contact it names, else the shop's (test-made)."""
    refs = [command.record, *([command.to] if isinstance(command, Associate) else [])]
    named = next((r.id_value for r in refs if r.object_type == "contacts"), SHOP)
    return base64.urlsafe_b64encode(hashlib.sha256(named.encode()).digest()[:16]).rstrip(b"=").decode()


async def sealer(ring: KeyRing, commands: list[AnyCommand]) -> Callable[[AnyCommand], bytes]:
    """How the worker encodes a command with sealing on, each under its subject's key (made and
    acknowledged on the key topic first)."""
    keys = {kid: await ring.key_for(SHOP, kid) for kid in {subject_of(c) for c in commands}}

    def encode(command: AnyCommand) -> bytes:
        return sealed(command, *keys[subject_of(command)])

    return encode


async def raw_values(settings: Settings, name: TopicName) -> list[bytes]:
    records = await read_all(settings.kafka_bootstrap_servers, topic_name(settings, name))
    return [r.value or b"" for r in records]


PSEUDONYMS = RuleConfig(contact_pseudonym_key=SecretBytes(b"writer-sealed-pseudonyms"))
"""Contacts keyed by pseudonym with the email as ``address`` (``SHOPSYNC_REDACTABLE``): the
setting sealing is meant to run with, so the natural keys name no one."""


async def test_sealed_commands_write_the_account_the_same_commands_write_unsealed(
    writer_settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    commands = store_commands(customers=6, seed=5, config=PSEUDONYMS)
    emails = {c.record.address for c in commands if c.record.address}
    assert len(emails) >= 5, "a store with contacts"
    config = SandboxConfig(db_path=tmp_path / "plain.db", token=SecretStr(TOKEN))
    async with running_sandbox(config) as plain_sandbox:
        plain = writer_settings.model_copy(update={
            "hubspot_base_url": plain_sandbox.url, "topic_prefix": f"{writer_settings.topic_prefix}plain.",
            "app_id": f"{writer_settings.app_id}-plain",
        })  # fmt: skip
        plain_stats = await write_all(plain, commands)
        plain_account = account(await admin(plain_sandbox, "GET", "/_sandbox/dump"))
    own = sealed_settings(writer_settings)
    await ensure_topics(own)  # the key topic too
    async with key_ring(own) as ring:
        stats = await write_all(own, commands, await sealer(ring, commands))
    sealed_account = account(await admin(sandbox, "GET", "/_sandbox/dump"))
    assert plain_stats.dead_lettered == stats.dead_lettered == 0 and stats.skipped_redacted == 0
    assert (stats.upserted, stats.linked) == (plain_stats.upserted, plain_stats.linked)
    assert sealed_account == plain_account, differences(plain_account, sealed_account)
    on_topic = b"".join(await raw_values(own, "hubspot.commands"))
    assert not [e for e in emails if e.encode() in on_topic], "the test appended them sealed"


def contact(name: str, email: str) -> RecordRef:
    pseudonym = "p1:" + base64.urlsafe_b64encode(hashlib.sha256(email.encode()).digest()).decode()[:20]
    return RecordRef(object_type="contacts", id_property="email", id_value=pseudonym, address=email)


ZED = contact("zed", "zed.quill@example.com")
AMY = contact("amy", "amy.rowe@example.com")
ORDER = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="order:77")


async def test_a_command_whose_key_was_tombstoned_is_not_sent_and_is_counted_done(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    own = sealed_settings(writer_settings)
    deal = {"dealname": "#77", "pipeline": "Ecommerce Pipeline", "dealstage": "Checkout Completed"}
    zeds: list[AnyCommand] = [
        Upsert(record=ZED, properties={"email": ZED.hubspot_value, "firstname": "Zebedee"}),
        Upsert(record=ZED, properties={"email": ZED.hubspot_value, "lastname": "Quill"}),
        Associate(record=ORDER, to=ZED, association_type_id=3),
    ]
    amys: list[AnyCommand] = [Upsert(record=AMY, properties={"email": AMY.hubspot_value, "firstname": "Amy"})]
    others: list[AnyCommand] = [Upsert(record=ORDER, properties={"shopify_deal_key": "order:77", **deal})]
    commands = [*zeds, *amys, *others]
    await ensure_topics(own)
    async with key_ring(own) as ring:
        encode = await sealer(ring, commands)
        (zed_key,) = [r for r in ring.held if r.ref.startswith(subject_of(zeds[0]))]
        await ring.shred([KeyRecord(SHOP, zed_key.ref, None)])  # the redactor's tombstone
        stats = await write_all(own, commands, encode)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    emails = {c["properties"]["email"] for c in dump["contacts"]}
    assert emails == {AMY.hubspot_value}, "Zed's commands were never sent"
    assert len(dump["deals"]) == 1 and not dump["associations"]
    assert stats.skipped_redacted == len(zeds) and stats.dead_lettered == 0
    assert await raw_values(own, "hubspot.commands.dlq") == [], "done, not a problem to act on"


async def test_a_sealed_command_hubspot_refuses_is_dead_lettered_with_nothing_personal_readable(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    own = sealed_settings(writer_settings)
    bad = contact("bad", "zed.quill.at.example.com")  # HubSpot: "Email address ... is invalid"
    refused = Upsert(record=bad, properties={"email": bad.hubspot_value, "firstname": "Zebedee",
                                             "address": "12 Quillwood Lane"})  # fmt: skip
    commands: list[AnyCommand] = [refused, Upsert(record=AMY, properties={"email": AMY.hubspot_value})]
    await ensure_topics(own)
    async with key_ring(own) as ring:
        stats = await write_all(own, commands, await sealer(ring, commands))
        keys = dict(ring.keys)
    assert stats.dead_lettered == 1 and stats.upserted == 1
    (raw,) = await raw_values(own, "hubspot.commands.dlq")
    for personal in (b"zed.quill.at.example.com", b"Zebedee", b"Quillwood"):
        assert personal not in raw
    letter = orjson.loads(raw)
    assert letter["reason"] == "HubSpot rejected the record" and letter["status"] == 400
    assert letter["command"]["record"]["id_value"] == bad.id_value, "natural keys stay readable"
    with opening(keys):
        opened = open_tree(letter)
    assert "zed.quill.at.example.com" in orjson.dumps([opened["message"], opened["errors"]]).decode(), (
        "HubSpot did quote the address: it is sealed in the letter, and opens with the key"
    )
    assert opened["command"]["properties"]["firstname"] == "Zebedee"


async def test_a_running_writer_stops_sending_a_customers_commands_once_their_key_is_shredded(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """The writer held Zed's key when the redact came: it follows the key topic, so his next
    command is not sent, though it was sealed with a key the writer had opened with before."""
    own = sealed_settings(writer_settings)
    zed = {"email": ZED.hubspot_value, "firstname": "Zed"}
    first: list[AnyCommand] = [Upsert(record=ZED, properties=zed)]
    later: list[AnyCommand] = [
        Upsert(record=ZED, properties={"email": ZED.hubspot_value, "lastname": "Quill"}),
        Upsert(record=AMY, properties={"email": AMY.hubspot_value, "firstname": "Amy"}),
    ]
    await ensure_topics(own)
    async with key_ring(own) as ring, writer(own) as task:
        encode = await sealer(ring, first + later)
        await append_commands(own, first, encode)
        await wait_until_written(own)
        (zed_key,) = [r for r in ring.held if r.ref.startswith(subject_of(first[0]))]
        await ring.shred([KeyRecord(SHOP, zed_key.ref, None)])
        await append_commands(own, later, encode)
        await wait_until_written(own)
    stats = task.result()
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    by_email = {c["properties"]["email"]: c["properties"] for c in dump["contacts"]}
    assert by_email[ZED.hubspot_value]["firstname"] == "Zed", "written while his key was live"
    assert not by_email[ZED.hubspot_value].get("lastname"), "not sent after the redact"
    assert by_email[AMY.hubspot_value]["firstname"] == "Amy"
    assert (stats.upserted, stats.skipped_redacted, stats.dead_lettered) == (2, 1, 0)


async def test_a_key_topic_that_does_not_answer_pauses_the_writer_then_everything_is_written(
    writer_settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key-ring catch-up that never returns (a key topic partition without a reachable leader
    gives empty fetches, not an error) is bounded: the round is undone and the writer pauses as
    for a Kafka outage, then reads it again; nothing is lost or sent twice (found in review: the
    catch-up had no bound and the round hung silently)."""
    own = sealed_settings(writer_settings)
    commands: list[AnyCommand] = [
        Upsert(record=ZED, properties={"email": ZED.hubspot_value, "firstname": "Zed"}),
        Upsert(record=AMY, properties={"email": AMY.hubspot_value, "firstname": "Amy"}),
    ]
    calls: list[int] = []
    ensure = Opener.ensure

    async def hanging(self: Opener, raws: Iterable[bytes]) -> None:
        calls.append(len(calls))
        if calls[-1] in (1, 2):  # after the start-up read, two rounds' catch-ups do not answer
            await asyncio.sleep(3600)
        await ensure(self, raws)

    # a round's real catch-up (an end-offsets request) takes milliseconds, tenths under CI's load
    monkeypatch.setattr("handlers.writer.KEY_CATCH_UP_S", 2.0)
    monkeypatch.setattr(Opener, "ensure", hanging)
    await ensure_topics(own)
    async with key_ring(own) as ring:
        stats = await write_all(own, commands, await sealer(ring, commands))
    assert len(calls) >= 4 and stats.failed_rounds >= 2, "each hung catch-up undid its round"
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert {c["properties"]["firstname"] for c in dump["contacts"]} == {"Zed", "Amy"}
    assert (stats.upserted, stats.dead_lettered, stats.skipped_redacted) == (2, 0, 0)
