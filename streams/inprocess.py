"""The whole processing pipeline in one process, without Kafka: the in-process engine.

The same kinds (``streams.entities``) through the same core (``streams.processor.step``) as the
faust worker, one partition per kind, each input a batch of one, and every forward handed on at
once instead of through a topic. Property tests use it to check duplicates, reordering and replay
over whole stores; replay, import and simulate use it to compute what the worker would; the rules
benchmark uses it as the cost of the rules alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from config.rules import RuleConfig
from schemas.commands import AnyCommand
from schemas.envelope import Delivery, HubSpotContactDeletion, Tick, encode
from schemas.problems import FieldProblem
from streams.entities import (
    COMPANIES,
    CONTACTS,
    DELETION_ROUTER,
    JOURNEYS,
    KINDS,
    PRODUCTS,
    ROUTER,
    TIMED,
    Routable,
    decode_forward,
    product_key,
    router_key,
    what_of,
)
from streams.partition_time import PartitionTime
from streams.processor import Kind, MemoryStore, step
from streams.report_stage import REPORTS
from streams.rules import contacts, journeys, products
from streams.rules.keys import normalize_email
from streams.rules.reports import DealFacts

PARTITION = 0

Subject = tuple[str | None, str]
"""G1: whose key seals what a unit wrote: (key ref, shop); a None ref is the shop's own subject
(a company's rows and commands hold several customers' values, as in the worker)."""


@dataclass
class InProcessPipeline:
    """Feed it deliveries, deletions and ticks; read ``commands`` and ``dead_letters``."""

    config: RuleConfig = field(default_factory=RuleConfig)
    stores: dict[str, MemoryStore] = field(default_factory=lambda: {name: MemoryStore() for name in KINDS})
    times: dict[str, PartitionTime] = field(default_factory=dict)
    commands: list[AnyCommand] = field(default_factory=list)
    dead_letters: list[tuple[str, bytes]] = field(default_factory=list)
    field_problems: list[tuple[str, FieldProblem]] = field(default_factory=list)  # (Shopify topic, problem)
    track_subjects: bool = False
    """G1 (replay with sealing on): note, beside each command, the subject whose key seals it: the
    newest sealed input's of the unit's key (as the worker seals a unit's writes), the shop's for
    companies. Off: ``command_subjects`` stays empty."""
    subject_now: Subject | None = None  # the subject of the input being delivered (set by the caller)
    subjects: dict[tuple[str, str], Subject] = field(default_factory=dict)  # (kind, key) -> newest
    command_subjects: list[Subject | None] = field(default_factory=list)  # beside ``commands``

    def __post_init__(self) -> None:
        for kind in TIMED:  # states live as objects here, never as rows: nothing to derive
            self.times[kind.name] = PartitionTime(lambda row: None)
            self.times[kind.name].rebuild(PARTITION, ())

    @property
    def contact_states(self) -> dict[str, contacts.ContactState]:
        return self.stores[CONTACTS.name].states

    @property
    def journey_states(self) -> dict[str, journeys.JourneyState]:
        return self.stores[JOURNEYS.name].states

    @property
    def report_facts(self) -> dict[str, DealFacts]:
        """E1: each journey's deal facts (``streams.rules.reports.compute`` folds them)."""
        return self.stores[REPORTS.name].states

    @property
    def product_states(self) -> dict[str, products.ProductState]:
        return self.stores[PRODUCTS.name].states

    def deliver(self, delivery: Delivery) -> list[AnyCommand]:
        """Process one Shopify delivery (and everything it causes); return the new commands."""
        start = len(self.commands)
        try:
            body, problems = delivery.parse_body_with_problems()
        except (ValidationError, ValueError) as exc:
            self.dead_letters.append((f"body does not fit {delivery.topic}: {exc}", encode(delivery)))
            return []
        self.field_problems += [(delivery.topic, problem) for problem in problems]
        if delivery.resource == "products":
            self._run(PRODUCTS, product_key(delivery, body, self.config), delivery, None)
        else:  # the bytes are made only if a rule needs them (Routable.encoded)
            routable = Routable(delivery, body)
            self._run(ROUTER, router_key(routable, self.config), routable, None)
        return self.commands[start:]

    def deletion(self, event: HubSpotContactDeletion) -> list[AnyCommand]:
        """HubSpot deleted a contact (C4). In-process there is no id map to join with, so a
        deletion must carry its email."""
        start = len(self.commands)
        if normalize_email(event.email) is None:
            self.dead_letters.append(("contact.deletion without an email", encode(event)))
            return []
        self._run(DELETION_ROUTER, "", event, None)
        return self.commands[start:]

    def tick(self, at: datetime) -> list[AnyCommand]:
        """Fire every timer due by ``at`` (each timed kind's stream time moves to ``at`` at least)."""
        start = len(self.commands)
        tick = Tick(at=at)
        for kind in TIMED:
            self._run(kind, "tick", tick, None)
        return self.commands[start:]

    def _run(self, kind: Kind, key: str, record: Any, raw: bytes | None) -> None:
        queue: deque[tuple[Kind, str, Any, bytes | None]] = deque([(kind, key, record, raw)])
        while queue:
            kind, key, record, raw = queue.popleft()
            store = self.stores[kind.name]
            time = self.times.get(kind.name)
            clock = time.clock(PARTITION) if time else None
            result = step(kind, self.config, store, [(key, record)], clock, what_of)
            for rejected in result.rejected:
                self.dead_letters.append((rejected.reason, raw if raw is not None else _bytes_of(record)))
            store.save((k, state) for k, (state, _) in result.states().items())
            if self.track_subjects:
                for unit in result.units:
                    self.command_subjects += [self._subject_of(kind, unit.key)] * len(unit.commands)
            self.commands += result.commands()
            for forward in result.forwards():
                forwarded = (
                    forward.record
                    if forward.record is not None
                    else decode_forward(forward.target, forward.raw or b"")
                )
                queue.append((KINDS[forward.target], forward.key, forwarded, forward.raw))

    def _subject_of(self, kind: Kind, key: str) -> Subject | None:
        """G1: the subject of what ``kind``'s unit of ``key`` writes (see ``track_subjects``)."""
        now = self.subject_now
        if kind.name == COMPANIES.name:
            if now is not None:
                self.subjects[(kind.name, key)] = (None, now[1])
        elif now is not None and now[0] is not None:
            self.subjects[(kind.name, key)] = now
        return self.subjects.get((kind.name, key))


def _bytes_of(record: Any) -> bytes:
    if isinstance(record, Routable):
        return record.encoded()
    return encode(record)
