"""The redactor (SPEC G1, wiring step 4): applies ``customers/redact`` and ``shop/redact``.

It consumes ``shopify.compliance`` in a consumer group of its own and, for each redact, appends
the tombstones ``streams.shredding.redaction_for`` picks (the customer's keys in that shop, or
every key of the shop) to the key topic through the key ring, waits for Kafka's
acknowledgements, and only then commits the request's offset. So a crash between the two
appends the tombstones again on restart (a tombstone of a key already gone is not picked again:
``redaction`` only picks live keys), and a request is never marked done before its keys are
shredded. Before each batch it reads the key topic to its end, so a key another process made a
moment ago (a bridge meeting the customer's last order) is shredded too.

A data request needs nothing here (``shopsync compliance report`` answers it). The redactor
logs each request it applied with its topic, event id, shop, the number of keys shredded and
the number its subject had shredded before (a request applied again after a failed HubSpot
erasure or a stop before its commit finds its keys gone: 0 shredded, N before), never the
customer (the request holds only pseudonyms, and not even those are logged).

Why a consumer group rather than the bridge acting on the webhook: the bridge answers Shopify
once the request is durable on the topic; acting on it is the log's job, so a redact received
while the redactor is down is applied when it comes back, and a replayed or redelivered request
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from config import Settings
from handlers.hubspot_erasure import HubSpotEraser
from handlers.keyring import KeyRing
from schemas.compliance import ComplianceRequest
from streams.shredding import already_shredded, key_encryption_key, redaction_for
from streams.topics import key_topic, topic_name

log = logging.getLogger("shopsync.redactor")


class UnreadableRequestError(RuntimeError):
    """A record on the compliance topic this version cannot read: the redactor stops before it."""


@dataclass(frozen=True)
class Applied:
    """One compliance record, as the redactor left it: the keys shredded (0 for a data request,
    or for a redact whose customer has no key: nothing of theirs was ever sealed)."""

    topic: str
    event_id: str
    shop_domain: str
    shredded: int
    hubspot_deleted: int = 0
    """Contacts deleted from HubSpot (``SHOPSYNC_REDACT_HUBSPOT``; 0 with it off)."""


async def apply(
    ring: KeyRing, secret: bytes, records: Sequence[ConsumerRecord[bytes, bytes]],
    hubspot: HubSpotEraser | None = None,
) -> list[Applied]:  # fmt: skip
    """Shred what the batch's redacts name, in order, each acknowledged before the next; a
    record that is not a compliance request this version reads raises :class:`UnreadableRequestError`
    (the requests before it in the batch are applied; none is committed). With ``hubspot``
    (``SHOPSYNC_REDACT_HUBSPOT``) a redact's HubSpot contact is deleted once its keys are
    shredded, not before: the writer reads the key topic before every round and sends nothing
    sealed under a shredded key, so no pending upsert re-creates the contact after the delete
    (deleting first left that window: found in review). If HubSpot does not do it, its error
    stops the batch uncommitted and the request is tried again: its keys are gone already (the
    redaction picks none), and deleting twice is a 404, done."""
    await ring.catch_up()
    done: list[Applied] = []
    for record in records:
        try:
            request = ComplianceRequest.model_validate_json(record.value or b"")
        except ValidationError as exc:
            # Never passed: committing past a request this version cannot read (a newer bridge's,
            # during an upgrade) would drop a legal obligation silently. Stop, uncommitted, so the
            # service restarts on it and an operator sees why (the offset, never the content).
            raise UnreadableRequestError(
                f"compliance record {record.topic}[{record.partition}]@{record.offset} is not a "
                f"compliance request this version reads ({exc.error_count()} problems)"
            ) from None
        before = already_shredded(request, secret, ring.tombstones)
        shredded = await ring.shred(redaction_for(request, secret, ring.held))
        deleted = await hubspot.erase(request) if hubspot is not None else 0
        done.append(Applied(request.topic, request.event_id, request.shop_domain, shredded, deleted))
        if request.topic != "customers/data_request":
            log.warning(
                "compliance.redact_applied topic=%s event_id=%s shop=%s keys_shredded=%d "
                "keys_shredded_before=%d hubspot_contacts_deleted=%s",
                request.topic, request.event_id, request.shop_domain, shredded, before,
                deleted if hubspot is not None else "off",
            )  # fmt: skip
    return done


async def run(
    bootstrap: str,
    compliance_topic: str,
    group: str,
    ring: KeyRing,
    secret: bytes,
    *,
    follow: bool,
    on_applied: Callable[[Applied], None] = lambda applied: None,
    hubspot: HubSpotEraser | None = None,
) -> int:
    """Apply every request from the group's committed offset on (the first run: from the topic's
    beginning); with ``follow``, keep waiting for new ones until cancelled, else stop at the end
    offsets seen at the start. The number of records applied."""
    consumer = AIOKafkaConsumer(
        compliance_topic, bootstrap_servers=bootstrap, group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    count = 0
    try:
        ends: dict[TopicPartition, int] | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            records = [r for part in sorted(batch, key=lambda tp: tp.partition) for r in batch[part]]
            for applied in await apply(ring, secret, records, hubspot):
                on_applied(applied)
            count += len(records)
            if records:
                await consumer.commit()  # after the tombstones were acknowledged
            if follow:
                continue
            if ends is None:
                assigned = consumer.assignment()
                if not assigned:
                    continue  # still joining the group
                ends = await consumer.end_offsets(list(assigned))
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return count
    finally:
        await consumer.stop()


async def redact(
    bootstrap: str, compliance_topic: str, key_topic: str, group: str, kek: bytes, secret: bytes,
    *, follow: bool, on_applied: Callable[[Applied], None] = lambda applied: None,
    hubspot: HubSpotEraser | None = None,
) -> None:  # fmt: skip
    """``shopsync compliance redact``: apply every pending request, then stop (with ``follow``:
    go on applying requests as they arrive, until cancelled; each batch reads the key topic to its
    end first, so the ring needs no follower of its own)."""
    ring = KeyRing(bootstrap, key_topic, kek)
    await ring.start()
    try:
        await run(
            bootstrap, compliance_topic, group, ring, secret, follow=follow, on_applied=on_applied,
            hubspot=hubspot,
        )  # fmt: skip
    finally:
        await ring.stop()
        if hubspot is not None:
            await hubspot.close()


async def redact_once(
    bootstrap: str, compliance_topic: str, key_topic: str, group: str, kek: bytes, secret: bytes,
    *, hubspot: HubSpotEraser | None = None,
) -> list[Applied]:  # fmt: skip
    applied: list[Applied] = []
    await redact(
        bootstrap, compliance_topic, key_topic, group, kek, secret, follow=False, on_applied=applied.append,
        hubspot=hubspot,
    )  # fmt: skip
    return applied


async def redact_forever(
    bootstrap: str, compliance_topic: str, key_topic: str, group: str, kek: bytes, secret: bytes,
    *, hubspot: HubSpotEraser | None = None,
) -> None:  # fmt: skip
    await redact(bootstrap, compliance_topic, key_topic, group, kek, secret, follow=True, hubspot=hubspot)


RedactorArgs = tuple[str, str, str, str, bytes, bytes]


def redactor_args(settings: Settings) -> RedactorArgs:
    """What :func:`redact_once` and :func:`redact_forever` take, from the settings: the same key
    topic (``streams.topics.key_topic``) and key-encryption key as every sealer and opener
    (``handlers.sealer``), and the redactor's own consumer group, ``<app id>.redactor``."""
    secret = settings.privacy_key()
    return (
        settings.kafka_bootstrap_servers, topic_name(settings, "shopify.compliance"), key_topic(settings),
        f"{settings.app_id}.redactor", key_encryption_key(secret), secret,
    )  # fmt: skip
