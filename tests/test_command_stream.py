"""The in-process pipeline's whole output on a generated store, pinned by its digest.

Performance work (one decode per delivery, incremental renders) must not change what the rules
emit. This runs devtools' generated store (200 customers, hourly ticks, three days of tail so
every timer fires; once more with the bodies enlarged as ``bench.corpus`` makes them) through
``streams.inprocess`` in each commerce mode and compares the sha256 of every command's bytes (in
order), every dead letter and every field problem with the digest recorded when the test was
written.

A deliberate change of the rules changes the digest: run this file, check the change is the one
intended, and record the new digest printed in the failure.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from bench.corpus import enlarged
from config.rules import RuleConfig
from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.commands import encode_command
from streams.inprocess import InProcessPipeline

DIGESTS = {
    ("deals", False): "00a5adc9d054726dd0a09530c9ddaca058d44848009111f1388b56bb05c33a5b",
    ("orders", False): "e3e2edbfd7d8c8de5ee1a5bd66142d918580390cee3258185b46e7d95f3b83ad",
    ("deals,orders", False): "53e00b1bc7a406d2c01334a39c3cade04b9fdce61e1c48d5056d4049860637ed",
    ("deals,orders", True): "7837a96dc5c3e8fd9516d4245da0cc420e985a2f4c8e79664c743643d3541961",
}
"""(commerce mode, bodies enlarged to Shopify's samples as the benchmarks send them): digest."""


def stream_digest(mode: str, large: bool, customers: int = 200) -> tuple[str, int]:
    """The digest of everything the pipeline emits for the store, and the number of commands."""
    pipeline = InProcessPipeline(config=RuleConfig(commerce_objects=mode))
    events = generate(customers=customers, seed=3).events
    plan = schedule(enlarged(events) if large else events, timedelta(hours=1), timedelta(days=3))
    for batch, tick_at in plan:
        for event in batch:
            pipeline.deliver(delivery_for(event))
        pipeline.tick(tick_at)
    digest = hashlib.sha256()
    for command in pipeline.commands:
        digest.update(encode_command(command))
        digest.update(b"\n")
    for reason, raw in pipeline.dead_letters:
        digest.update(reason.encode() + b"\0" + raw + b"\n")
    for topic, problem in pipeline.field_problems:
        digest.update(f"{topic}\0{problem.path}\0{problem.reason}\n".encode())
    return digest.hexdigest(), len(pipeline.commands)


@pytest.mark.parametrize(("mode", "large"), sorted(DIGESTS))
def test_the_command_stream_is_unchanged(mode: str, large: bool) -> None:
    digest, count = stream_digest(mode, large)
    assert count > 1_000, "the store must exercise the rules"
    assert digest == DIGESTS[mode, large], f"{mode}, enlarged {large}: {count} commands, digest {digest}"
