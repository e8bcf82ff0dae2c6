"""The ``orjson`` faust codec: compact JSON for every topic and table value the app writes.

faust's built-in ``json`` codec goes through the standard library; orjson is several times
faster and writes no whitespace. Registered once under the name ``orjson``.
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class OrjsonCodec(codecs.Codec):
    """Encode JSON-able values (dicts, lists, str, numbers) to compact UTF-8 JSON bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make ``value_serializer="orjson"`` available (idempotent)."""
    codecs.register("orjson", OrjsonCodec())
