"""``ensure_topics`` returns only once a raised ``max.message.bytes`` is in force on every broker.

AlterConfigs answers when the controller has committed a change; each broker applies it a moment
later. A clean-clone CI run had the bridge refuse (413) a record right after ``ensure_topics``
raised its topic's limit: the broker still held the old one. These tests drive the wait with a
stand-in admin whose brokers report the old value for a while."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.topics import _wait_until_applied


@dataclass
class Node:
    nodeId: int  # noqa: N815 - aiokafka's name


@dataclass
class Answer:
    resources: list[tuple[int, str, int, str, list[tuple[str, str]]]]


@dataclass
class StaleBrokers:
    """Brokers that report ``old`` for the first ``stale[broker]`` describes, then ``new``."""

    stale: dict[int, int]
    old: str = "1000000"
    new: str = "3000000"
    asked: list[int] = field(default_factory=list)

    @property
    def _client(self) -> Any:
        brokers = [Node(b) for b in self.stale]
        return type("C", (), {"cluster": type("K", (), {"brokers": lambda _self: brokers})()})()

    async def _send_request_to_node(self, node_id: int, request: Any) -> Answer:
        self.asked.append(node_id)
        value = self.old if self.asked.count(node_id) <= self.stale[node_id] else self.new
        names = [r[1] for r in request._resources]
        return Answer([(0, "", 2, n, [("max.message.bytes", value)]) for n in names])


async def test_it_waits_until_the_slowest_broker_reports_the_raised_limit() -> None:
    admin = StaleBrokers(stale={1: 0, 2: 3})
    await _wait_until_applied(admin, ["t1", "t2"], 3_000_000, timeout_s=5)
    assert admin.asked.count(2) == 4, "asked broker 2 until it stopped reporting the old limit"
    assert admin.asked.count(1) == 4, "every round asks every broker"


async def test_a_limit_never_applied_is_a_named_timeout_not_a_silent_return() -> None:
    admin = StaleBrokers(stale={1: 10_000})
    with pytest.raises(TimeoutError, match="t1"):
        await _wait_until_applied(admin, ["t1"], 3_000_000, timeout_s=0.2)
