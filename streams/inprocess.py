"""The whole processing pipeline in one process, without Kafka: routing, rules, timers.

Same routing (``streams.routing``), same rules, same timer semantics as the faust worker, with one
partition and forwarding done immediately. Property tests use it to check duplicates, reordering
and replay over whole stores; benchmarks use it as the cost of the rules alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from schemas.commands import AnyCommand
from schemas.envelope import Delivery, HubSpotContactDeletion, encode
from schemas.problems import FieldProblem
from streams.entities import instant_of
from streams.routing import OrderMemory, UnroutableError, route
from streams.rules import contacts, journeys, products
from streams.rules.common import RuleConfig
from streams.rules.journeys import FirstPurchase
from streams.rules.keys import normalize_email
from streams.timers import TimerIndex

ContactInput = Delivery | HubSpotContactDeletion


@dataclass
class InProcessPipeline:
    """Feed it deliveries, deletions and ticks; read ``commands`` and ``dead_letters``."""

    config: RuleConfig = field(default_factory=RuleConfig)
    contact_states: dict[str, contacts.ContactState] = field(default_factory=dict)
    journey_states: dict[str, journeys.JourneyState] = field(default_factory=dict)
    product_states: dict[int, products.ProductState] = field(default_factory=dict)
    orders: dict[str, OrderMemory] = field(default_factory=dict)
    contact_timers: TimerIndex = field(default_factory=TimerIndex)
    journey_timers: TimerIndex = field(default_factory=TimerIndex)
    now: datetime | None = None
    commands: list[AnyCommand] = field(default_factory=list)
    dead_letters: list[tuple[str, bytes]] = field(default_factory=list)
    field_problems: list[tuple[str, FieldProblem]] = field(default_factory=list)  # (Shopify topic, problem)

    def _advance(self, at: datetime) -> datetime:
        if self.now is None or at > self.now:
            self.now = at
        return self.now

    def deliver(self, delivery: Delivery) -> list[AnyCommand]:
        """Process one Shopify delivery (and everything it causes); return the new commands."""
        start = len(self.commands)
        raw = encode(delivery)
        try:
            body, problems = delivery.parse_body_with_problems()
        except (ValidationError, ValueError) as exc:
            self.dead_letters.append((f"body does not fit {delivery.topic}: {exc}", raw))
            return []
        self.field_problems += [(delivery.topic, problem) for problem in problems]
        self._advance(delivery.received_at)
        if delivery.resource == "products":
            product_id = int(getattr(body, "id", 0))
            state = self.product_states.get(product_id) or products.ProductState(product_id=product_id)
            outcome = products.decide(state, delivery, delivery.received_at, self.config)
            self.product_states[product_id] = outcome.state
            self.commands += outcome.commands
            return self.commands[start:]
        order_id = str(getattr(body, "id", "")) if delivery.resource == "orders" else ""
        try:
            routed = route(delivery, body, raw, self.orders.get(order_id))
        except UnroutableError as exc:
            self.dead_letters.append((str(exc), raw))
            return []
        if routed.memory is not None:
            self.orders[order_id] = routed.memory
        queue: deque[tuple[str, str, Delivery | HubSpotContactDeletion | FirstPurchase]] = deque(
            (name, key, delivery) for name, key in routed.targets
        )
        for (name, key), pending in routed.also_forward:
            queue.append((name, key, Delivery.model_validate_json(pending)))
        self._drain(queue)
        return self.commands[start:]

    def deletion(self, event: HubSpotContactDeletion) -> list[AnyCommand]:
        """HubSpot deleted a contact (C4)."""
        start = len(self.commands)
        email = normalize_email(event.email)
        if email is None:
            self.dead_letters.append(("contact.deletion without an email", encode(event)))
            return []
        self._advance(event.occurred_at)
        self._drain(deque([("contacts", email, event)]))
        return self.commands[start:]

    def tick(self, at: datetime) -> list[AnyCommand]:
        """Advance the clock to ``at`` and fire every timer due by then."""
        start = len(self.commands)
        now = self._advance(at)
        queue: deque[tuple[str, str, Delivery | HubSpotContactDeletion | FirstPurchase]] = deque()
        for email in self.contact_timers.pop_due(now):
            self._store_contact(email, contacts.on_tick(self.contact_states[email], now, self.config), queue)
        for key in self.journey_timers.pop_due(now):
            self._store_journey(key, journeys.on_tick(self.journey_states[key], now, self.config))
        self._drain(queue)
        return self.commands[start:]

    def _drain(
        self, queue: deque[tuple[str, str, Delivery | HubSpotContactDeletion | FirstPurchase]]
    ) -> None:
        while queue:
            name, key, record = queue.popleft()
            at = instant_of(record)  # decided at its own instant, as the worker does
            if name == "contacts":
                state = self.contact_states.get(key) or contacts.ContactState(email=key)
                if isinstance(record, HubSpotContactDeletion):
                    outcome = contacts.decide_deletion(state, record, at, self.config)
                elif isinstance(record, Delivery):
                    outcome = contacts.decide(state, record, at, self.config)
                else:  # pragma: no cover - facts only go to journeys
                    continue
                self._store_contact(key, outcome, queue)
            else:
                jstate = self.journey_states.get(key) or journeys.JourneyState(key=key)
                if isinstance(record, FirstPurchase):
                    joutcome = journeys.decide_first_purchase(jstate, record, at, self.config)
                elif isinstance(record, Delivery):
                    joutcome = journeys.decide(jstate, record, at, self.config)
                else:  # pragma: no cover - deletions only go to contacts
                    continue
                self._store_journey(key, joutcome)

    def _store_contact(
        self,
        email: str,
        outcome: contacts.Outcome,
        queue: deque[tuple[str, str, Delivery | HubSpotContactDeletion | FirstPurchase]],
    ) -> None:
        self.contact_states[email] = outcome.state
        self.contact_timers.set(email, contacts.next_due(outcome.state, self.config))
        self.commands += outcome.commands
        queue.extend(("journeys", fact.journey, fact) for fact in outcome.facts)

    def _store_journey(self, key: str, outcome: journeys.Outcome) -> None:
        self.journey_states[key] = outcome.state
        self.journey_timers.set(key, journeys.next_due(outcome.state, self.config))
        self.commands += outcome.commands
