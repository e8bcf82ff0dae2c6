"""The writer's dead letters: what one says, how it fits one Kafka record, and the port that sends
a round's letters (``hubspot.commands.dlq`` in production, a list in tests).

A command HubSpot refused for good goes to the dead-letter topic with HubSpot's answer and the
command itself (SPEC R5, R7). Letters are queued while a round runs and sent only when it
completes; the port reports what Kafka did not acknowledge, and the round is then undone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiokafka.errors import KafkaError

from handlers import writer_metrics
from handlers.id_map import RecordSender, delivery_failure
from handlers.writer_plan import Position
from schemas.commands import AnyCommand, encode_command
from schemas.reasons import reason_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """One letter: its bytes, its Kafka key (the command's record key, None for a record that is
    not a command), and a value-free line saying what it is, for the log."""

    value: bytes
    key: bytes | None
    what: str


class DeadLetterPort(Protocol):
    """Where a completed round's dead letters go."""

    async def deliver(self, letters: list[DeadLetter], timeout_s: float) -> list[BaseException]:
        """Send them; wait (at most ``timeout_s``) until each is acknowledged; return the failures."""
        ...


class KafkaDeadLetters:
    """The production port: ``hubspot.commands.dlq`` through the writer's producer."""

    def __init__(self, producer: RecordSender, topic: str) -> None:
        self.producer = producer  # replaced by the writer after a failed delivery
        self.topic = topic

    async def deliver(self, letters: list[DeadLetter], timeout_s: float) -> list[BaseException]:
        sent: list[asyncio.Future[Any]] = []
        failures: list[BaseException] = []
        for letter in letters:
            log.warning("dead-lettering %s", letter.what)
            try:
                sent.append(await self.producer.send(self.topic, letter.value, key=letter.key))
            except KafkaError as exc:  # not even queued (no metadata, too large, ...)
                failures.append(exc)
        if sent:  # asyncio.wait, not wait_for: the producer's futures must not be cancelled
            await asyncio.wait(sent, timeout=timeout_s)
        failures += [e for f in sent if (e := delivery_failure(f, timeout_s)) is not None]
        if not failures:  # else the round is undone and its letters sent again
            writer_metrics.dead_letters_sent(letter.value for letter in letters)
        return failures


def command_letter(
    command: AnyCommand,
    position: Position,
    reason: str,
    answer: dict[str, Any],
    status: int | None,
    limit_bytes: int,
) -> DeadLetter:
    """The letter for one command HubSpot refused: HubSpot's answer, the command, where it was read."""
    letter = {
        "reason": reason,
        "status": status,
        "category": answer.get("category"),
        "message": answer.get("message"),
        "errors": answer.get("errors"),
        "command": orjson.loads(encode_command(command)),
        "source": {"partition": position.partition, "offset": position.offset},
    }
    # No record key (a contact's is its email) and no HubSpot message (it quotes values) in the
    # log line: the dead letter holds both, for operators with access to the data.
    what = (
        f"a {command.record.object_type} command from {position.partition}@{position.offset}: "
        f"{reason_kind(reason)} ({answer.get('category') or status})"
    )
    return DeadLetter(fitted(letter, limit_bytes), command.record.key.encode(), what)


def raw_letter(raw: bytes, reason: str, position: Position) -> DeadLetter:
    """The letter for a record of the commands topic that is not a command at all."""
    letter = {"reason": f"not a command: {reason}", "original": raw.decode("utf-8", "replace"),
              "source": {"partition": position.partition, "offset": position.offset}}  # fmt: skip
    return DeadLetter(orjson.dumps(letter), None, "a record that is not a command")


def fitted(letter: dict[str, Any], limit_bytes: int) -> bytes:
    """The letter as bytes that fit one record (R6): HubSpot's answer is cut first, then the
    command's properties; the command itself stays readable at its source offset. A letter
    Kafka refuses for its size would otherwise undo the round again and again."""
    value = orjson.dumps(letter)
    if len(value) <= limit_bytes:
        return value
    letter = {**letter, "errors": None, "message": str(letter.get("message") or "")[:2000]}
    value = orjson.dumps(letter)
    if len(value) <= limit_bytes:
        return value
    command = dict(letter["command"])
    omitted = len(orjson.dumps(command.pop("properties", None)))
    letter["command"] = {**command, "properties_omitted": f"{omitted} bytes: read it at its source offset"}
    return orjson.dumps(letter)
