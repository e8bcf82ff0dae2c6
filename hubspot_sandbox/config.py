"""The sandbox's settings: one immutable object, so a test states its whole HubSpot in one place.

Faults and the 10-second limit can be changed at runtime (``POST /_sandbox/faults``); those live
in the running sandbox, and this object only seeds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hubspot_sandbox.tiers import TIER_LIMITS, Tier


class SandboxConfig(BaseModel):
    """Settings of one sandbox. ``token`` and ``webhook_secret`` are ``SecretStr`` and validation
    errors hide their input, so neither secret shows up in a repr, a log line or an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    db_path: Path = Field(description="SQLite file; created when missing, reused (restart keeps data).")
    token: SecretStr = Field(description="The one bearer token /crm/* accepts (a private-app token).")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    tier: Tier = Field(
        default="professional",
        description="The account's subscription: sets the rate limits and whether pipelines can be made.",
    )
    rate_limit_per_10s: int | None = Field(default=None, ge=0, description="Overrides the tier burst limit.")
    rate_limit_daily: int | None = Field(default=None, ge=0, description="Overrides the tier's daily limit.")
    webhook_url: str | None = Field(default=None, description="Where contact.deletion webhooks go.")
    webhook_secret: SecretStr = Field(default=SecretStr(""), description="The app secret that signs them.")
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_backoff_s: float = Field(default=0.2, ge=0, description="First retry delay; doubles each time.")
    fault_5xx_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    batch_error_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of batch inputs that fail on their own (a 207)."
    )
    batch_error_category: Literal["INTERNAL_ERROR", "VALIDATION_ERROR"] = Field(
        default="INTERNAL_ERROR", description="What those inputs answer: transient, or a final refusal."
    )
    time_zone: str = Field(
        default="US/Eastern",
        description="The account's time zone (IANA name): the daily limit resets at its midnight.",
    )
    fault_seed: int | None = Field(default=None, description="Seed of the fault dice, for repeatable runs.")
    gdpr_enabled: bool = Field(
        default=False, description="GDPR features on: a subscription status change needs a legalBasis."
    )
    portal_id: int = Field(default=62515, ge=1)
    app_id: int = Field(default=1160452, ge=1)

    @property
    def burst_limit(self) -> int:
        """Requests per rolling 10 seconds: the override, else what HubSpot gives the tier."""
        return TIER_LIMITS[self.tier].per_10s if self.rate_limit_per_10s is None else self.rate_limit_per_10s

    @property
    def daily_limit(self) -> int:
        return TIER_LIMITS[self.tier].daily if self.rate_limit_daily is None else self.rate_limit_daily

    @model_validator(mode="after")
    def _webhooks_need_a_secret(self) -> SandboxConfig:
        """An unsigned webhook would teach the receiver to skip verification, so refuse it."""
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook_url needs a webhook_secret (the app secret that signs deliveries)")
        if not self.token.get_secret_value():
            raise ValueError("token must not be empty")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone") from None
        return self
