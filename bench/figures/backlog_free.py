"""Backlog drain, sandbox at 100 calls per 10 s (Free/Starter): inputs/s against the bound.

The ``backlog`` figure at the lower tier (the sandbox as a Starter account: Free's limit, and the
writer may still create its pipeline), on a store of 6,500 buyers (about 43,000 inputs), so the
drain again takes ~45 s at the bound: 100 calls/10 s x 100 inputs = 1,000 inputs/s. See
``bench.backlog_drain`` for what is counted and how it is timed.
"""

from __future__ import annotations

from bench.backlog_drain import DrainSpec, drain_figure

SPEC = DrainSpec(name="backlog_free", tier="starter", per_10s=100, customers=6_500, quick_customers=500)
FIGURE = drain_figure(
    SPEC, "backlog drain inputs applied/s (records + links), sandbox at 100 calls/10 s (Free/Starter)"
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
