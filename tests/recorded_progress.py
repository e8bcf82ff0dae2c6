"""A ``handlers.progress.Progress`` that remembers what it was told, for the tests of the commands
that report progress (the imports, replay)."""

from __future__ import annotations

from dataclasses import dataclass, field

from handlers.progress import Totals


@dataclass
class Phase:
    label: str
    totals: Totals
    first: int
    updates: list[int] = field(default_factory=list)
    finished: bool = False


@dataclass
class RecordedProgress:
    phases: list[Phase] = field(default_factory=list)

    def start(self, label: str, totals: Totals, records: int = 0, bytes_: int = 0) -> None:
        self.phases.append(Phase(label, totals, records))

    def update(self, records: int, bytes_: int = 0) -> None:
        self.phases[-1].updates.append(records)

    def finish(self) -> None:
        if self.phases:
            self.phases[-1].finished = True

    def by_label(self) -> dict[str, Phase]:
        return {p.label: p for p in self.phases}
