"""``shopsync hubspot add-stages``: on a Free account (no new pipelines) the operator adds the
legacy stages to the default pipeline, and the writer's set-up then finds every one by label."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from handlers.account_setup import AccountSetupError, add_missing_stages, ensure_pipeline
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotClient
from hubspot_sandbox import SandboxConfig, running_sandbox
from shopsync.cli import main
from streams.rules.journeys import STAGES

TOKEN = "add-stages-token"


async def test_a_free_account_gets_the_stages_once_and_the_writer_uses_its_default_pipeline(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(db_path=tmp_path / "free.db", token=SecretStr(TOKEN), tier="free")
    async with running_sandbox(config) as sandbox:
        api = HubSpotApi(HubSpotClient(sandbox.url, TOKEN))
        try:
            with pytest.raises(AccountSetupError, match="add-stages --pipeline default"):
                await ensure_pipeline(api, "Ecommerce Pipeline")  # refused to create; stages missing
            assert await add_missing_stages(api) == list(STAGES)
            assert await add_missing_stages(api) == [], "a second run adds nothing"
            schema = await ensure_pipeline(api, "Ecommerce Pipeline")
            assert schema.pipeline_id == "default" and set(schema.stage_ids) == set(STAGES)
            [pipeline] = await api.pipelines()
            assert len(pipeline["stages"]) == 7 + len(STAGES), "HubSpot's own seven stay"
            with pytest.raises(AccountSetupError, match="no deal pipeline"):
                await add_missing_stages(api, "nope")
        finally:
            await api.close()


async def test_the_command_reports_what_it_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = SandboxConfig(db_path=tmp_path / "free.db", token=SecretStr(TOKEN), tier="free")
    async with running_sandbox(config) as sandbox:
        monkeypatch.setenv("HUBSPOT_BASE_URL", sandbox.url)
        monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
        result = await asyncio.to_thread(CliRunner().invoke, main, ["hubspot", "add-stages"])
        assert result.exit_code == 0, result.output
        assert f"added {len(STAGES)} stages to pipeline default" in result.output
