"""Injected failures, so a writer's retries, backoff and idempotence are exercised on demand:
server errors, slowness, connections closed without an answer, and batch inputs that fail on
their own (a 207). Tests flip them at runtime (``POST /_sandbox/faults``) to start and stop a
burst."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from hubspot_sandbox.errors import JSON, HubSpotError, InputError

_SERVER_ERRORS = {
    500: ("INTERNAL_ERROR", "internal error"),
    502: ("BAD_GATEWAY", "Bad Gateway: the upstream service did not answer"),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable, please try again later"),
}

INPUT_ERRORS = {
    "INTERNAL_ERROR": "An internal error occurred while processing this input; try it again.",
    "VALIDATION_ERROR": "This input was rejected by the sandbox's batch_error fault.",
}
"""What an input failed by ``batch_error_rate`` answers: a transient failure (``INTERNAL_ERROR``,
worth retrying) or a refusal (``VALIDATION_ERROR``, final), chosen by ``batch_error_category``."""


@dataclass
class FaultSettings:
    fault_5xx_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0
    batch_error_rate: float = 0.0
    batch_error_category: str = "INTERNAL_ERROR"


class Faults:
    def __init__(self, settings: FaultSettings, seed: int | None = None) -> None:
        self.settings = settings
        self._dice = random.Random(seed)

    def update(self, changes: JSON) -> None:
        """Apply the named settings (all checked first, so a bad one changes nothing)."""
        rates = {"fault_5xx_rate", "drop_rate", "batch_error_rate"}
        staged = asdict(self.settings)
        for name, value in changes.items():
            if name == "batch_error_category":
                if value not in INPUT_ERRORS:
                    raise ValueError(f"batch_error_category must be one of {sorted(INPUT_ERRORS)}")
                staged[name] = value
                continue
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

    def failing_inputs(self, count: int) -> set[int]:
        """Indexes of a batch's inputs that fail on their own this time (``batch_error_rate``)."""
        rate = self.settings.batch_error_rate
        if rate <= 0:
            return set()
        return {i for i in range(count) if self._dice.random() < rate}

    def input_error(self, shown_id: str) -> InputError:
        category = self.settings.batch_error_category
        return InputError(category, INPUT_ERRORS[category], shown_id)


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
