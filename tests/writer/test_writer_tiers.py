"""The writer on every HubSpot tier: the same store reaches the same account on a Free account
(no pipeline of its own: HubSpot lets only Starter and above create one) as on Professional.

The sandbox's ``tier`` setting refuses pipeline creation on Free as HubSpot does; the operator
adds the six stages to the default pipeline first (in HubSpot's UI, or with ``shopsync hubspot
add-stages``: both are tested, the first here, the second in ``test_add_stages.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from config import Settings
from handlers.account_fold import fold
from hubspot_sandbox import Sandbox, SandboxConfig, running_sandbox
from hubspot_sandbox.tiers import Tier
from streams.rules.journeys import STAGES
from tests.writer.conftest import TOKEN, admin, agrees, held, store_commands, write_all

pytestmark = pytest.mark.kafka

PROBABILITY = {"Checkout Pending": "0.1", "Checkout Abandoned": "0.1", "Checkout Completed": "0.9",
               "Processed": "1.0", "Shipped": "1.0", "Cancelled": "0.0"}  # fmt: skip


def add_stages_in_hubspots_ui(sandbox: Sandbox, pipeline_id: str) -> None:
    """What the operator does on a Free account, as the writer's message says: add the six stages
    to the default pipeline (Settings > Objects > Deals > Pipelines). The test writes them into
    the sandbox's store as the UI would leave them (numeric ids, after HubSpot's own stages), so
    the writer meets stages it did not make."""

    def insert(conn: Any) -> None:
        for order, label in enumerate(STAGES, start=100):
            closed = "true" if PROBABILITY[label] in ("0.0", "1.0") else "false"
            metadata = json.dumps({"isClosed": closed, "probability": PROBABILITY[label]})
            conn.execute(
                "INSERT INTO stages (id, pipeline_id, label, display_order, metadata, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, 0, 0)",
                (str(9000 + order), pipeline_id, label, order, metadata),
            )

    sandbox.state.store.run(insert)


async def write_store(settings: Settings, tmp_path: Path, tier: Tier) -> dict[str, Any]:
    config = SandboxConfig(db_path=tmp_path / f"{tier}.db", token=SecretStr(TOKEN), tier=tier)
    async with running_sandbox(config) as sandbox:
        if tier == "free":
            add_stages_in_hubspots_ui(sandbox, "default")
        update = {
            "hubspot_base_url": sandbox.url,
            "hubspot_token": SecretStr(TOKEN),
            "writer_batch_window_ms": 200,
            "topic_prefix": f"{settings.topic_prefix}{tier}.",
            "app_id": f"{settings.app_id}-{tier}",
        }
        stats = await write_all(settings.model_copy(update=update), COMMANDS)
        assert stats.dead_lettered == 0, tier
        dump: dict[str, Any] = await admin(sandbox, "GET", "/_sandbox/dump")
        return dump


COMMANDS = store_commands(customers=8, seed=5)


async def test_a_free_account_gets_the_same_account_as_professional_in_its_default_pipeline(
    settings: Settings, tmp_path: Path
) -> None:
    free = await write_store(settings, tmp_path, "free")
    professional = await write_store(settings, tmp_path, "professional")
    assert [p["label"] for p in free["pipelines"]] == ["Sales Pipeline"], "no pipeline created on Free"
    assert {d["pipeline_label"] for d in free["deals"]} == {"Sales Pipeline"}
    assert {d["pipeline_label"] for d in professional["deals"]} == {"Ecommerce Pipeline"}
    expected = fold(COMMANDS)
    assert not agrees(expected, held(professional))
    for props in [p for (t, _), p in expected.records.items() if t == "deals"]:
        props["pipeline"] = "Sales Pipeline"  # the only difference: the pipeline it lives in
    assert not agrees(expected, held(free))
    assert {d["stage_label"] for d in free["deals"]} == {d["stage_label"] for d in professional["deals"]}
