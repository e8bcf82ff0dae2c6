"""What a run lost (SPEC R7): dead letters, HubSpot rejections, parked deliveries, field problems.

``simulate``, ``demo``, ``replay`` and ``import`` all end with the same report, counted by reason,
and the same rule for the exit code: a record dead-lettered (by the worker, by the writer, by the
import, or while replaying) is a record lost, so the command exits with ``EXIT_LOSS`` unless the
operator passed ``--allow-loss``. A field problem is not loss (the record synced without that
field) and a parked delivery is not loss (it is kept, whole, in ``shopify.parking``); both are
shown so nothing is invisible, neither changes the exit code.

Reasons are counted by *kind*: a dead letter's reason holds per-record details (pydantic's
``input_value=...`` fragments, emails, ids) which would make every count 1 and would put personal
data on an operator's terminal. ``reason_kind`` keeps what says *why* (the prefix, each failing
field's path and pydantic's message template) and drops what says *what* (the values). The same
function sanitizes the worker's and the writer's log lines; the full reason stays in the
dead-letter record, for operators with access to the data.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from schemas.reasons import fold_path, reason_kind, scrub

if TYPE_CHECKING:
    from config import Settings
    from streams.topics import TopicName

EXIT_LOSS = 3
"""The exit code of a pipeline command that lost a record (1 and 2 are click's errors and usage)."""

MAX_ROWS = 20
"""Reasons shown per section; the rest are summed in one line, so a bad day stays readable."""


@dataclass
class LossReport:
    """Counts by reason kind. ``dead_letters`` is keyed by (where, reason): where the record went
    (``shopify.deadletter``, ``hubspot.commands.dlq``) or which command dropped it."""

    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    field_problems: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    parked: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        """Records lost: every dead letter. Field problems and parked deliveries are not loss."""
        return sum(self.dead_letters.values())

    def dead_letter(self, where: str, reason: str) -> None:
        self.dead_letters[(where, reason_kind(reason))] += 1

    def field_problem(self, shopify_topic: str, path: str, reason: str) -> None:
        first = reason.splitlines()[0] if reason else ""
        self.field_problems[(shopify_topic, fold_path(path), scrub(first))] += 1

    def park(self, reason: str) -> None:
        self.parked[reason_kind(reason)] += 1

    def merge(self, other: LossReport) -> LossReport:
        self.dead_letters.update(other.dead_letters)
        self.field_problems.update(other.field_problems)
        self.parked.update(other.parked)
        return self

    def exit_code(self, allow_loss: bool = False) -> int:
        """``EXIT_LOSS`` when a record was lost, unless the operator accepts loss."""
        return EXIT_LOSS if self.lost and not allow_loss else 0

    def render(self) -> list[str]:
        """The report as lines for a terminal: a headline, then each non-empty section by count."""
        problems, parked = sum(self.field_problems.values()), sum(self.parked.values())
        head = (
            f"{self.lost} record{'s' if self.lost != 1 else ''} lost (dead-lettered), "
            f"{problems} field problem{'s' if problems != 1 else ''} (synced without the field), "
            f"{parked} parked (kept, not consumed)"
        )
        lines = [("LOSS: " if self.lost else "Nothing lost: ") + head]
        if self.dead_letters:
            lines.append("Dead letters, by reason:")
            lines += _rows((n, f"{where}  {reason}") for (where, reason), n in self.dead_letters.items())
        if self.field_problems:
            lines.append("Field problems, by Shopify topic, field path and reason:")
            lines += _rows(
                (n, f"{topic}  {path}  {reason}") for (topic, path, reason), n in self.field_problems.items()
            )
        if self.parked:
            lines.append("Parked deliveries, by reason:")
            lines += _rows((n, reason) for reason, n in self.parked.items())
        return lines


def _rows(counted: Iterable[tuple[int, str]]) -> list[str]:
    ordered = sorted(counted, key=lambda row: (-row[0], row[1]))
    lines = [f"  {n:>6}  {text}" for n, text in ordered[:MAX_ROWS]]
    rest = ordered[MAX_ROWS:]
    if rest:
        lines.append(f"  {sum(n for n, _ in rest):>6}  ({len(rest)} other reasons)")
    return lines


# ---- the topics' records ----


def _json(value: bytes) -> dict[str, Any]:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def add_records(report: LossReport, topic: str, values: Iterable[bytes]) -> LossReport:
    """Count one topic's records into ``report``; ``topic`` is the declared (unprefixed) name."""
    for value in values:
        record = _json(value)
        if topic == "shopify.deadletter":
            report.dead_letter(topic, str(record.get("reason") or "unreadable dead letter"))
        elif topic == "hubspot.commands.dlq":
            reason = str(record.get("reason") or "unreadable dead letter")
            category = record.get("category")
            report.dead_letter(topic, f"{reason} ({category})" if category else reason)
        elif topic == "shopify.parking":
            report.park(str(record.get("reason") or "no reason given"))
        elif topic == "shopify.field-problems":
            report.field_problem(
                str(record.get("shopify_topic") or "?"), str(record.get("path") or "?"),
                str(record.get("reason") or "?"),
            )  # fmt: skip
    return report


REPORTED_TOPICS: tuple[TopicName, ...] = (
    "shopify.deadletter", "hubspot.commands.dlq", "shopify.parking", "shopify.field-problems",
)  # fmt: skip


async def read_report(settings: Settings) -> LossReport:
    """Everything in the reported topics under ``settings``' prefix (a run's own, fresh topics)."""
    from streams.topic_reader import read_all
    from streams.topics import topic_name

    report = LossReport()
    read = [
        read_all(settings.kafka_bootstrap_servers, topic_name(settings, name)) for name in REPORTED_TOPICS
    ]
    for name, records in zip(REPORTED_TOPICS, await asyncio.gather(*read), strict=True):
        add_records(report, name, (r.value for r in records))  # in topic order, as before
    return report


def from_pipeline(pipeline: Any, where: str = "replay") -> LossReport:
    """The in-process pipeline's dead letters (``(reason, raw)`` pairs) and, when it exposes them,
    its field problems (records or models with ``path`` and ``reason``)."""
    report = LossReport()
    for reason, _ in pipeline.dead_letters:
        report.dead_letter(where, reason)
    for problem in getattr(pipeline, "field_problems", None) or ():
        topic = getattr(problem, "shopify_topic", None)
        if isinstance(problem, tuple):  # (shopify topic or delivery, FieldProblem)
            first, problem = problem[0], problem[-1]
            topic = first if isinstance(first, str) else getattr(first, "topic", None)
        report.field_problem(str(topic or "?"), str(problem.path), str(problem.reason))
    return report


def dead_letter_record(
    reason: str, *, topic: str, key: bytes | None, original: bytes,
    partition: int | None = None, offset: int | None = None,
) -> bytes:  # fmt: skip
    """A ``shopify.deadletter`` record in the worker's shape, for records dropped before any topic
    held them (an import record without an identity): they must end somewhere an operator sees."""
    return orjson.dumps({
        "reason": reason, "topic": topic, "partition": partition, "offset": offset,
        "key": (key or b"").decode("utf-8", "replace"),
        "original_base64": base64.b64encode(original).decode(),
    })  # fmt: skip
