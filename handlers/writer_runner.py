"""The plan runner: one round of commands applied to HubSpot, every command ending applied,
skipped, dead-lettered or held.

A round's commands are coalesced (``handlers.writer_plan``) and applied: archives, then upserts
by unique property (100 inputs per call), then association changes once both ends have HubSpot
ids. What HubSpot answers decides each input's fate (SPEC R5), read input by input
(``handlers.batch_answers``): only what HubSpot confirmed is counted; an input that failed on its
own with a transient error, or whose association end is missing, is *held* and retried in a later
round (the consume loop's commit waits for it); one HubSpot refused for good becomes a dead letter
with HubSpot's message and the command. When HubSpot cannot be used at all (down, timing out, 5xx,
the token refused, the daily limit) the round is undone as a whole: nothing of it is counted or
dead-lettered, held and waiting work is as before, and the caller reads the round again.

Everything outside is a port: HubSpot is the typed ``HubSpotApi`` (its transport paces and
retries), the ids are the ``IdMap``, the dead letters go to a ``DeadLetterPort``, and time is a
``Clock`` (``ManualClock`` in tests). Kafka's consumer, offsets and commits are the consume loop's
(``handlers.writer``), not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from handlers.account_setup import AccountSchema
from handlers.batch_answers import Verdict, anonymous, batch_errors, judge, matching
from handlers.hubspot_api import MAX_INPUTS, HubSpotApi, LinkInput, RecordInput
from handlers.hubspot_client import HubSpotError
from handlers.id_map import IdMap
from handlers.writer_letters import DeadLetter, DeadLetterPort, command_letter
from handlers.writer_linger import Linger
from handlers.writer_plan import LinkPlan, Position, RecordPlan, SubscriptionPlan, coalesce
from handlers.writer_sealed import shredded
from handlers.writer_subscriptions import SubscriptionWriter
from handlers.writer_time import Backoff, Clock
from schemas.commands import (
    DEFAULT_ASSOCIATION,
    AnyCommand,
    Archive,
    Associate,
    Dissociate,
    PropertyValue,
    RecordRef,
    Upsert,
)
from schemas.sealing import NONCE_BYTES
from streams.rules.keys import SHOP_PROPERTY, shop_prefix_of

log = logging.getLogger(__name__)
RETRY_WAITING_EVERY_S = 2.0
"""How soon a link whose end HubSpot could not say anything about (a transient error) is tried again."""
READ_ENDS_AFTER_S = 5.0
"""How long a link whose end the id map does not know waits before the writer asks HubSpot for it.
The end is almost always a record on its way (its command on another partition, a round later),
and the link is made the round the id map learns its id, without a call; asking HubSpot is for an
end written some other way. A link asks once at this age and once more at the end of its wait,
then is dead-lettered: no polling."""
DELIVERY_TIMEOUT_S = 30.0
"""How long a round waits for Kafka to acknowledge its dead letters and id-map records (an
idempotent producer retries a batch without end while a partition has no leader); then the round
is undone like one HubSpot could not take, and read again."""

Source = tuple[AnyCommand, Position]


def fresh_nonce() -> bytes:
    """A random AES-GCM nonce (``schemas.sealing.NONCE_BYTES``), one per seal."""
    return os.urandom(NONCE_BYTES)


@dataclass
class WriterStats:
    """Counters for operators and tests: what HubSpot confirmed, what was dead-lettered, what waits.

    Counters grow only when a round completes, so a round undone by an outage and read again is
    counted once; ``waiting_links`` and ``held_records`` are gauges."""

    windows: int = 0
    commands: int = 0
    upserted: int = 0
    archived: int = 0
    linked: int = 0
    unlinked: int = 0
    dead_lettered: int = 0
    skipped_deleted: int = 0
    skipped_redacted: int = 0  # G1: commands not sent, their key shredded (``handlers.writer_sealed``)
    retried_inputs: int = 0
    failed_rounds: int = 0
    daily_pauses: int = 0
    subscribed: int = 0  # X4: subscription status changes HubSpot took
    unsubscribed: int = 0
    kept_unsubscribed: int = 0  # X4: not resubscribed, as HubSpot holds the address unsubscribed
    waiting_links: int = 0
    held_records: int = 0

    def add(self, other: WriterStats) -> None:
        for f in fields(self):
            if f.name not in ("waiting_links", "held_records"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class KafkaDeliveryError(Exception):
    """Kafka did not acknowledge a dead letter or an id-map record of the round: the round is
    undone and retried like a round HubSpot could not take (nothing is committed past it)."""


@dataclass
class _Waiting:
    """An association not made yet: an end is not in HubSpot yet (its command may be on another
    partition, not read yet; dead-lettered after the link wait), or HubSpot failed it on its own
    with a transient error (retried with backoff, never dead-lettered)."""

    link: LinkPlan
    since: float
    next_try: float = 0.0
    attempts: int = 0
    last_error: dict[str, Any] | None = None
    reads: int = 0  # the look-ups of its missing ends in HubSpot done so far (FIRST_READ, FINAL_READ)
    proven: float | None = None
    """When the runner first saw the worker settled past ``since`` (``PlanRunner.upstream``): the
    end's upsert, if it is coming, was on the commands topic from then on."""


@dataclass
class _Held:
    """A record HubSpot failed on its own with a transient error, retried with backoff. Its
    later commands join it (coalesced in log order), so a retry never overwrites newer values;
    ``moot`` are association commands an archive made moot, done when the record is.
    ``waits_for``: keys whose HubSpot ids it needs (a line item's product); it is tried again the
    round the id map learns one of them, whatever its backoff says."""

    key: str
    sources: list[Source]
    moot: list[Source]
    next_try: float
    attempts: int
    waits_for: tuple[str, ...] = ()
    carried: bool = False  # not failed: carried to fill a later call (``handlers.writer_linger``)
    since: float = 0.0  # a line item waiting for its product: when it was first seen waiting
    proven: float | None = None  # ... and when the worker was first seen settled past that


@dataclass
class _Round:
    """What a round will have done once it completes: counters and dead letters wait for that,
    so an undone round leaves no trace but what HubSpot itself confirmed (the id map)."""

    stats: WriterStats = field(default_factory=WriterStats)
    letters: list[DeadLetter] = field(default_factory=list)
    repaired: bool = False  # the account set-up ran again in this round (at most once a round)


@dataclass
class PlanRunner:
    """Applies rounds of commands to HubSpot through ``api``; what it learns of HubSpot ids goes
    to ``ids``, what HubSpot refuses for good to ``letters`` (sent when the round completes).
    ``clock`` spaces the retries of held records and waiting links and times the link wait."""

    api: HubSpotApi
    ids: IdMap
    schema: AccountSchema
    letters: DeadLetterPort
    link_wait_s: float = 120.0
    letter_limit_bytes: int = 1_000_000
    clock: Clock = field(default_factory=Clock)
    stats: WriterStats = field(default_factory=WriterStats)
    waiting: list[_Waiting] = field(default_factory=list)
    held: list[_Held] = field(default_factory=list)
    retry_backoff: Backoff = field(default_factory=Backoff)
    linger: Linger = field(default_factory=lambda: Linger(linger_s=0.0))
    repair: Callable[[dict[str, Any]], Awaitable[AccountSchema | None]] | None = None
    """The set-up drift hook (``handlers.setup_once.SetupOnce.repair``): given HubSpot's refusal of
    a batch, it sets the account up again and returns the new schema when the refusal was the
    account drifting from its set-up (a property or stage deleted in HubSpot), else None."""
    keys: Mapping[str, bytes] | None = None
    """G1, with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on: the key ring's keys (``Opener.keys``, caught
    up by the consume loop before each round). The dead letters of commands read sealed are sealed
    with them, and a held command whose key is gone is dropped unsent. None: sealing is off."""
    nonces: Callable[[], bytes] = field(default_factory=lambda: fresh_nonce)
    """Fresh nonces for sealing dead letters (a test may pass its own)."""
    upstream: Callable[[], float] | None = None
    """The time (on ``clock``'s monotonic scale) before which the stream worker has handled every
    record of its topics (``handlers.writer_upstream.WorkerProgress.settled_at``). With it, a
    link's wait for a missing end counts from when the worker had handled everything that existed
    when the link was first seen, not from then: under a worker backlog the end's upsert may not
    be derived yet. At most ``LINK_WAIT_CAP`` link waits in all. None: the wall-clock wait alone."""
    _repairs: int = 0  # account set-ups run again by the drift hook, in this runner's life
    _repairing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _round: _Round = field(default_factory=_Round)
    _attempts: dict[str, int] = field(default_factory=dict)
    _read_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    _product_waits: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    """Line items waiting for their products, this round: key -> (first seen, proven)."""
    _subscriptions: SubscriptionWriter | None = None

    # ---- one round ----

    async def apply(
        self,
        items: list[Source],
        raw_letters: list[DeadLetter] | None = None,
        redacted: list[Position] | None = None,
    ) -> None:
        """Apply one round: everything ends applied, skipped, dead-lettered or held.

        ``redacted``: the round's commands whose key is gone (G1, ``handlers.writer_sealed``),
        not sent, counted as ``skipped_redacted`` when the round completes.

        If HubSpot cannot be used (``HubSpotUnavailableError``, ``DailyLimitError``) the round is
        undone: held and waiting work is as it was, nothing is counted or dead-lettered, and the
        caller reads the round's commands again later.
        """
        saved = (list(self.waiting), list(self.held))
        self._round = _Round()
        try:
            for letter in raw_letters or []:  # records of the topic that are not commands
                self._round.letters.append(letter)
                self._round.stats.dead_lettered += 1
            self._round.stats.skipped_redacted += len(redacted or [])
            self._drop_redacted()
            await self._apply(items)
            done, self._round = self._round, _Round()
            await self._deliver(done.letters)
        except BaseException:
            self.waiting, self.held = saved
            self._round = _Round()
            self.ids.abandon()
            raise
        self.stats.add(done.stats)
        self.stats.waiting_links = len(self.waiting)
        self.stats.held_records = len(self.held)

    def _drop_redacted(self) -> None:
        """G1: drop the commands of held records and waiting links that were read sealed under a
        key that is gone now (their customer was redacted while they waited): never sent, each
        counted as ``skipped_redacted``. Command by command, not the record whole: a held record
        coalesces every later command of its key, which another subject may have decided (one
        contact fed by two shops, X3), and those still go (found in review: the record went
        whole). A record left with none of its own commands goes, its moot ones with it (they
        are done when the record is); a link left with no command goes."""
        if self.keys is None:
            return
        keys, counts = self.keys, self._round.stats

        def live(sources: list[Source]) -> list[Source]:
            kept = [s for s in sources if not shredded([s], keys)]
            counts.skipped_redacted += len(sources) - len(kept)
            return kept

        held = []
        for h in self.held:
            own, moot = live(h.sources), live(h.moot)
            if own:
                h.sources, h.moot = own, moot
                held.append(h)
        waiting = []
        for w in self.waiting:
            kept = live(w.link.sources)
            if kept:
                w.link.sources = kept
                waiting.append(w)
        self.held, self.waiting = held, waiting

    async def _deliver(self, letters: list[DeadLetter]) -> None:
        """Send the round's dead letters and wait until Kafka acknowledged them and every id-map
        change of the round; raise ``KafkaDeliveryError`` if any was not (the round is undone)."""
        failures = await self.letters.deliver(letters, DELIVERY_TIMEOUT_S)
        id_failures = await self.ids.settle(DELIVERY_TIMEOUT_S)
        if failures or id_failures:
            kinds = sorted({type(f).__name__ for f in failures + id_failures})
            raise KafkaDeliveryError(
                f"Kafka did not acknowledge {len(failures)} of {len(letters)} dead letters and "
                f"{len(id_failures)} id-map records ({', '.join(kinds)})"
            )

    async def _apply(self, items: list[Source]) -> None:
        counts = self._round.stats
        counts.windows += 1
        counts.commands += len(items)
        now = self.clock.monotonic()
        keys = {command.record.key for command, _ in items}
        due, self.held = _split(self.held, lambda h: self._due(h, now, keys))
        self._attempts = {h.key: h.attempts for h in due}
        self._product_waits = {h.key: (h.since, h.proven) for h in due if h.waits_for}
        self._read_errors = {}
        plan = coalesce([s for h in due for s in h.sources] + items)
        for h in due:
            if h.key in plan.records:
                plan.records[h.key].sources.extend(h.moot)
        gone = await self._archive(plan.archives())
        await self._upsert(plan.upserts())
        if gone:  # a link waiting for a record that is now archived will never be made: done
            self.waiting = [
                w for w in self.waiting if not {w.link.command.record.key, w.link.command.to.key} & gone
            ]
        now = self.clock.monotonic()
        due_links, self.waiting = _split(self.waiting, lambda w: w.next_try <= now)
        links = [w.link for w in due_links] + list(plan.links.values())
        await self._link(links, {id(w.link): w for w in due_links})
        if plan.subscriptions:  # X4, opt-in: after the contacts' upserts, like the links
            await self._subscribe(list(plan.subscriptions.values()))

    def _due(self, held: _Held, now: float, keys: set[str]) -> bool:
        """Whether a held record is tried this round: its backoff is over, a newer command of it
        came, or an id it waits for is known now."""
        if held.carried or held.next_try <= now or held.key in keys:
            return True
        return any(self.ids.get(key) is not None for key in held.waits_for)

    def held_positions(self) -> list[Position]:
        """Positions whose commands are not done yet (their partitions' commits wait for them)."""
        waiting = [pos for w in self.waiting for _, pos in w.link.sources]
        return waiting + [pos for h in self.held for _, pos in h.sources + h.moot]

    def drop_all(self) -> None:
        """Forget what is held and waiting (a rebalance: it is read again from the commit)."""
        self.waiting, self.held = [], []
        self.linger.forget()
        self.stats.waiting_links = self.stats.held_records = 0

    def pending(self) -> bool:
        return bool(self.waiting or self.held)

    def held_count(self) -> int:
        return sum(len(w.link.sources) for w in self.waiting) + sum(
            len(h.sources) + len(h.moot) for h in self.held
        )

    def _hold(self, record: RecordPlan, waits_for: tuple[str, ...] = (), *, carried: bool = False) -> None:
        """Retry this record in a later round (HubSpot failed it on its own, transiently, or it
        waits for the ids of ``waits_for``); or, ``carried``, write it next round with more of its
        kind (not a failure: no attempt is counted)."""
        attempts = self._attempts.get(record.ref.key, 0) + (0 if carried else 1)
        own = [
            s
            for s in record.sources
            if isinstance(s[0], Upsert | Archive) and s[0].record.key == record.ref.key
        ]
        moot = [s for s in record.sources if s not in own]
        if carried:
            self.held.append(_Held(record.ref.key, own, moot, 0.0, attempts, carried=True))
            return
        now = self.clock.monotonic()
        next_try = now + self.retry_backoff.delay(attempts)
        since, proven = self._product_waits.get(record.ref.key, (0.0, None)) if waits_for else (0.0, None)
        if proven is not None and self.upstream is not None:  # due the moment it may go
            next_try = max(now, min(next_try, proven + self.link_wait_s + 0.001))
        self.held.append(
            _Held(record.ref.key, own, moot, next_try, attempts, waits_for, since=since, proven=proven)
        )
        self._round.stats.retried_inputs += 1

    async def _drift_repaired(self, refusal: dict[str, Any], sent_at_repair: int) -> bool:
        """Whether HubSpot refused a batch because the account drifted from its set-up and the
        set-up has run again since the batch was sent (``sent_at_repair``: ``_repairs`` then): the
        caller sends the batch again, and nothing is dead-lettered for it. Calls run side by side,
        so the first refusal of a round runs the set-up (once a round) and the others wait for it;
        a refusal of a batch sent after that repair is not drift the set-up can repair."""
        if self.repair is None:
            return False
        async with self._repairing:
            if self._repairs > sent_at_repair:
                return True
            if self._round.repaired:
                return False
            schema = await self.repair(refusal)
            if schema is None:
                return False
            self._round.repaired = True
            self._repairs += 1
            self.schema = schema
            return True

    def _linger_by_type(self, operation: str, records: list[RecordPlan]) -> list[RecordPlan]:
        """The records to write this round; under load a type's part-filled last call is carried
        to the next round (``handlers.writer_linger``)."""
        by_type: dict[str, list[RecordPlan]] = defaultdict(list)
        for record in records:
            by_type[record.ref.object_type].append(record)
        now = self.clock.monotonic()
        send: list[RecordPlan] = []
        for object_type, group in by_type.items():
            now_part, carry = self.linger.split((operation, object_type), group, _record_key, now)
            send += now_part
            for record in carry:
                self._hold(record, carried=True)
        return send

    # ---- archives ----

    async def _archive(self, records: list[RecordPlan]) -> set[str]:
        """Archive; return the keys HubSpot no longer holds (archived now, or already gone)."""
        gone: set[str] = set()
        records = self._linger_by_type("archive", records)
        if not records:
            return gone
        resolved, unsure = await self._resolve([r.ref for r in records])
        by_type: dict[str, list[tuple[RecordPlan, str]]] = defaultdict(list)
        for record in records:
            hubspot_id = resolved.get(record.ref.key)
            if hubspot_id is not None:
                by_type[record.ref.object_type].append((record, hubspot_id))
            elif record.ref.key in unsure:
                self._hold(record)  # HubSpot could not say whether it exists: ask again later
            elif record.ref.key in self._read_errors:  # HubSpot refused the lookup: not "gone"
                answer = self._read_errors[record.ref.key]
                status = answer.get("status")
                self._dead_letter(
                    record.sources, "HubSpot refused to look up the record to archive", answer,
                    status if isinstance(status, int) else None,
                )  # fmt: skip
            else:
                gone.add(record.ref.key)  # never written, or already gone: archiving it is done
        chunks = [(t, chunk) for t, entries in by_type.items() for chunk in _chunks(entries)]
        for archived in await _together(self._archive_chunk(t, chunk) for t, chunk in chunks):
            gone |= archived
        return gone

    async def _archive_chunk(self, object_type: str, chunk: list[tuple[RecordPlan, str]]) -> set[str]:
        try:
            status, body = await self.api.archive(object_type, [hubspot_id for _, hubspot_id in chunk])
        except HubSpotError as exc:
            if len(chunk) > 1:  # find the bad input(s): the good ones still go through
                half = len(chunk) // 2
                return await self._archive_chunk(object_type, chunk[:half]) | await self._archive_chunk(
                    object_type, chunk[half:]
                )
            self._dead_letter(chunk[0][0].sources, "HubSpot rejected the archive", exc.body, exc.status)
            return set()
        if status >= 400 and len(chunk) > 1:
            half = len(chunk) // 2
            return await self._archive_chunk(object_type, chunk[:half]) | await self._archive_chunk(
                object_type, chunk[half:]
            )
        errors = batch_errors(status, body)
        gone: set[str] = set()
        unknown: list[tuple[RecordPlan, str]] = []
        for record, hubspot_id in chunk:
            named = matching(errors, ids=[hubspot_id])
            if status < 400 and not named and not anonymous(errors):
                await self.ids.forget(record.ref.key)
                self._round.stats.archived += 1
                gone.add(record.ref.key)
                continue
            verdict, error = judge(named, errors, single=len(chunk) == 1)
            if verdict is Verdict.MISSING:  # deleted in HubSpot meanwhile: the archive is done
                await self.ids.gone(record.ref.key)
                self._round.stats.skipped_deleted += 1
                gone.add(record.ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    record.sources, "HubSpot rejected the archive", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and len(chunk) > 1:
                unknown.append((record, hubspot_id))
            else:
                self._hold(record)
        for entry in unknown:  # one at a time, HubSpot's answer can only be about that input
            gone |= await self._archive_chunk(object_type, [entry])
        return gone

    # ---- upserts ----

    async def _upsert(self, records: list[RecordPlan]) -> None:
        groups: dict[tuple[str, str, bool], list[RecordPlan]] = defaultdict(list)
        for record in records:
            groups[(record.ref.object_type, record.ref.id_property, record.create_if_missing)].append(record)

        async def write(key: tuple[str, str, bool], group: list[RecordPlan]) -> None:
            object_type, id_property, create = key
            if object_type == "line_items":
                # HubSpot is asked for a product the id map does not know only on a line item's last
                # try: until then it is on its way, and the line item is tried the round it lands.
                last = [r for r in group if self._product_final(r)]
                found, unsure = await self._resolve_products(last)
                later = [r for r in group if self._product_later(r, found, unsure)]
                for record in later:  # its product's id is unknown for now: not without it
                    self._hold(record, tuple(self._product_keys(record)))
                group = [r for r in group if r not in later]
            now = self.clock.monotonic()
            group, carry = self.linger.split(("upsert", *key), group, _record_key, now)
            for record in carry:
                self._hold(record, carried=True)
            await _together(self._upsert_chunk(object_type, id_property, create, c) for c in _chunks(group))

        async def products_then_line_items() -> None:
            # A line item points at its product's id: products first, then line items.
            await _together(write(k, g) for k, g in groups.items() if k[0] == "products")
            await _together(write(k, g) for k, g in groups.items() if k[0] == "line_items")

        others = [write(k, g) for k, g in groups.items() if k[0] not in ("products", "line_items")]
        await _together([products_then_line_items(), *others])

    async def _upsert_chunk(
        self, object_type: str, id_property: str, create: bool, chunk: list[RecordPlan]
    ) -> None:
        inputs = [RecordInput(r.ref.hubspot_value, id_property, self._properties(r)) for r in chunk]

        async def again(part: list[RecordPlan]) -> None:
            await self._upsert_chunk(object_type, id_property, create, part)

        sent_at_repair = self._repairs
        try:
            status, body = await self.api.upsert(object_type, inputs, create=create)
        except HubSpotError as exc:
            if await self._drift_repaired(exc.body, sent_at_repair):
                await again(chunk)
                return
            if len(chunk) == 1:
                self._dead_letter(chunk[0].sources, "HubSpot rejected the record", exc.body, exc.status)
                return
            await self._halves(chunk, again)  # find the bad input(s): the good ones still go through
            return
        if status >= 400 and len(chunk) > 1:  # a 404 or 409 for the whole call: narrow it down
            await self._halves(chunk, again)
            return

        def norm(value: str) -> str:
            return _norm(id_property, value)

        found: dict[str, str] = {}
        for result in body.get("results") or []:
            if not isinstance(result, dict):
                continue
            value = (result.get("properties") or {}).get(id_property)
            if value is not None and result.get("id") is not None:
                found[norm(str(value))] = str(result["id"])
        errors = batch_errors(status, body, norm)
        single = len(chunk) == 1
        unknown: list[RecordPlan] = []
        for record in chunk:
            value = norm(record.ref.hubspot_value)  # a contact's email, under a pseudonym key too (G1)
            hubspot_id = found.get(value)
            if hubspot_id is not None:
                await self.ids.put(record.ref.key, hubspot_id)
                self._round.stats.upserted += 1
                continue
            verdict, error = judge(matching(errors, ids=[value]), errors, single=single)
            if not errors and status < 400:
                # HubSpot says it did the batch, yet does not return this record.
                if create:
                    self._dead_letter(record.sources, "HubSpot did not apply the record", body, status)
                else:
                    self._round.stats.skipped_deleted += 1
                    await self.ids.gone(record.ref.key)
            elif verdict is Verdict.MISSING and not create:
                # An update-only write whose record is gone: HubSpot deleted it (C4). Not an error.
                self._round.stats.skipped_deleted += 1
                await self.ids.gone(record.ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    record.sources, "HubSpot rejected the record", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and not single:
                unknown.append(record)
            else:
                self._hold(record)
        for record in unknown:  # one at a time, HubSpot's answer can only be about that input
            await again([record])

    def _properties(self, record: RecordPlan) -> dict[str, str]:
        props: dict[str, PropertyValue] = dict(record.upsert or {})
        if record.ref.object_type == "deals":
            if "pipeline" in props:
                props["pipeline"] = self.schema.pipeline_id
            stage = props.get("dealstage")
            if stage is not None:
                props["dealstage"] = self.schema.stage_ids.get(stage, stage)
        if record.ref.object_type == "orders":  # X1: the order pipeline and stage, by label
            if "hs_pipeline" in props:
                props["hs_pipeline"] = self.schema.order_pipeline_id
            stage = props.get("hs_pipeline_stage")
            if stage is not None:
                props["hs_pipeline_stage"] = self.schema.order_stage_ids.get(stage, stage)
        if record.ref.object_type == "line_items":
            product = self._product_id_for(props, record.ref.id_value)
            if product is not None:
                props["hs_product_id"] = product
        return {k: "" if v is None else v for k, v in props.items()}

    def _association_type(self, command: Associate | Dissociate) -> int:
        """The command's association type id; ``DEFAULT_ASSOCIATION`` (orders and carts, X1) is the
        pair's unlabelled HubSpot type, as the set-up read it from the labels endpoint."""
        if command.association_type_id != DEFAULT_ASSOCIATION:
            return command.association_type_id
        found = self.schema.association_type(command.record.object_type, command.to.object_type)
        return found if found is not None else command.association_type_id

    def _product_keys(self, record: RecordPlan) -> list[str]:
        return self._product_keys_of(record.upsert or {}, record.ref.id_value)

    def _product_keys_of(self, props: dict[str, PropertyValue], own_key: str) -> list[str]:
        """The id-map keys of a line item's variant and product, in its shop (X3: a non-primary
        shop's line item's key and its products' keys carry that shop's prefix)."""
        prefix = shop_prefix_of(props.get(SHOP_PROPERTY), own_key)
        keys = []
        if props.get("shopify_variant_id"):
            keys.append(f"products:shopify_product_key:{prefix}variant:{props['shopify_variant_id']}")
        if props.get("shopify_product_id"):
            keys.append(f"products:shopify_product_key:{prefix}product:{props['shopify_product_id']}")
        return keys

    def _product_id_for(self, props: dict[str, PropertyValue], own_key: str) -> str | None:
        """P2/P5: a line item points at its variant's product, else its product's."""
        for key in self._product_keys_of(props, own_key):
            found = self.ids.get(key)
            if found is not None:
                return found
        return None

    def _product_later(self, record: RecordPlan, found: dict[str, str], unsure: set[str]) -> bool:
        """Whether to write this line item in a later round: its product's id is unknown now.

        Either HubSpot could not say (a transient error), or the product is not in HubSpot yet:
        the products agent and the journeys agent run side by side, so a line item's command can
        reach the writer before its product's, and a line item written without ``hs_product_id``
        is never pointed at its product afterwards. The second case waits a bounded time, then
        writes it without one (a product that never comes, not synced or deleted, must not hold
        its partition back): until its last try (:meth:`_product_final`)."""
        keys = self._product_keys(record)
        if not keys or any(k in found or self.ids.get(k) is not None for k in keys):
            return False
        if set(keys) & unsure:
            return True
        return not self._product_final(record)

    def _product_final(self, record: RecordPlan) -> bool:
        """Whether this round is a product-waiting line item's last try: HubSpot is asked for its
        product, and one it does not find is not waited for any more. With the worker's progress
        (``upstream``) a product is waited for as a link's end is: until a link wait after the
        worker settled past the line item's first sighting, at most ``LINK_WAIT_CAP`` link waits
        (a wall-clock wait alone wrote line items without their products while the worker's
        products stage was behind its journeys: found in review, as the links' loss was found in
        an import). Without it (a replay's writer), ``PRODUCT_WAIT_TRIES`` rounds, about half a
        minute. Monotone in time: asked twice in a round, it answers alike."""
        now = self.clock.monotonic()
        since, proven = self._product_waits.get(record.ref.key, (now, None))
        if proven is None and self.upstream is not None and self.upstream() >= since:
            proven = now
        self._product_waits[record.ref.key] = (since, proven)  # kept on the record it holds
        if self.upstream is None:
            return self._attempts.get(record.ref.key, 0) >= PRODUCT_WAIT_TRIES
        return self._not_coming(proven, since, now)

    async def _resolve_products(self, group: list[RecordPlan]) -> tuple[dict[str, str], set[str]]:
        """Look up the products the line items point at; return the ids found and the keys HubSpot
        could not say anything about this time."""
        refs = []
        for record in group:
            for key in self._product_keys(record):
                if self.ids.get(key) is None:
                    _, _, value = key.partition(":shopify_product_key:")
                    refs.append(
                        RecordRef(object_type="products", id_property="shopify_product_key", id_value=value)
                    )
        if not refs:
            return {}, set()
        return await self._resolve(refs)

    # ---- associations ----

    async def _link(self, links: list[LinkPlan], before: dict[int, _Waiting]) -> None:
        if not links:
            return
        now = self.clock.monotonic()
        coming = {h.key for h in self.held}  # ends this writer holds for a retry: known to be on their way
        reads = {id(link): self._reads_due(link, before.get(id(link)), now, coming) for link in links}
        asked = [ref for link in links if reads[id(link)] for ref in (link.command.record, link.command.to)]
        resolved, unsure = await self._resolve(asked)  # the id map's ids, and what HubSpot was asked
        ready: dict[tuple[str, str, str], list[tuple[LinkPlan, str, str]]] = defaultdict(list)
        for link in links:
            c = link.command
            from_id = resolved.get(c.record.key) or self.ids.get(c.record.key)
            to_id = resolved.get(c.to.key) or self.ids.get(c.to.key)
            if from_id is None or to_id is None:
                prior = before.get(id(link))
                since = prior.since if prior else now
                read = reads[id(link)]
                ends = {c.record.key, c.to.key} - set(resolved)
                proven = self._proven(prior, since, now)  # once a round: the worker's progress moves
                if read and ends <= unsure:  # HubSpot could not say: ask again, without using up the wait
                    self._wait(link, prior, now, RETRY_WAITING_EVERY_S, reads=read - 1)
                elif (
                    now - since > self.link_wait_s
                    and max(read, prior.reads if prior else 0) >= FINAL_READ  # in this round or before
                    and not (ends & coming)  # an end this writer holds for a retry is on its way
                    and self._not_coming(proven, since, now)
                ):
                    end = c.record if from_id is None else c.to
                    missing = end.key
                    answer = (prior.last_error if prior else None) or self._read_errors.get(missing) or {}
                    reason = (
                        f"association end {missing} was never upserted (a contact named by its "
                        "pseudonym alone is known only from its own upsert)"
                        if end.by_pseudonym_only
                        else f"association end {missing} does not exist in HubSpot"
                    )
                    self._dead_letter(
                        link.sources, reason, answer,
                        answer.get("status") if isinstance(answer.get("status"), int) else None,
                    )  # fmt: skip
                else:  # made the round the id map learns both ends: looked at every round, no call
                    self._wait(
                        link,
                        prior,
                        now,
                        0,
                        since=since,
                        reads=read or None,
                        proven=proven,
                    )
                continue
            op = "create" if isinstance(c, Associate) else "archive"
            ready[(c.record.object_type, c.to.object_type, op)].append((link, from_id, to_id))
        chunks = []
        for key, entries in ready.items():
            send, carry = self.linger.split(("link", *key), entries, _link_key, now)
            for link, _, _ in carry:  # both ends known: made next round, with more of its kind
                self._wait(link, before.get(id(link)), now, 0)
            chunks += [(key, chunk) for chunk in _chunks(send)]
        await _together(self._link_chunk(f, t, op, chunk, before) for (f, t, op), chunk in chunks)

    def _proven(self, prior: _Waiting | None, since: float, now: float) -> float | None:
        """When the worker was first seen settled past the link's first sighting (None: not yet)."""
        if prior is not None and prior.proven is not None:
            return prior.proven
        if self.upstream is not None and self.upstream() >= since:
            return now
        return None

    def _not_coming(self, proven: float | None, since: float, now: float) -> bool:
        """Whether a link's missing end can no longer be on its way: without ``upstream``, the link
        wait is over (the caller checks); with it, the link wait is over since the worker settled
        past the link's first sighting too (``proven``: when that was first seen, ``_proven``), or
        the link has waited ``LINK_WAIT_CAP`` link waits."""
        if self.upstream is None or now - since > LINK_WAIT_CAP * self.link_wait_s:
            return True
        return proven is not None and now - proven > self.link_wait_s

    def _reads_due(self, link: LinkPlan, prior: _Waiting | None, now: float, coming: set[str]) -> int:
        """Which look-up of a link's missing ends in HubSpot this round is (``FIRST_READ`` after
        ``READ_ENDS_AFTER_S``, ``FINAL_READ`` once the link wait is over), or 0: none, the id map
        is asked, not HubSpot. A new link is never read: its ends were written this round or are on
        their way. Nor is one whose missing end this writer holds for a retry (``coming``): that end
        is known to be on its way, so the link waits for it whatever the link wait says, and is
        dead-lettered only if the end itself is."""
        c = link.command
        missing = {k for k in (c.record.key, c.to.key) if self.ids.get(k) is None}
        if prior is None or not missing or missing & coming:
            return 0
        age = now - prior.since
        if age > self.link_wait_s and prior.reads < FINAL_READ:
            return FINAL_READ
        if age >= READ_ENDS_AFTER_S and prior.reads < FIRST_READ:
            return FIRST_READ
        return 0

    def _wait(
        self,
        link: LinkPlan,
        prior: _Waiting | None,
        now: float,
        delay: float,
        *,
        since: float | None = None,
        error: dict[str, Any] | None = None,
        transient: bool = False,
        reads: int | None = None,
        proven: float | None = None,
    ) -> None:
        """Keep the link for a later round; ``reads`` is the look-up of its ends done (default:
        as before)."""
        attempts = (prior.attempts if prior else 0) + (1 if transient else 0)
        if transient:
            delay = self.retry_backoff.delay(attempts)
            self._round.stats.retried_inputs += 1
        self.waiting.append(
            _Waiting(
                link,
                since if since is not None else (prior.since if prior else now),
                now + delay,
                attempts,
                error or (prior.last_error if prior else None),
                reads if reads is not None else (prior.reads if prior else 0),
                proven if proven is not None else (prior.proven if prior else None),
            )
        )

    async def _link_chunk(
        self,
        from_type: str,
        to_type: str,
        op: str,
        chunk: list[tuple[LinkPlan, str, str]],
        before: dict[int, _Waiting],
    ) -> None:
        inputs = [LinkInput(f, t, self._association_type(link.command)) for link, f, t in chunk]
        call = self.api.link if op == "create" else self.api.unlink

        async def again(part: list[tuple[LinkPlan, str, str]]) -> None:
            await self._link_chunk(from_type, to_type, op, part, before)

        try:
            status, body = await call(from_type, to_type, inputs)
        except HubSpotError as exc:
            if len(chunk) > 1:
                await self._halves(chunk, again)
                return
            self._dead_letter(chunk[0][0].sources, "HubSpot rejected the association", exc.body, exc.status)
            return
        if status >= 400 and len(chunk) > 1:
            await self._halves(chunk, again)
            return
        errors = batch_errors(status, body)
        made = _made_pairs(body) if op == "create" else set()
        single = len(chunk) == 1
        now = self.clock.monotonic()
        unknown: list[tuple[LinkPlan, str, str]] = []
        for link, f, t in chunk:
            named = matching(errors, from_id=f, to_id=t)
            if op == "create":
                confirmed = (f, t) in made or (status in (200, 201) and not errors)
            else:
                confirmed = status < 400 and not named and not anonymous(errors)
            if confirmed:
                if op == "create":
                    self._round.stats.linked += 1
                else:
                    self._round.stats.unlinked += 1
                continue
            if status < 400 and not named and not anonymous(errors):
                # Neither listed as made nor named by an error: HubSpot did not say. Ask again.
                if single:
                    self._wait(link, before.get(id(link)), now, 0, transient=True)
                else:
                    unknown.append((link, f, t))
                continue
            verdict, error = judge(named, errors, single=single)
            prior = before.get(id(link))
            if verdict is Verdict.MISSING and error is not None:
                # An id we hold may be stale (the record was deleted in HubSpot): look it up again;
                # the end may also still be on its way. Waits, then dead-letters with this answer.
                c = link.command
                names_from = f in error.from_ids or f in error.any_ids or not error.names_inputs
                names_to = t in error.to_ids or t in error.any_ids or not error.names_inputs
                if names_from:
                    await self.ids.gone(c.record.key)
                if names_to:
                    await self.ids.gone(c.to.key)
                self._wait(link, prior, now, RETRY_WAITING_EVERY_S, error=error.letter_body(status))
            elif verdict is Verdict.REJECTED and error is not None:
                self._dead_letter(
                    link.sources, "HubSpot rejected the association", error.letter_body(status), status
                )
            elif verdict is Verdict.UNKNOWN and not single:
                unknown.append((link, f, t))
            else:
                body_of = error.letter_body(status) if error is not None else None
                self._wait(link, prior, now, 0, error=body_of, transient=True)
        for entry in unknown:  # one at a time, HubSpot's answer can only be about that input
            await again([entry])

    # ---- ids ----

    async def _resolve(self, refs: list[RecordRef]) -> tuple[dict[str, str], set[str]]:
        """HubSpot ids of ``refs``: from the id map, else read by unique property (and remembered).

        Also returns the keys HubSpot could not answer for this time (a transient error for that
        input): unknown, not absent. A key whose read HubSpot refused for good (the whole call,
        narrowed down by halving, or that input in a 207) is neither: its answer is kept in
        ``_read_errors`` for the dead letter. Only a key in none of the three is not in HubSpot."""
        out: dict[str, str] = {}
        unsure: set[str] = set()
        missing: dict[tuple[str, str], list[RecordRef]] = defaultdict(list)
        for ref in refs:
            known = self.ids.get(ref.key)
            if known is not None:
                out[ref.key] = known
            elif ref.key not in out and not ref.by_pseudonym_only:  # the id map's alone (G1)
                missing[(ref.object_type, ref.id_property)].append(ref)
        reads = [
            (object_type, id_property, chunk)
            for (object_type, id_property), group in missing.items()
            for chunk in _chunks(list({r.key: r for r in group}.values()))
        ]
        for found, not_sure in await _together(self._read(t, p, chunk) for t, p, chunk in reads):
            out.update(found)
            unsure |= not_sure
        return out, unsure

    async def _read(
        self, object_type: str, id_property: str, chunk: list[RecordRef]
    ) -> tuple[dict[str, str], set[str]]:
        def norm(value: str) -> str:
            return _norm(id_property, value)

        sent_at_repair = self._repairs
        try:
            status, answer = await self.api.read(object_type, id_property, [r.hubspot_value for r in chunk])
        except HubSpotError as exc:
            if await self._drift_repaired(exc.body, sent_at_repair):
                return await self._read(object_type, id_property, chunk)
            if len(chunk) > 1:  # find the input(s) HubSpot refuses: the others are still looked up
                half = len(chunk) // 2
                found_a, unsure_a = await self._read(object_type, id_property, chunk[:half])
                found_b, unsure_b = await self._read(object_type, id_property, chunk[half:])
                return {**found_a, **found_b}, unsure_a | unsure_b
            self._read_errors[chunk[0].key] = {**exc.body, "status": exc.status}
            return {}, set()
        by_value: dict[str, str] = {}
        for r in answer.get("results") or []:
            if isinstance(r, dict) and r.get("id") is not None:
                by_value[norm(str((r.get("properties") or {}).get(id_property, "")))] = str(r["id"])
        errors = batch_errors(status, answer, norm) if status != 404 else []
        found: dict[str, str] = {}
        unsure: set[str] = set()
        for ref in chunk:
            value = norm(ref.hubspot_value)
            hubspot_id = by_value.get(value)
            if hubspot_id is not None:
                found[ref.key] = hubspot_id
                await self.ids.put(ref.key, hubspot_id)
                continue
            named = matching(errors, ids=[value])
            if not named and not anonymous(errors):
                continue  # not in HubSpot
            verdict, error = judge(named, errors, single=len(chunk) == 1)
            if verdict in (Verdict.TRANSIENT, Verdict.UNKNOWN):
                unsure.add(ref.key)
            elif verdict is Verdict.REJECTED and error is not None:
                self._read_errors[ref.key] = error.letter_body(status)
        return found, unsure

    # ---- subscription statuses (X4) ----

    async def _subscribe(self, plans: list[SubscriptionPlan]) -> None:
        if self._subscriptions is None:
            self._subscriptions = SubscriptionWriter(self.api)
        outcome = await self._subscriptions.apply(plans)
        counts = self._round.stats
        for done in outcome.applied:
            if done.command.state == "SUBSCRIBED":
                counts.subscribed += len(done.sources)
            else:
                counts.unsubscribed += len(done.sources)
        counts.kept_unsubscribed += sum(len(kept.sources) for kept in outcome.kept)
        for refusal in outcome.refused:
            self._dead_letter(refusal.plan.sources, refusal.reason, refusal.answer, refusal.status)

    # ---- dead letters ----

    def _dead_letter(
        self,
        sources: list[Source],
        reason: str,
        answer: dict[str, Any],
        status: int | None,
    ) -> None:
        """Queue a dead letter per source command; sent when the round completes."""
        for command, position in sources:
            self._round.letters.append(
                command_letter(
                    command, position, reason, answer, status, self.letter_limit_bytes, self.keys, self.nonces
                )
            )
            self._round.stats.dead_lettered += 1

    async def _halves(self, chunk: list[T], again: Callable[[list[T]], Awaitable[None]]) -> None:
        """Split a batch HubSpot refused as a whole, to find the input(s) at fault."""
        half = len(chunk) // 2
        await again(chunk[:half])
        await again(chunk[half:])


T = TypeVar("T")
FIRST_READ, FINAL_READ = 1, 2
LINK_WAIT_CAP = 30
"""With ``PlanRunner.upstream``: the most link waits a link waits for its end in all (an hour at
the default wait), so a writer whose worker is down does not hold its links, and its partitions'
commits, for ever."""


async def _together(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the calls concurrently (the pacer admits them within the account's budget) and return
    their results in order. If one fails the others are cancelled and awaited before its exception
    is raised, itself, not wrapped: the round is undone with nothing of it still running."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failures:
        raise _first_cause(failures) from None
    return [task.result() for task in tasks]


def _first_cause(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first failure of a group (nested groups unwrapped), a cancellation only if nothing else."""
    flat: list[BaseException] = []
    pending: list[BaseException] = [failures]
    while pending:
        failure = pending.pop(0)
        if isinstance(failure, BaseExceptionGroup):
            pending[:0] = list(failure.exceptions)
        else:
            flat.append(failure)
    return next((f for f in flat if not isinstance(f, asyncio.CancelledError)), flat[0])


PRODUCT_WAIT_TRIES = 5
"""Rounds a line item waits for its product to exist in HubSpot without the worker's progress (a
replay's writer): 1 + 2 + 4 + 8 + 16 s of backoff. With it, a link wait after the worker settled."""


def _split(items: list[T], test: Callable[[T], bool]) -> tuple[list[T], list[T]]:
    """(those that pass, the rest), each in order, testing each item once."""
    yes: list[T] = []
    no: list[T] = []
    for item in items:
        (yes if test(item) else no).append(item)
    return yes, no


def _record_key(record: RecordPlan) -> str:
    return record.ref.key


def _link_key(entry: tuple[LinkPlan, str, str]) -> str:
    c = entry[0].command
    return f"{c.record.key}|{c.to.key}|{c.association_type_id}"


def _chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + MAX_INPUTS] for i in range(0, len(items), MAX_INPUTS)]


def _norm(id_property: str, value: str) -> str:
    return value.lower() if id_property == "email" else value


def _made_pairs(body: dict[str, Any]) -> set[tuple[str, str]]:
    """The (from, to) ids an association ``batch/create`` answer lists as made."""
    pairs: set[tuple[str, str]] = set()
    for result in body.get("results") or []:
        if not isinstance(result, dict):
            continue
        f, t = result.get("fromObjectId"), result.get("toObjectId")
        if f is None and isinstance(result.get("from"), dict):
            f = result["from"].get("id")
        if t is None and isinstance(result.get("to"), dict):
            t = result["to"].get("id")
        if f is not None and t is not None:
            pairs.add((str(f), str(t)))
    return pairs
