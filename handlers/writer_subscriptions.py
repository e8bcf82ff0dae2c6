"""X4's sending path: a round's subscription status changes, applied to HubSpot (opt-in only).

The rules emit :class:`~schemas.commands.SetSubscription` only where ``SHOPSYNC_SYNC_EMAIL_SUBSCRIPTION``
names a subscription type. The writer applies the round's changes (the last per address and type,
``handlers.writer_plan``) through HubSpot's current communication preferences API
(``handlers.hubspot_paths.COMMUNICATION_PREFERENCES``), batch endpoints only:

1. the type is the setting's id, or the type of that name in ``GET /definitions`` (read once);
2. before subscribing anyone, each address's statuses and opt-out of all email are read: this
   version of the API resubscribes an address that unsubscribed (``RESUBSCRIBE_OCCURRED``), so an
   address HubSpot holds as unsubscribed from the type, or from all email, is *kept* as it is:
   nothing resubscribes a contact who opted out in HubSpot (counted, not sent, not an error);
3. the rest is written with ``statuses/batch/write``, 100 a call; a call HubSpot refuses (400)
   is halved until the change at fault is alone, and that one is dead-lettered with HubSpot's
   answer. An unusable HubSpot raises, and the writer's round is undone as for every command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.hubspot_api import MAX_INPUTS, HubSpotApi
from handlers.hubspot_client import HubSpotError
from handlers.writer_plan import SubscriptionPlan

REFUSED = "HubSpot refused the subscription status change"


@dataclass
class Refusal:
    plan: SubscriptionPlan
    reason: str
    answer: dict[str, Any]
    status: int | None


@dataclass
class SubscriptionOutcome:
    """What became of each change: applied (by state), kept unsubscribed, or refused for good."""

    applied: list[SubscriptionPlan] = field(default_factory=list)
    kept: list[SubscriptionPlan] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass
class SubscriptionWriter:
    api: HubSpotApi
    _by_name: dict[str, int] | None = None

    async def apply(self, plans: list[SubscriptionPlan]) -> SubscriptionOutcome:
        outcome = SubscriptionOutcome()
        typed: list[tuple[SubscriptionPlan, int]] = []
        for plan in plans:
            type_id = await self._type_id(plan.command.subscription)
            if type_id is None:
                reason = "the HubSpot account has no subscription type of that name (the setting)"
                outcome.refused.append(Refusal(plan, reason, {}, None))
            else:
                typed.append((plan, type_id))
        subscribing = [
            (p.command.record.hubspot_value, t) for p, t in typed if p.command.state == "SUBSCRIBED"
        ]
        blocked, unanswered = await self._unsubscribed(subscribing) if subscribing else (set(), set())
        sending = []
        for plan, type_id in typed:
            address, subscribe = plan.command.record.hubspot_value, plan.command.state == "SUBSCRIBED"
            if subscribe and address in unanswered:
                reason = (
                    "HubSpot did not say whether the address unsubscribed: it is not subscribed unchecked"
                )
                outcome.refused.append(Refusal(plan, reason, {}, None))
            elif subscribe and (address.lower() in blocked or (address.lower(), type_id) in blocked):
                outcome.kept.append(plan)
            else:
                sending.append((plan, type_id))
        for start in range(0, len(sending), MAX_INPUTS):
            await self._write(sending[start : start + MAX_INPUTS], outcome)
        return outcome

    async def _type_id(self, setting: str) -> int | None:
        if setting.strip().isdigit():
            return int(setting)
        if self._by_name is None:
            found = await self.api.subscription_definitions()
            self._by_name = {str(d.get("name", "")).casefold(): int(d["id"]) for d in found
                             if str(d.get("id", "")).isdigit()}  # fmt: skip
        return self._by_name.get(setting.strip().casefold())

    async def _unsubscribed(self, wanted: list[tuple[str, int]]) -> tuple[set[Any], set[str]]:
        """The addresses opted out of all email and the (address, type) pairs unsubscribed; and the
        addresses HubSpot's answers left out (never subscribed unchecked)."""
        addresses = list(dict.fromkeys(a for a, _ in wanted))
        blocked: set[Any] = set()
        answered: dict[str, int] = {}
        for start in range(0, len(addresses), MAX_INPUTS):
            chunk = addresses[start : start + MAX_INPUTS]
            for result in (await self.api.opted_out_of_all(chunk)).results():
                address = str(result.get("subscriberIdString", "")).lower()
                answered[address] = answered.get(address, 0) + 1
                if any(w.get("status") == "UNSUBSCRIBED" for w in result.get("wideStatuses") or []):
                    blocked.add(address)
            for result in (await self.api.subscription_statuses(chunk)).results():
                address = str(result.get("subscriberIdString", "")).lower()
                answered[address] = answered.get(address, 0) + 1
                for status in result.get("statuses") or []:
                    if status.get("status") == "UNSUBSCRIBED":
                        blocked.add((address, int(status.get("subscriptionId", -1))))
        return blocked, {a for a in addresses if answered.get(a.lower(), 0) < 2}

    async def _write(self, chunk: list[tuple[SubscriptionPlan, int]], outcome: SubscriptionOutcome) -> None:
        inputs = [_input(plan, type_id) for plan, type_id in chunk]
        try:
            answer = await self.api.set_subscription_statuses(inputs)
        except HubSpotError as exc:
            if len(chunk) > 1:
                half = len(chunk) // 2
                await self._write(chunk[:half], outcome)
                await self._write(chunk[half:], outcome)
            else:
                outcome.refused.append(Refusal(chunk[0][0], REFUSED, exc.body, exc.status))
            return
        if answer.failed:  # 404/409 come back as answers
            for plan, _ in chunk:
                outcome.refused.append(Refusal(plan, REFUSED, answer.body, answer.status))
            return
        outcome.applied += [plan for plan, _ in chunk]


def _input(plan: SubscriptionPlan, type_id: int) -> dict[str, Any]:
    command = plan.command
    body: dict[str, Any] = {"subscriberIdString": command.record.hubspot_value, "channel": "EMAIL",
                            "statusState": command.state, "subscriptionId": type_id}  # fmt: skip
    if command.legal_basis is not None:
        body["legalBasis"] = command.legal_basis
        body["legalBasisExplanation"] = command.legal_basis_explanation or ""
    return body
