"""Counts of what the sandbox was asked and answered, so a test can assert how many calls a
writer made (per route template and per concrete path) and how many 429s and 5xx it got."""

from __future__ import annotations

from collections import Counter

from hubspot_sandbox.errors import JSON


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_route: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.dropped = 0
        self.injected_5xx = 0

    def request(self, method: str, route: str, path: str) -> None:
        self.by_route[f"{method} {route}"] += 1
        self.by_path[f"{method} {path}"] += 1

    def answered(self, status: int) -> None:
        self.by_status[status] += 1

    def snapshot(self) -> JSON:
        return {
            "requests": dict(sorted(self.by_route.items())),
            "requests_by_path": dict(sorted(self.by_path.items())),
            "total": sum(self.by_route.values()),
            "statuses": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.by_status[429],
            "server_errors": sum(v for k, v in self.by_status.items() if k >= 500),
            "injected_5xx": self.injected_5xx,
            "dropped": self.dropped,
        }
