"""A fix to faust-streaming's consumer that the worker cannot do without (R2, R4).

Found by the chaos test (three workers, SIGKILLs, rebalances): after a rebalance a partition's
records could stay unprocessed for ever, or be skipped for good once later records arrived.

The cause: at the end of every rebalance faust seeks each assigned partition to its committed
offset (``perform_seek`` -> aiokafka's ``seek_to_committed``), and aiokafka only seeks when that
offset is greater than 0. A partition whose group never committed (a new topic, or one whose
first records were never finished) or committed 0 keeps whatever position the fetcher had
reached. If records were fetched before the rebalance but never handled (faust clears the agents'
buffers when partitions are revoked), the fetch position is already past them: they are never
fetched again. Nothing reads them, the lag stays, and as soon as a later record of that partition
is handled and acknowledged, faust commits past the never-handled ones (it commits the run of
consecutive acknowledged offsets), so they are lost without a trace.

The fix seeks those partitions explicitly: to the beginning when nothing was committed (what
``auto_offset_reset="earliest"`` means), to 0 when 0 was. Changelog partitions are left to faust's
recovery, which positions them itself. Installed once per process by :func:`install`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_installed = False


def _is_stream_topic(topic: str) -> bool:
    return not topic.endswith("-changelog") and "__assignor-__leader" not in topic


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()

    async def seek() -> Mapping[Any, int]:
        committed: Mapping[Any, int] = await consumer.seek_to_committed()
        for tp, offset in committed.items():
            if not _is_stream_topic(tp.topic) or (offset is not None and offset > 0):
                continue  # aiokafka positioned it (or faust's recovery will)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, 0)
        return committed

    return await self.call_thread(seek)  # type: ignore[no-any-return]


def install() -> None:
    """Replace ``AIOKafkaConsumerThread.seek_to_committed`` with the fixed version (idempotent)."""
    global _installed
    if not _installed:
        AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
        _installed = True
