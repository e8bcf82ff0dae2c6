"""Backlog drain, sandbox at 190 calls per 10 s (Professional): inputs/s against the bound.

A store of 13,000 generated buyers (about 7,800 orders: some 51,000 records and 35,000
associations from 173,000 commands) run through the rules in-process, every command appended to
``hubspot.commands`` at once, ``shopsync writer`` in its own process draining it. Inputs are the
records written plus the associations made (the same calls, the same 100-input batches) that
HubSpot applied, over whole 10-s windows from the first write; the detail also counts each
distinct item once: see ``bench.backlog_drain``. Bound: 190 calls/10 s x 100 inputs = 1,900
inputs/s; ~45 s at the bound.
"""

from __future__ import annotations

from bench.backlog_drain import DrainSpec, drain_figure

SPEC = DrainSpec(name="backlog", tier="professional", per_10s=190, customers=13_000, quick_customers=500)
FIGURE = drain_figure(SPEC, "backlog drain inputs applied/s (records + links), sandbox at 190 calls/10 s")

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
