"""X4 end to end, opt-in: Shopify email consent changes through the in-process pipeline (with
``sync_email_subscription`` set), then the writer over real HTTP into the sandbox's communication
preferences API, read from a real Kafka commands topic.

Three customers: one subscribes (with the configured legal basis), one subscribes then
unsubscribes, one subscribes in Shopify but had unsubscribed in HubSpot already: that one is kept
unsubscribed (the current API would resubscribe them; the writer never asks it to). Commands HubSpot
refuses, or that name no subscription type, are dead letters with the reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from config import Settings
from config.rules import RuleConfig
from devtools.samplestore import customer_body
from hubspot_sandbox import Sandbox
from hubspot_sandbox.subscriptions import DEFINITIONS
from schemas.commands import AnyCommand, SetSubscription
from streams.inprocess import InProcessPipeline
from streams.rules.keys import contact_ref
from tests.rules.test_consent import email_consent
from tests.rules.test_journeys import T0, delivery
from tests.writer.conftest import TOKEN, admin, write_all
from tests.writer.test_writer_faults import dead_letters

pytestmark = pytest.mark.kafka
MARKETING = int(DEFINITIONS[0]["id"])
CONFIG = RuleConfig(sync_email_subscription="Marketing Information", email_legal_basis="CONSENT_WITH_NOTICE")


def customer(customer_id: int, email: str, state: str, day: int) -> dict[str, Any]:
    at = T0 + timedelta(days=day)
    body = customer_body(customer_id, email, "Test", "Customer", T0, updated_at=at)
    body["email_marketing_consent"] = email_consent(state, at)
    return body


def consent_commands() -> list[Any]:
    pipeline = InProcessPipeline(config=CONFIG)
    for customer_id, email, state, day in [
        (1, "joins@example.test", "subscribed", 0),
        (2, "leaves@example.test", "subscribed", 0),
        (2, "leaves@example.test", "unsubscribed", 1),
        (3, "optedout@example.test", "subscribed", 0),
    ]:
        at = T0 + timedelta(days=day)
        pipeline.deliver(delivery("customers/update", customer(customer_id, email, state, day), at))
    assert not pipeline.dead_letters
    return pipeline.commands


async def statuses(sandbox: Sandbox) -> dict[str, tuple[str, str | None]]:
    dump = await admin(sandbox, "GET", "/_sandbox/dump")
    return {
        s["email"]: (s["status"], s["legalBasis"])
        for s in dump["subscriptions"]
        if s["subscriptionId"] == MARKETING
    }


async def test_x4_consent_changes_become_subscription_statuses_and_nobody_is_resubscribed(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    unsubscribed_in_hubspot = {"subscriberIdString": "optedout@example.test", "channel": "EMAIL",
                               "statusState": "UNSUBSCRIBED", "subscriptionId": MARKETING}  # fmt: skip
    async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        made = await http.post(
            "/communication-preferences/2026-03/statuses/batch/write",
            json={"inputs": [unsubscribed_in_hubspot]},
        )
        assert made.status_code == 200
    commands = consent_commands()
    assert [c.state for c in commands if isinstance(c, SetSubscription)] == [
        "SUBSCRIBED", "SUBSCRIBED", "UNSUBSCRIBED", "SUBSCRIBED",
    ]  # fmt: skip
    stats = await write_all(writer_settings, commands)
    assert stats.dead_lettered == 0
    assert await statuses(sandbox) == {
        "joins@example.test": ("SUBSCRIBED", "CONSENT_WITH_NOTICE"),
        "leaves@example.test": ("UNSUBSCRIBED", "CONSENT_WITH_NOTICE"),
        "optedout@example.test": ("UNSUBSCRIBED", None),  # as HubSpot held it: not resubscribed
    }
    assert stats.kept_unsubscribed == 1
    assert stats.subscribed + stats.unsubscribed in (2, 3)  # leaves@'s two may share a round (last wins)


async def test_x4_a_subscription_type_hubspot_lacks_is_a_dead_letter_with_the_reason(
    writer_settings: Settings, sandbox: Sandbox
) -> None:
    ref = contact_ref("someone@example.test")
    commands: list[AnyCommand] = [
        SetSubscription(record=ref, subscription="Weekly Newsletter", state="UNSUBSCRIBED"),
        SetSubscription(record=contact_ref("other@example.test"), subscription="123", state="UNSUBSCRIBED"),
        SetSubscription(
            record=contact_ref("fine@example.test"), subscription=str(MARKETING), state="UNSUBSCRIBED"
        ),
    ]
    stats = await write_all(writer_settings, commands)
    assert stats.dead_lettered == 2 and stats.unsubscribed == 1
    letters = await dead_letters(writer_settings)
    reasons = {letter["command"]["subscription"]: letter for letter in letters}
    assert "no subscription type" in reasons["Weekly Newsletter"]["reason"]
    assert reasons["123"]["status"] == 400 and reasons["123"]["category"] == "VALIDATION_ERROR"
    assert await statuses(sandbox) == {"fine@example.test": ("UNSUBSCRIBED", None)}
