"""The writer's own Kafka writes and its consumer group (SPEC R5, C4), over real HTTP against the
sandbox and a real broker: dead letters and id-map records Kafka refuses undo the round (nothing
committed past them, sent again); an archive whose lookup HubSpot refuses is dead-lettered, not
done; two writers in one group through rebalances write the account the commands describe."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from config import Settings
from devtools.localrun import group_lag, wait_until_written
from handlers import hubspot_paths as paths
from handlers.account_fold import fold
from handlers.writer import WriterStats, run_writer
from handlers.writer_time import Backoff
from hubspot_sandbox import Sandbox
from schemas.commands import AnyCommand, Archive, Associate, RecordRef, Upsert
from streams.deletions import contact_id_mapping
from streams.topic_reader import read_all
from streams.topics import ensure_topics, topic_name
from tests.writer.conftest import TOKEN, admin, agrees, append_commands, held, store_commands
from tests.writer.test_writer_faults import FAST, contact, dead_letters, until, upserts, writer

pytestmark = pytest.mark.kafka
HOLD = Backoff(base_s=6.0, cap_s=6.0)
"""Inputs HubSpot failed are retried 3 to 6 s later: still held when the group rebalances."""
TINY = 64
"""A ``max.message.bytes`` below any record batch: the broker refuses every write to the topic
(``MESSAGE_TOO_LARGE``), as it would fail them with no leader: the producer's futures fail."""


async def set_max_message_bytes(settings: Settings, topic: str, value: int) -> None:
    """Change one topic's ``max.message.bytes``, its other overrides unchanged (AlterConfigs
    replaces a topic's whole dynamic config)."""
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.start()
    try:
        (response,) = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = response.resources[0][4]
        overrides = {e[0]: e[1] for e in entries if e[3] == 1 and e[1] is not None}
        overrides["max.message.bytes"] = str(value)
        await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=overrides)])
    finally:
        await client.close()
    await asyncio.sleep(0.5)  # the broker applies a topic's dynamic config within moments


async def lag(settings: Settings) -> int:
    topic = topic_name(settings, "hubspot.commands")
    return await group_lag(settings.kafka_bootstrap_servers, settings.writer_group(), [topic])


async def test_dead_letters_kafka_refuses_commit_nothing_and_are_sent_once_kafka_takes_them(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    await ensure_topics(writer_settings)
    dlq = topic_name(writer_settings, "hubspot.commands.dlq")
    refused = upserts("r", 6)
    async with writer(writer_settings, backoff=FAST) as stats:
        await append_commands(writer_settings, upserts("ok", 2))
        await wait_until_written(writer_settings)  # started: its topics' sizes are set
        await set_max_message_bytes(writer_settings, dlq, TINY)
        await admin(sandbox, "POST", "/_sandbox/faults",
                    {"batch_error_rate": 1.0, "batch_error_category": "VALIDATION_ERROR"})  # fmt: skip
        await append_commands(writer_settings, refused)
        await until(lambda: stats.failed_rounds >= 2, what="rounds undone for unacknowledged dead letters")
        assert await lag(writer_settings) == len(refused), "nothing committed past an unsent dead letter"
        assert stats.dead_lettered == 0, "counted only once Kafka has them"
        await set_max_message_bytes(writer_settings, dlq, writer_settings.kafka_message_bytes())
        await wait_until_written(writer_settings)
    letters = await dead_letters(writer_settings)
    assert sorted(letter["command"]["record"]["id_value"] for letter in letters) == sorted(
        c.record.id_value for c in refused
    ), "every refused command dead-lettered, once"
    assert stats.dead_lettered == len(refused)


async def test_id_map_records_kafka_refuses_commit_nothing_and_are_written_again(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """Without its id-map record, the worker could never join HubSpot's deletion of that contact
    with its email (C4): the record is as durable as the command's offset."""
    await ensure_topics(writer_settings)
    ids_topic = topic_name(writer_settings, "hubspot.ids")
    later = upserts("b", 5)
    async with writer(writer_settings, backoff=FAST) as stats:
        await append_commands(writer_settings, upserts("a", 2))
        await wait_until_written(writer_settings)
        await set_max_message_bytes(writer_settings, ids_topic, TINY)
        await append_commands(writer_settings, later)
        await until(lambda: stats.failed_rounds >= 2, what="rounds undone for unacknowledged id-map records")
        assert await lag(writer_settings) == len(later), "nothing committed past an unwritten id"
        await set_max_message_bytes(writer_settings, ids_topic, writer_settings.kafka_message_bytes())
        await wait_until_written(writer_settings)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    hubspot_ids = {c["properties"]["email"]: str(c["id"]) for c in dump["contacts"]}
    records = await read_all(writer_settings.kafka_bootstrap_servers, ids_topic)
    mapped = {r.key.decode(): r.value.decode() for r in records if r.key and r.value}
    for command in later:
        assert mapped.get(command.record.key) == hubspot_ids[command.record.id_value]
    assert await dead_letters(writer_settings) == []


async def test_an_archive_whose_lookup_hubspot_refuses_is_dead_lettered_not_done(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """HubSpot refuses the whole ``batch/read`` (here: the id property is not unique), so it says
    nothing of whether the records exist: each archive is dead-lettered with HubSpot's answer
    (the batch narrowed down by halving), and an archive HubSpot can look up still goes through."""
    await ensure_topics(writer_settings)
    refused: list[AnyCommand] = [
        Archive(record=RecordRef(object_type="contacts", id_property="firstname", id_value=f"Ann{i}"))
        for i in range(3)
    ]
    async with writer(writer_settings) as stats:
        await append_commands(writer_settings, upserts("c", 2))
        await wait_until_written(writer_settings)
        await append_commands(writer_settings, [*refused, Archive(record=contact(0, "c"))])
        await wait_until_written(writer_settings)
    letters = await dead_letters(writer_settings)
    assert sorted(letter["command"]["record"]["id_value"] for letter in letters) == ["Ann0", "Ann1", "Ann2"]
    for letter in letters:
        assert letter["reason"] == "HubSpot refused to look up the record to archive"
        assert letter["status"] == 400 and "not a unique property" in letter["message"]
    assert stats.archived == 1 and stats.dead_lettered == 3 and stats.skipped_deleted == 0
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert {c["properties"]["email"] for c in dump["contacts"]} == {contact(1, "c").id_value}


async def test_a_contact_hubspot_deleted_keeps_its_id_in_the_id_map_for_the_deletion_join(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """HubSpot answers that a contact is gone: the id map keeps its id (``gone:<id>``, not a
    tombstone that compaction would take with the mapping), so the worker still resolves HubSpot's
    deletion webhook by object id after compaction or a replay (C4); the writer, restarted, neither
    re-creates the contact nor links to the dead id."""
    await ensure_topics(writer_settings)
    ann = contact(0, "gone")
    async with writer(writer_settings) as stats:
        await append_commands(writer_settings, [Upsert(record=ann, properties={"email": ann.id_value})])
        await wait_until_written(writer_settings)
        dump = await admin(sandbox, "GET", "/_sandbox/dump")
        (gone_id,) = [str(c["id"]) for c in dump["contacts"]]
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            assert (await http.delete(paths.record("contacts", gone_id))).status_code == 204
        update = Upsert(record=ann, properties={"firstname": "Ann"}, create_if_missing=False)
        await append_commands(writer_settings, [update])
        await wait_until_written(writer_settings)
    assert stats.skipped_deleted == 1
    ids_topic = topic_name(writer_settings, "hubspot.ids")
    records = [r for r in await read_all(writer_settings.kafka_bootstrap_servers, ids_topic) if r.key]
    last = [r for r in records if r.key == ann.key.encode()][-1]
    assert last.value == f"gone:{gone_id}".encode(), "the id stays, marked gone"
    mapping = contact_id_mapping(last.key, last.value)
    assert mapping is not None and str(mapping.object_id) == gone_id and mapping.email == ann.id_value

    deal_ref = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="order:1")
    settings = writer_settings.model_copy(update={"writer_link_wait_s": 1.0})
    async with writer(settings) as stats:  # restarted: loads the map, the gone id included
        await append_commands(settings, [
            Upsert(record=deal_ref, properties={"dealname": "Order 1", "shopify_deal_key": "order:1"}),
            Upsert(record=ann, properties={"firstname": "Ann"}, create_if_missing=False),
            Associate(record=deal_ref, to=ann, association_type_id=3),
        ])  # fmt: skip
        await wait_until_written(settings)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    assert dump["contacts"] == [] and dump["associations"] == [], "not re-created, not linked"
    (letter,) = await dead_letters(settings)
    assert letter["reason"].startswith("association end contacts:email:")
    assert stats.skipped_deleted == 1 and stats.linked == 0


async def test_two_writers_in_one_group_through_rebalances_write_every_command(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    """A rolling deploy: writer A runs, B joins (a rebalance), A stops (another), commands arriving
    throughout and HubSpot failing inputs transiently, so commands are held while partitions move.
    The account is the one the commands describe, nothing is dead-lettered, all is committed.

    The link wait is longer than the retry spacing, as the defaults are (120 s against a 60 s cap):
    a link's end may be held for a retry by the *other* writer, which this one cannot know."""
    writer_settings = writer_settings.model_copy(update={"writer_link_wait_s": 3 * HOLD.cap_s})
    await ensure_topics(writer_settings)
    commands = store_commands(customers=10, seed=21)
    cut1, cut2 = len(commands) // 3, 2 * len(commands) // 3
    await admin(sandbox, "POST", "/_sandbox/faults",
                {"batch_error_rate": 0.3, "batch_error_category": "INTERNAL_ERROR"})  # fmt: skip
    stop_a, stop_b, stats_a, stats_b = asyncio.Event(), asyncio.Event(), WriterStats(), WriterStats()
    a = asyncio.create_task(run_writer(writer_settings, stop_a, backoff=HOLD, stats=stats_a))
    b: asyncio.Task[WriterStats] | None = None
    try:
        await append_commands(writer_settings, commands[:cut1])
        await until(lambda: stats_a.retried_inputs > 0, what="A holding inputs for a retry")
        b = asyncio.create_task(run_writer(writer_settings, stop_b, backoff=HOLD, stats=stats_b))
        await append_commands(writer_settings, commands[cut1:cut2])
        await until(lambda: stats_b.windows > 0, what="B applying rounds")
        await admin(sandbox, "POST", "/_sandbox/faults", {"batch_error_rate": 0.0})  # retries succeed
        await asyncio.sleep(HOLD.cap_s)  # A retries what it held from before B came
        stop_a.set()  # A stops, perhaps holding commands: B takes its partitions over
        await append_commands(writer_settings, commands[cut2:])
        await asyncio.wait_for(a, 30)
        await wait_until_written(writer_settings, timeout_s=120)
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(a, *([b] if b else [])), 30)
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    problems = agrees(fold(commands), held(dump))
    assert not problems, problems[:10]
    assert await dead_letters(writer_settings) == []
    assert stats_a.dead_lettered == stats_b.dead_lettered == 0
    assert stats_a.upserted > 0 and stats_b.upserted > 0, "both wrote some of it"
