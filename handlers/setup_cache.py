"""The writer's memory of a completed account set-up, in the compacted topic ``hubspot.setup``.

One record per HubSpot account, keyed by the API's base URL and the account's portal id (two
accounts, or the sandbox and production, never share one): the pipeline the set-up settled on,
the stage ids it found, and the fingerprint of the definitions the code wanted then. A restarted
writer whose fingerprint is the same verifies the pipeline instead of setting the account up
again (``handlers.setup_once``). The record is only a shortcut: one that cannot be read, or
does not decode, means a full set-up, never a failure; one Kafka did not take is logged and
the next start sets up again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from handlers.id_map import RecordSender
from streams.topic_reader import read_all

log = logging.getLogger(__name__)
FORMAT = 1
"""The record's format; a record of another format is ignored (a full set-up writes a new one)."""
SAVE_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SetupRecord:
    """What a completed set-up found: the pipeline and its stage ids (label -> id), under the
    fingerprint of what the code wanted (``handlers.setup_once.wanted_fingerprint``)."""

    fingerprint: str
    pipeline_id: str
    stage_ids: dict[str, str]
    order_pipeline_id: str = ""  # X1, where orders are written: the order pipeline and its stages
    order_stage_ids: dict[str, str] = field(default_factory=dict)
    association_types: dict[str, int] = field(default_factory=dict)  # "<from>|<to>" -> type id

    def encode(self) -> bytes:
        return orjson.dumps(
            {"format": FORMAT, "fingerprint": self.fingerprint, "pipeline_id": self.pipeline_id,
             "stage_ids": self.stage_ids, "order_pipeline_id": self.order_pipeline_id,
             "order_stage_ids": self.order_stage_ids, "association_types": self.association_types}
        )  # fmt: skip

    @classmethod
    def decode(cls, value: bytes) -> SetupRecord | None:
        """The record, or None for anything else (another format, a malformed value)."""
        try:
            data: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        fingerprint, pipeline, stages = (
            data.get("fingerprint"),
            data.get("pipeline_id"),
            data.get("stage_ids"),
        )
        if not (isinstance(fingerprint, str) and isinstance(pipeline, str) and isinstance(stages, dict)):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in stages.items()):
            return None
        order_pipeline = data.get("order_pipeline_id", "")
        order_stages = data.get("order_stage_ids", {})
        types = data.get("association_types", {})
        if not (
            isinstance(order_pipeline, str) and isinstance(order_stages, dict) and isinstance(types, dict)
        ):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in order_stages.items()):
            return None
        if not all(isinstance(k, str) and type(v) is int for k, v in types.items()):
            return None
        return cls(fingerprint, pipeline, dict(stages), order_pipeline, dict(order_stages), dict(types))


def account_key(base_url: str, portal_id: str) -> str:
    """The record's key: the account, as the API it is reached at and its portal id."""
    return f"{base_url.rstrip('/')}|{portal_id}"


class SetupCache:
    """Reads and writes ``SetupRecord``s in ``topic`` (compacted, one partition). ``producer``
    gives the producer to send with (the writer's current one: it replaces it after a failure)."""

    def __init__(
        self, bootstrap: str, topic: str, producer: Callable[[], RecordSender | AIOKafkaProducer]
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer

    async def load(self, key: str) -> SetupRecord | None:
        """The newest record of ``key``, or None (none yet, a tombstone, unreadable)."""
        try:
            records = await read_all(self.bootstrap, self.topic, LOAD_TIMEOUT_S)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("could not read the set-up cache %s (%s): setting the account up", self.topic, exc)
            return None
        found: SetupRecord | None = None
        wanted = key.encode()
        for record in records:
            if record.key == wanted:
                found = SetupRecord.decode(record.value) if record.value else None
        return found

    async def save(self, key: str, record: SetupRecord) -> bool:
        """Write ``record`` and wait for Kafka's acknowledgement; False (logged) if it was not."""
        try:
            sent = await self.producer().send(self.topic, record.encode(), key.encode())
            await asyncio.wait_for(sent, SAVE_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            log.warning(
                "could not remember the account set-up in %s (%s): the next start sets it up again",
                self.topic, type(exc).__name__,
            )  # fmt: skip
            return False
        return True
