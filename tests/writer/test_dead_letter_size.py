"""The writer's dead letters fit one record whatever HubSpot answered (R6): a letter Kafka refuses
for its size would undo the writer's round again and again."""

from __future__ import annotations

import orjson

from config import Settings
from config.kafka import KAFKA_FRAMING_BYTES
from handlers.writer_letters import fitted


def test_a_dead_letter_too_large_for_a_record_is_cut_to_fit_and_says_where_the_command_is() -> None:
    settings = Settings(max_record_bytes=256 * 1024)  # the smallest allowed
    limit = settings.max_record_bytes - KAFKA_FRAMING_BYTES
    letter = {
        "reason": "HubSpot refused",
        "status": 400,
        "message": "m" * 300_000,
        "errors": [{"message": "e" * 300_000}],
        "command": {
            "kind": "upsert",
            "record": {"object_type": "deals"},
            "properties": {"note": "n" * 300_000},
        },
        "source": {"partition": 0, "offset": 7},
    }
    value = fitted(letter, limit)
    assert len(value) <= limit
    cut = orjson.loads(value)
    assert cut["source"] == {"partition": 0, "offset": 7} and cut["status"] == 400
    assert "properties_omitted" in cut["command"] and cut["command"]["record"] == {"object_type": "deals"}
    small = {**letter, "message": "short", "errors": [], "command": {"kind": "upsert", "properties": {}}}
    assert orjson.loads(fitted(small, limit)) == small
