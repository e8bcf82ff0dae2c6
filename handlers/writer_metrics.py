"""The writer's and the HubSpot client's Prometheus metrics.

HubSpot calls are counted where every call passes (``handlers.hubspot_client``): by endpoint (the
path with its ids folded, so the labels stay few), method and status (or the transport error's
name), with their latency; 429s and retries on their own. The writer's outcomes come from its own
``WriterStats`` (counted only when a round completes, so a round undone and read again counts
once), read when Prometheus scrapes; its backlog (commands in ``hubspot.commands`` it has not
finished) is set after each round. Every metric is listed in the README (Operational metrics).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from typing import Any, Protocol

import orjson
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.metrics import LATENCY_BUCKETS

HUBSPOT_REQUESTS = Counter(
    "shopsync_hubspot_requests", "HubSpot API requests, by endpoint, method and status (or error).",
    ["endpoint", "method", "status"],
)  # fmt: skip
HUBSPOT_SECONDS = Histogram(
    "shopsync_hubspot_request_seconds", "HubSpot API request latency, by endpoint.", ["endpoint"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
HUBSPOT_RATE_LIMITED = Counter("shopsync_hubspot_rate_limited", "HubSpot 429s (waited out, not failed).")
HUBSPOT_RETRIES = Counter(
    "shopsync_hubspot_retries", "HubSpot requests retried, by cause (5xx or transport error).", ["cause"]
)
WRITER_DEAD_LETTERS = Counter(
    "shopsync_writer_dead_letters", "Commands HubSpot rejected for good, by object type and category.",
    ["object_type", "category"],
)  # fmt: skip
WRITER_BACKLOG = Gauge(
    "shopsync_writer_backlog", "Commands in hubspot.commands the writer has not finished (its partitions)."
)
WRITER_ROUND_SECONDS = Histogram(
    "shopsync_writer_round_seconds", "Time of one writer round (HubSpot calls, id map, dead letters).",
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
WRITER_COMMANDS_IN = Counter("shopsync_writer_commands_in", "Commands the writer read from hubspot.commands.")

_ID = re.compile(r"/\d+(?=/|$)")


def endpoint(path: str) -> str:
    """``/crm/v3/objects/contacts/123/associations`` -> ``/crm/v3/objects/contacts/{id}/associations``."""
    return _ID.sub("/{id}", path.split("?", 1)[0])


def hubspot_answered(method: str, path: str, status: int | str, seconds: float) -> None:
    """One HubSpot request ended (an HTTP status, or the transport error's name)."""
    where = endpoint(path)
    HUBSPOT_REQUESTS.labels(where, method, str(status)).inc()
    HUBSPOT_SECONDS.labels(where).observe(seconds)
    if status == 429:
        HUBSPOT_RATE_LIMITED.inc()
    elif isinstance(status, str) or status >= 500:
        HUBSPOT_RETRIES.labels(str(status)).inc()


def dead_letters_sent(values: Iterable[bytes]) -> None:
    """Dead letters Kafka acknowledged, counted by the object type and HubSpot category they name."""
    for value in values:
        try:
            letter = orjson.loads(value)
        except orjson.JSONDecodeError:
            letter = {}
        record = (letter.get("command") or {}).get("record") or {}
        object_type = str(record.get("object_type") or "not a command")
        WRITER_DEAD_LETTERS.labels(object_type, str(letter.get("category") or "none")).inc()


class _Consumer(Protocol):
    def assignment(self) -> Any: ...
    def highwater(self, tp: Any) -> int | None: ...


def round_done(commands: int, seconds: float, consumer: _Consumer, consumed: Mapping[int, int]) -> None:
    """A round completed: its commands, its time, and the backlog left (high watermark minus what
    the writer has consumed, per partition it owns)."""
    WRITER_COMMANDS_IN.inc(commands)
    WRITER_ROUND_SECONDS.observe(seconds)
    backlog = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            backlog += max(0, high - consumed.get(tp.partition, 0))
    WRITER_BACKLOG.set(backlog)


class _StatsCollector(Collector):
    """The writer's ``WriterStats`` as metrics: counters for outcomes, gauges for what waits."""

    GAUGES = ("waiting_links", "held_records")

    def __init__(self) -> None:
        self.stats: Any = None

    def collect(self) -> Iterator[Metric]:
        if self.stats is None:
            return
        outcomes = CounterMetricFamily(
            "shopsync_writer_outcomes", "Writer outcomes of completed rounds, by kind.", labels=["outcome"]
        )
        for f in fields(self.stats):
            if f.name not in self.GAUGES:
                outcomes.add_metric([f.name], getattr(self.stats, f.name))
        yield outcomes
        for name in self.GAUGES:
            yield GaugeMetricFamily(f"shopsync_writer_{name}", f"Writer: {name.replace('_', ' ')}.",
                                    value=getattr(self.stats, name))  # fmt: skip


_COLLECTOR = _StatsCollector()
REGISTRY.register(_COLLECTOR)


def watch(stats: Any) -> None:
    """Report these ``WriterStats`` (the running writer's) on ``/metrics``."""
    _COLLECTOR.stats = stats
