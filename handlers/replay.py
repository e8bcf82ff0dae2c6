"""Replay: rebuild what HubSpot should hold from the topics alone, and send it or show the diff.

The Shopify topics and ``hubspot.events`` are read from the beginning and merged into one
deterministic order (by receive time, then topic, partition and offset); the in-process pipeline
(the same routing, rules and timer semantics as the worker) folds them, with the clock advanced
to each record's receive time before it is applied, and finally to ``until`` (default: the newest
record's time, so replaying the same topics twice gives the same result). The outcome is the
account HubSpot should hold. Then either:

- ``send``: its records as full upserts, its archives and its associations are appended to
  ``hubspot.commands`` (in a stable order), for the writer; a second replay of the same topics
  sends the same commands, which change nothing in HubSpot;
- ``--dry-run``: the account is read back through HubSpot's standard CRM endpoints (the sandbox
  or a real account) and the differences are printed, nothing is written.

Either way the records the rebuild could not use (unreadable, or dead-lettered by the rules) and
the field problems are counted in ``Rebuilt.report`` (R7): the account rebuilt without them is
not the whole store, and the command says so with its exit code.

To rebuild the stream worker's own tables instead (say after changing a rule), start it under a
fresh application id: ``SHOPSYNC_APP_ID=shopsync-v2 shopsync worker`` reads every topic from the
beginning into new tables and internal topics, leaving the old ones untouched.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from config import Settings
from config.rules import RuleConfig
from handlers import hubspot_paths as paths
from handlers.account_fold import Account
from handlers.hubspot_client import HubSpotClient
from handlers.loss import LossReport, from_pipeline
from handlers.progress import NoProgress, Progress, Totals
from handlers.sealer import opener_for
from schemas.commands import AnyCommand, Archive, Associate, RecordRef, Upsert, command_key, encode_command
from schemas.envelope import Delivery, HubSpotContactDeletion, decode_log_record
from schemas.sealing import NONCE_BYTES, opening, refs_in
from streams.derived_sealing import command_is_personal, seal_command
from streams.inprocess import InProcessPipeline, Subject
from streams.rules.contact_keys import contact_record
from streams.rules.contacts import address_of
from streams.rules.keys import UNIQUE_PROPERTY
from streams.rules.reports import compute
from streams.shredding import kid_of, shop_key_id
from streams.topic_reader import offsets_spanned, read_all
from streams.topics import ROUTED_TOPICS, TopicName, ensure_topics, topic_name

SOURCES: tuple[TopicName, ...] = (*ROUTED_TOPICS, "shopify.products")


@dataclass
class Rebuilt:
    """The outcome of folding the topics: the account the rules' commands give, and how many
    commands that took (with a digest of them in order, so two rebuilds can be compared without
    holding every command: they are folded as they come)."""

    command_count: int
    command_digest: str
    account: Account
    records_read: int = 0
    skipped: list[str] = field(default_factory=list)
    deleted_in_hubspot: set[str] = field(default_factory=set)  # emails never to write again (C4)
    report: LossReport = field(default_factory=LossReport)  # R7: records the rebuild could not use
    reports: dict[str, Any] = field(default_factory=dict)  # E1: the ecommerce reports, rebuilt
    subjects: dict[tuple[str, str], RecordSubject] = field(default_factory=dict)
    """G1 (sealing on): each record's subject, whose key :func:`send` seals its commands under:
    the newest sealed input's that wrote it (the shop's for companies), as the worker seals."""


@dataclass(frozen=True)
class RecordSubject:
    """G1: whose key seals a rebuilt record's commands: a key ref of a customer (None: the shop's
    own subject), and whether that key was already gone when the topics were read (redacted)."""

    ref: str | None
    shop: str
    redacted: bool = False


async def rebuild(
    settings: Settings, until: datetime | None = None, progress: Progress | None = None
) -> Rebuilt:
    """Fold every record of the source topics, in a deterministic order, through the rules.

    The records are held as their bytes until their turn (a parsed delivery of a few KB takes
    about eight times its size in memory): only the instant they are sorted by is read up front.
    ``progress`` sees two phases, each with its total known: reading (the topics' end offsets
    minus their beginnings) and folding (the records read)."""
    shown = progress if progress is not None else NoProgress()
    entries: list[tuple[datetime, str, int, int, bytes]] = []
    skipped: list[str] = []
    unreadable = LossReport()

    def unusable(full: str, name: str, partition: int, offset: int, exc: Exception) -> None:
        skipped.append(f"{full}[{partition}]@{offset}")
        unreadable.dead_letter("replay", f"not a readable {name} record: {exc}")

    fulls = [topic_name(settings, name) for name in SOURCES]
    read = 0

    def counted(records: int) -> None:
        nonlocal read
        read += records
        shown.update(read)

    if progress is not None:
        spanned = await offsets_spanned(settings.kafka_bootstrap_servers, fulls)
        shown.start("replay: read", Totals(records=spanned))
    for name, full in zip(SOURCES, fulls, strict=True):
        records = await read_all(settings.kafka_bootstrap_servers, full, timeout_s=120, on_batch=counted)
        for record in records:
            try:
                at = _sort_instant(name, record.value)
            except (ValidationError, ValueError) as exc:
                unusable(full, name, record.partition, record.offset, exc)
                continue
            if at is not None:
                entries.append((at, full, record.partition, record.offset, record.value))
        del records
    shown.finish()
    keys = await _keys_for(settings, [e[4] for e in entries])
    entries.sort(key=lambda e: (e[0], e[1], e[2], e[3]))
    newest = entries[-1][0] if entries else None
    events = topic_name(settings, "hubspot.events")
    pipeline = InProcessPipeline(config=settings.rule_config(), track_subjects=bool(keys))
    folded = _Folded()
    used = 0
    queue = deque(entries)  # each record's bytes are let go once applied
    total = len(entries)
    del entries
    shown.start("replay: fold", Totals(records=total))
    with opening(keys):  # G1: sealed bodies open where they are parsed (nothing awaits below)
        while queue:
            if len(queue) % PROGRESS_EVERY == 0:
                shown.update(total - len(queue))
            at, full, partition, offset, raw = queue.popleft()
            if len(pipeline.commands) >= FOLD_EVERY:
                folded.take(pipeline.commands, pipeline.command_subjects)
            try:
                item = (
                    HubSpotContactDeletion.model_validate_json(raw)
                    if full == events
                    else decode_log_record(raw)
                )
            except (ValidationError, ValueError) as exc:
                unusable(full, full.removeprefix(settings.topic_prefix), partition, offset, exc)
                continue
            used += 1
            pipeline.tick(at)
            if isinstance(item, Delivery):
                if pipeline.track_subjects:  # G1: the first ref its bytes name, as the worker reads it
                    refs = sorted(refs_in(raw))
                    pipeline.subject_now = (refs[0] if refs else None, item.shop_domain.strip().lower())
                pipeline.deliver(item)
                pipeline.subject_now = None
            elif isinstance(item, HubSpotContactDeletion):
                pipeline.deletion(item)
    end = until or newest
    if end is not None:
        pipeline.tick(end)
    folded.take(pipeline.commands, pipeline.command_subjects)
    shown.update(total)
    shown.finish()
    deleted = {  # by address, as the account is keyed (G1: the states by pseudonym)
        address
        for state in pipeline.contact_states.values()
        if state.deleted_in_hubspot_at is not None and (address := address_of(state)) is not None
    }
    report = unreadable.merge(from_pipeline(pipeline, "replay"))
    reports = compute(pipeline.report_facts.values())
    subjects = {
        record: RecordSubject(ref, shop, ref is not None and ref not in keys)
        for record, (ref, shop) in folded.subjects.items()
    }
    return Rebuilt(
        folded.count, folded.digest.hexdigest(), folded.account, used, skipped, deleted, report, reports,
        subjects,
    )  # fmt: skip


async def _keys_for(settings: Settings, raws: list[bytes]) -> Mapping[str, bytes]:
    """G1: the data keys the records name, from the key topic (none while sealing is off: a
    sealed body then fails its parse and is counted as unusable, never read as erased)."""
    opener = opener_for(settings)
    if opener is None:
        return {}
    try:
        await opener.ensure(raws)
        return dict(opener.keys)
    finally:
        await opener.stop()


PROGRESS_EVERY = 1_000
"""Records folded between two progress updates (an update per record would cost more than it shows)."""

FOLD_EVERY = 10_000
"""Commands held before they are folded into the account (replay once kept every command until
the end: about 17 KB a delivery with the states, so a million deliveries did not fit)."""


@dataclass
class _Folded:
    """The account so far, and the count and digest of the commands folded into it, in order."""

    account: Account = field(default_factory=Account)
    count: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    subjects: dict[tuple[str, str], Subject] = field(default_factory=dict)

    def take(self, commands: list[AnyCommand], subjects: list[Subject | None]) -> None:
        """Fold ``commands`` and empty the list; ``subjects``, beside them when tracked (G1), say
        whose key each record's commands are sealed under (the newest wins), and are emptied too."""
        for command in commands:
            self.account.apply(command)
            self.digest.update(encode_command(command))
        tracked = zip(commands, subjects, strict=True) if subjects else ()
        for command, subject in tracked:
            if subject is not None:
                self.subjects[(command.record.object_type, command.record.hubspot_value)] = subject
        self.count += len(commands)
        commands.clear()
        subjects.clear()


def _sort_instant(name: str, raw: bytes) -> datetime | None:
    """The instant a record is replayed at (None: a tick, which carries no data), read without
    validating the whole record; anything unusual is validated in full, which says what is wrong."""
    field_name = "occurred_at" if name == "hubspot.events" else "received_at"
    try:
        value = orjson.loads(raw)
        if isinstance(value, dict) and value.get("kind") in ("delivery", "contact.deletion"):
            at = datetime.fromisoformat(value[field_name])
            if at.tzinfo is not None:
                return at
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    if name == "hubspot.events":
        return HubSpotContactDeletion.model_validate_json(raw).occurred_at
    decoded = decode_log_record(raw)
    return decoded.received_at if isinstance(decoded, Delivery) else None


def _record_ref(object_type: str, key: str, config: RuleConfig) -> RecordRef:
    """The ref of an account's record (keyed as HubSpot holds it): a contact's by its key in the
    commands, the email or (G1) its pseudonym."""
    if object_type == "contacts":
        return contact_record(key, config)
    return RecordRef.model_validate(
        {"object_type": object_type, "id_property": UNIQUE_PROPERTY[object_type], "id_value": key}
    )


def desired_commands(rebuilt: Rebuilt, config: RuleConfig | None = None) -> list[AnyCommand]:
    """The commands that make HubSpot hold the rebuilt account, in a stable order: archives, full
    upserts, then associations. Re-sending them changes nothing. Contacts HubSpot deleted are
    left out (C4: never re-created). ``config``: the rules' settings, which say how contacts are
    keyed (G1)."""
    account = rebuilt.account
    rules = config or RuleConfig()

    def _ref(object_type: str, key: str) -> RecordRef:
        return _record_ref(object_type, key, rules)

    gone = {("contacts", email) for email in rebuilt.deleted_in_hubspot}
    out: list[AnyCommand] = [Archive(record=_ref(t, k)) for t, k in sorted(account.archived)]
    for (object_type, key), props in sorted(account.records.items()):
        if (object_type, key) not in gone:
            out.append(Upsert(record=_ref(object_type, key), properties=dict(sorted(props.items()))))
    for a, b, type_id in sorted(account.associations):
        if a not in gone and b not in gone:
            out.append(Associate(record=_ref(*a), to=_ref(*b), association_type_id=type_id))
    return out


@dataclass(frozen=True)
class Sent:
    """What :func:`send` appended, and what it left out (G1: a redacted customer's commands that
    carry personal values: they cannot be written in the clear, and nothing may open them)."""

    appended: int
    left_out_redacted: int = 0


async def send(
    settings: Settings,
    commands: list[AnyCommand],
    subjects: Mapping[tuple[str, str], RecordSubject] | None = None,
) -> Sent:
    """Append ``commands`` to ``hubspot.commands`` for the writer. With
    ``SHOPSYNC_SEAL_PERSONAL_DATA`` on, a command carrying personal values is sealed in the
    ``schemas.sealing.COMMAND`` format under its record's subject (``Rebuilt.subjects``), as the
    worker seals it, so a later redact erases the replay's copy too; one whose subject's key is
    gone (at the rebuild, or since) is left out and counted. Sent into another deployment's topics
    (another prefix: its own key topic), a subject's key is that deployment's, made if it has none
    (the same key id: its redactor finds it)."""
    await ensure_topics(settings)
    records, left_out = await _sealed(settings, commands, subjects or {})
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20,
        max_request_size=settings.kafka_message_bytes(),  # R6: the size every topic takes
    )  # fmt: skip
    await producer.start()
    try:
        topic = topic_name(settings, "hubspot.commands")
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return Sent(len(records), left_out)


async def _sealed(
    settings: Settings, commands: list[AnyCommand], subjects: Mapping[tuple[str, str], RecordSubject]
) -> tuple[list[tuple[bytes, bytes]], int]:
    """The commands as (key, value) records, sealed where their record's subject says (G1), and
    how many were left out (their subject redacted). Plain when sealing is off, and for a record
    no sealed input wrote (as the worker writes it)."""
    encoded = [(command_key(c).encode(), encode_command(c), c) for c in commands]
    opener = opener_for(settings)
    if opener is None or not subjects:
        return [(key, value) for key, value, _ in encoded], 0
    secret = settings.privacy_key()
    out: list[tuple[bytes, bytes]] = []
    left_out = 0
    sealings: dict[RecordSubject, tuple[str, bytes] | None] = {}

    async def sealing_of(subject: RecordSubject) -> tuple[str, bytes] | None:
        """(ref, data key) to seal under; None: the subject was redacted."""
        if subject not in sealings:
            ref = subject.ref
            if ref is None:
                sealings[subject] = await opener.key_for(subject.shop, shop_key_id(secret, subject.shop))
            elif subject.redacted or ref in opener.ring.gone:
                sealings[subject] = None
            elif ref in opener.keys:
                sealings[subject] = (ref, opener.keys[ref])
            else:  # another deployment's key topic: its own key of the same subject
                sealings[subject] = await opener.key_for(subject.shop, kid_of(ref))
        return sealings[subject]

    try:
        await opener.ensure_refs({s.ref for s in subjects.values() if s.ref is not None})
        for key, value, command in encoded:
            subject = subjects.get((command.record.object_type, command.record.hubspot_value))
            if subject is None or not command_is_personal(value):
                out.append((key, value))
                continue
            sealing = await sealing_of(subject)
            if sealing is None:  # nothing of a redacted customer may be written again
                left_out += 1
                continue
            out.append((key, seal_command(value, sealing[0], sealing[1], os.urandom(NONCE_BYTES))))
    finally:
        await opener.stop()
    return out, left_out


async def read_account(client: HubSpotClient, wanted: Account) -> dict[tuple[str, str], dict[str, Any]]:
    """What the account holds for the object types we manage, by natural key (standard CRM reads)."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    names: dict[str, set[str]] = {}
    for (object_type, _), props in wanted.records.items():
        names.setdefault(object_type, set()).update(props)
    _, pipelines = await client.call("GET", paths.pipelines("deals"))
    stage_labels = {
        str(s["id"]): s["label"] for p in pipelines.get("results", []) for s in p.get("stages", [])
    }
    pipeline_labels = {str(p["id"]): p["label"] for p in pipelines.get("results", [])}
    for object_type, unique in UNIQUE_PROPERTY.items():
        properties = ",".join(sorted(names.get(object_type, set()) | {unique}))
        after: str | None = None
        while True:
            query = f"{paths.objects(object_type)}?limit=100&properties={properties}"
            _, body = await client.call("GET", query + (f"&after={after}" if after else ""))
            for result in body.get("results", []):
                props = dict(result.get("properties") or {})
                if object_type == "deals":
                    props["dealstage"] = stage_labels.get(str(props.get("dealstage")), props.get("dealstage"))
                    props["pipeline"] = pipeline_labels.get(str(props.get("pipeline")), props.get("pipeline"))
                if props.get(unique):
                    held[(object_type, str(props[unique]))] = props
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
    return held


def diff(wanted: Account, held: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Human-readable differences: what HubSpot should hold versus what it holds."""
    lines = []
    for key in sorted(set(wanted.records) | set(held)):
        want, have = wanted.records.get(key), held.get(key)
        if want is None:
            if key in wanted.archived:
                lines.append(f"- {key[0]} {key[1]}: should be archived")
            continue  # records made by others are not ours to judge
        if have is None:
            lines.append(f"+ {key[0]} {key[1]}: missing in HubSpot")
            continue
        for prop, value in sorted(want.items()):
            if prop in ("hs_product_id",):
                continue
            if (value or "") != (have.get(prop) or ""):
                lines.append(f"~ {key[0]} {key[1]} {prop}: should be {value!r}, is {have.get(prop)!r}")
    return lines
