"""The writer's dead letters fit one record whatever HubSpot answered (R6): a letter Kafka refuses
for its size would undo the writer's round again and again."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from config import Settings
from config.kafka import KAFKA_FRAMING_BYTES
from handlers.writer import Writer


def test_a_dead_letter_too_large_for_a_record_is_cut_to_fit_and_says_where_the_command_is() -> None:
    settings = Settings(max_record_bytes=256 * 1024)  # the smallest allowed
    writer = SimpleNamespace(settings=settings)
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
    value = Writer._fitted(writer, letter)  # type: ignore[arg-type]
    assert len(value) <= settings.max_record_bytes - KAFKA_FRAMING_BYTES
    fitted = orjson.loads(value)
    assert fitted["source"] == {"partition": 0, "offset": 7} and fitted["status"] == 400
    assert "properties_omitted" in fitted["command"] and fitted["command"]["record"] == {
        "object_type": "deals"
    }
    small = {**letter, "message": "short", "errors": [], "command": {"kind": "upsert", "properties": {}}}
    assert orjson.loads(Writer._fitted(writer, small)) == small  # type: ignore[arg-type]
