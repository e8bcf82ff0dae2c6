"""The reports stage (SPEC E1): each journey's deal facts, kept in the worker's ``reports`` table.

The journeys kind forwards a deal's :class:`~streams.rules.reports.DealFacts` to this stage
whenever they change (:func:`report_forwards`), keyed by the journey; the stage keeps the newest
facts of each journey as a row. Rows are idempotent (the last facts of a journey win; a repeat
changes nothing), so the at-least-once outputs of the journeys never count twice. The table's
changelog (compacted, ``<app id>-reports-changelog``) is what the dashboard folds into the
reports (``handlers.dashboard_data``); the in-process engine keeps the same rows for replay.
"""

from __future__ import annotations

from datetime import datetime

from config.rules import RuleConfig
from streams.processor import Forward, Kind, Outcome
from streams.rules import journeys
from streams.rules.reports import DealFacts, facts_of, gone, signature

TARGET = "reports"


def deal_facts(state: journeys.JourneyState) -> DealFacts:
    """The facts of the deal the rules last emitted for this journey (what HubSpot holds)."""
    view = state.emitted
    if not view.exists:
        return gone(state.key)
    stage = view.properties.get("dealstage")
    return facts_of(state.key, stage, view.properties, view.lines.values())


def report_forwards(before: journeys.JourneyState, after: journeys.JourneyState) -> list[Forward]:
    """The facts to forward after a journey's decision: only when its emitted deal changed in a
    way the reports can see (a journey never emitted is no deal: nothing to say)."""
    old, new = before.emitted, after.emitted
    if new is old or new == old:
        return []
    if old.exists == new.exists and (
        not new.exists or signature(old.properties, old.lines) == signature(new.properties, new.lines)
    ):
        return []
    return [Forward(TARGET, after.key, deal_facts(after))]


def _keep(state: DealFacts | None, facts: DealFacts, now: datetime, config: RuleConfig) -> Outcome:
    return Outcome(state if state == facts else facts)


REPORTS = Kind(name=TARGET, new=lambda key: None, decide=_keep, instant=lambda record: None)
