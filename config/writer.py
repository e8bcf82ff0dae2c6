"""The HubSpot writer: which account (base URL, token), its rate limit, batching and retries."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart


class WriterSettings(SettingsPart):
    """How the writer calls HubSpot. The token and base URL are also what replay and the
    account set-up use to reach the same account."""

    hubspot_rate_limit_per_10s: int = Field(
        100, ge=1, description="Requests per 10 s the writer allows itself until HubSpot's headers say "
        "otherwise (100: Free/Starter, 190: Professional/Enterprise)."
    )  # fmt: skip
    hubspot_max_in_flight: int = Field(
        8, ge=1, description="HubSpot calls the writer has in flight at once, within the rate limit: "
        "one at a time cannot use the limit when a call takes longer than the limit's spacing."
    )  # fmt: skip
    hubspot_timeout_s: float = Field(10.0, gt=0, description="Timeout of one HubSpot request.")
    writer_batch_window_ms: int = Field(
        300, ge=0, description="The longest a round gathers commands, from its first one: while commands "
        "keep coming a round stays open this long (up to SHOPSYNC_WRITER_MAX_BATCH), so under load the "
        "batches are full and a round's few calls carry many deliveries."
    )  # fmt: skip
    writer_idle_close_ms: int = Field(
        100, ge=0, description="A round closes this long after the last command came: at a low rate a "
        "command is written about this long after it arrives."
    )  # fmt: skip
    writer_linger_ms: int = Field(
        1000, ge=0, description="Under load, how long the part-filled last call of a kind of input may "
        "wait for the next round to fill it (a call costs the rate limit the same whatever it carries); "
        "at a low rate nothing waits. 0: never."
    )  # fmt: skip
    writer_max_batch: int = Field(
        5000, ge=1, description="Most commands in one round (50 full 100-input calls when every command is "
        "its own record)."
    )  # fmt: skip
    writer_retry_attempts: int = Field(6, ge=1, description="Tries of a request that meets 5xx or timeouts.")
    writer_link_wait_s: float = Field(
        120.0, ge=0, description="How long an association waits for an end the writer does not know "
        "(not in its id map, not held by it for a retry) before it is dead-lettered (and a line item for "
        "its product before it is written without one); keep it above twice "
        "the 60 s retry cap, since the end may be held for a retry by another writer of the group."
    )  # fmt: skip
    hubspot_pipeline_id: str = Field(
        "", description="The id of an existing deal pipeline to write deals to ('default': the account's "
        "default pipeline), instead of the one labelled SHOPSYNC_PIPELINE_LABEL, which the writer creates "
        "if it is missing and HubSpot lets it (Starter and above; on Free it uses the default pipeline). "
        "Either way its stages must include the six legacy stages, found by label."
    )  # fmt: skip
    writer_group_id: str = Field("", description="The writer's consumer group [default: '<app id>-writer'].")
    hubspot_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("HUBSPOT_TOKEN", "SHOPSYNC_HUBSPOT_TOKEN"),
        description="HubSpot private-app access token.",
    )
    hubspot_base_url: str = Field(
        "https://api.hubapi.com",
        validation_alias=AliasChoices("HUBSPOT_BASE_URL", "SHOPSYNC_HUBSPOT_BASE_URL"),
        description="HubSpot API base URL (the local sandbox's URL in development).",
    )
