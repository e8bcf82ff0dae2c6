"""Injected failures, so a writer's retries, backoff and idempotence are exercised on demand:
server errors, slowness, and connections closed without an answer. Tests flip them at runtime
(``POST /_sandbox/faults``) to start and stop a burst."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from hubspot_sandbox.errors import JSON, HubSpotError

_SERVER_ERRORS = {
    500: ("INTERNAL_ERROR", "internal error"),
    502: ("BAD_GATEWAY", "Bad Gateway: the upstream service did not answer"),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable, please try again later"),
}


@dataclass
class FaultSettings:
    fault_5xx_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0


class Faults:
    def __init__(self, settings: FaultSettings, seed: int | None = None) -> None:
        self.settings = settings
        self._dice = random.Random(seed)

    def update(self, changes: JSON) -> None:
        """Apply the named settings (all checked first, so a bad one changes nothing)."""
        rates = {"fault_5xx_rate", "drop_rate"}
        staged = asdict(self.settings)
        for name, value in changes.items():
            staged[name] = _checked(name, value, is_rate=name in rates)
        self.settings = FaultSettings(**staged)

    @property
    def latency_s(self) -> float:
        return self.settings.latency_ms / 1000

    def drop(self) -> bool:
        return self.settings.drop_rate > 0 and self._dice.random() < self.settings.drop_rate

    def server_error(self) -> HubSpotError | None:
        if self.settings.fault_5xx_rate <= 0 or self._dice.random() >= self.settings.fault_5xx_rate:
            return None
        status = self._dice.choice(sorted(_SERVER_ERRORS))
        category, message = _SERVER_ERRORS[status]
        return HubSpotError(status, category, message)


def _checked(name: str, value: Any, *, is_rate: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if is_rate and not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1")
    if not is_rate:
        if value < 0 or value != int(value):
            raise ValueError(f"{name} must be a non-negative integer")
        return int(value)
    return float(value)
