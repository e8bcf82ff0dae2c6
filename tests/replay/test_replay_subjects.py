"""G1: replay (send) seals each record's commands under the subject the worker would seal them
under, so the in-process pipeline notes, beside each command, whose input wrote it.

Pure: a generated store through ``streams.inprocess`` with subject tracking on, each delivery given
a subject of its own (what replay reads from its sealed bytes), hourly ticks so timers fire.
"""

from __future__ import annotations

from datetime import timedelta

from devtools.localrun import delivery_for, schedule
from devtools.samplestore import generate
from schemas.commands import encode_command
from streams.derived_sealing import command_is_personal
from streams.inprocess import InProcessPipeline, Subject


def test_every_command_names_the_subject_of_the_input_that_wrote_its_record() -> None:
    pipeline = InProcessPipeline(track_subjects=True)
    events = generate(customers=40, seed=5).events
    given: set[Subject] = set()
    fired_personal = 0
    for n, (batch, tick_at) in enumerate(schedule(events, timedelta(hours=1), timedelta(days=3))):
        for m, event in enumerate(batch):
            delivery = delivery_for(event)
            subject: Subject = (f"ref-{n}-{m}", delivery.shop_domain.strip().lower())
            given.add(subject)
            pipeline.subject_now = subject
            start = len(pipeline.commands)
            made = pipeline.deliver(delivery)
            pipeline.subject_now = None
            assert len(pipeline.command_subjects) == len(pipeline.commands)
            assert pipeline.command_subjects[start:] == [subject] * len(made), (
                "what a delivery causes is its subject's"
            )
        start = len(pipeline.commands)
        pipeline.tick(tick_at)
        assert len(pipeline.command_subjects) == len(pipeline.commands)
        fired = zip(pipeline.commands[start:], pipeline.command_subjects[start:], strict=True)
        for command, noted in fired:
            if command_is_personal(encode_command(command)):
                fired_personal += 1
                assert noted in given, "a timer's command is sealed under a subject an input named"
    assert fired_personal > 0, "timers fired commands with personal values: the tick part checks something"


def test_untracked_pipelines_note_nothing() -> None:
    pipeline = InProcessPipeline()
    for event in generate(customers=5, seed=5).events[:50]:
        pipeline.deliver(delivery_for(event))
    assert pipeline.commands and not pipeline.command_subjects
