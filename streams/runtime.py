"""Process-wide settings of the Python runtime that the long-running services start with.

The garbage collector: a worker or a replay holds hundreds of thousands of long-lived objects
(decoded states, indexes, parsed bodies in flight), and CPython's default thresholds (700, 10, 10)
make it walk that heap again and again; profiled, collection was about a third of the rules'
time. So what exists once a service is set up is frozen (never scanned again), and the young
generation is collected every 50,000 allocations instead of 700. Reference counting still frees
everything acyclic at once; cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what the process holds now and raise the collector's thresholds (idempotent)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
