"""Timing a consumer group through a backlog, by its committed offsets (never by fixed sleeps).

A worker is done when its group has committed everything in the topics it reads, its own
re-keyed topics included. How long that takes is timed from the first moment the group is
*working*: stable with a member, or already committing; the rate is the backlog over the time
from then to the end. So process start-up and the first join are left out; with several workers
started together, the rebalances as the others join are in (what scaling out costs), and the
tail (the last forwards through the re-keyed topics, the last commit) is in. The wait has no
fixed deadline: it fails only when the lag stops falling for ``stall_s`` (a worker re-reading
without committing is not progress), so the same code times a worker at 200 deliveries/s or at
20,000.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from devtools import localrun
from devtools.localrun import ServiceProcess

POLL_S = 0.2


@dataclass(frozen=True)
class Drained:
    """``records`` of the source topics processed in ``seconds`` once working; ``startup_s``:
    from the start of the wait to working."""

    records: int
    seconds: float
    startup_s: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def since(cls, records: int, started: float, first_at: float | None) -> Drained:
        """A loop that began at ``started`` and got its first record at ``first_at`` (monotonic
        clock), ending now: timed from the first record, the wait before it as start-up."""
        end = time.monotonic()
        first = first_at if first_at is not None else end
        return cls(records, end - first, first - started)


class LagProbe(localrun.LagProbe):
    """The local-run lag probe, with what timing a group needs besides: lag per topic, members."""

    async def lag(self, group: str, topics: Sequence[str]) -> dict[str, int] | None:
        """Uncommitted records per topic (None while the group's offsets cannot be read yet)."""
        counts = await self.uncommitted(group, topics)
        if counts is None:
            return None
        out = dict.fromkeys(topics, 0)
        for tp, n in counts.items():
            out[tp.topic] += n
        return out

    async def committed(self, group: str, topics: Sequence[str]) -> int | None:
        """Every offset ``group`` has committed on ``topics``, summed: it grows whenever the
        group finishes anything (None while its offsets cannot be read yet)."""
        try:
            offsets = await self.admin.list_consumer_group_offsets(group)
        except KafkaError as exc:
            if getattr(exc, "retriable", False):
                return None
            raise
        wanted = set(topics)
        return sum(int(meta.offset) for tp, meta in offsets.items() if tp.topic in wanted and meta.offset > 0)

    async def members(self, group: str) -> int:
        """Members of a stable group (0 while it is rebalancing or empty)."""
        described = await self.admin.describe_consumer_groups([group])
        for response in described:
            for entry in response.groups:
                _error, group_id, state, *_rest = entry
                members = entry[5] if len(entry) > 5 else []
                if group_id == group and state == "Stable":
                    return len(members)
        return 0


async def drain(
    bootstrap: str,
    group: str,
    sources: Sequence[str],
    topics: Sequence[str],
    backlog: int,
    processes: Sequence[ServiceProcess],
    stall_s: float = 120.0,
) -> Drained:
    """Wait until ``group`` has committed everything in ``topics`` (``sources`` among them hold
    the ``backlog`` records given to it), and time it from when all ``processes`` work."""
    started = time.monotonic()
    working_at: float | None = None
    left_at_start = backlog
    least: int | None = None  # the smallest total lag seen
    most = 0  # the most the group has committed: progress is when either moves
    moved_at = started
    async with LagProbe(bootstrap) as probe:
        while True:
            for process in processes:
                if not process.alive():
                    raise RuntimeError(f"the {process.service} process exited:\n{process.log_tail()}")
            lag = await probe.lag(group, topics)
            now = time.monotonic()
            if lag is not None:
                source_lag = sum(lag[t] for t in sources)
                total = sum(lag.values())
                if working_at is None and (source_lag < backlog or await probe.members(group) >= 1):
                    # stable with a member, or already committing (a stable moment between two
                    # rebalances can fall between polls): then everything was still to do
                    working_at, left_at_start = now, backlog
                if least is None or total < least:
                    least, moved_at = total, now
                # The total lag alone can stay flat while the group works: the routers' forwards
                # to the re-keyed topics (two or three a checkout) add lag as fast as the entity
                # stages remove it, early in a first pass (a 200,000-checkout run "stalled" with
                # a quarter of the checkouts committed and every stage committing).
                done = await probe.committed(group, topics)
                if done is not None and done > most:
                    most, moved_at = done, now
                if total == 0 and working_at is not None:
                    await asyncio.sleep(2 * POLL_S)  # forwards still on their way count too
                    again = await probe.lag(group, topics)
                    if again is not None and sum(again.values()) == 0:
                        return Drained(left_at_start, now - working_at, working_at - started)
            if now - moved_at > stall_s:
                tails = "\n".join(p.log_tail(15) for p in processes)
                why = f"group {group}'s lag did not fall for {stall_s:.0f} s (lag {lag})"
                raise TimeoutError(f"{why}:\n{tails}")
            await asyncio.sleep(POLL_S)


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB: its resident memory now and at its peak."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    """Delete every topic whose name starts with one of ``prefixes`` (a figure's records and its
    workers' changelogs: gigabytes at full size)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
