"""What a HubSpot subscription tier changes for the API the writer uses: the private-app rate
limits, and whether the account may create deal pipelines beyond its default one.

Sources (see RULES.md):

- Rate limits per tier, private apps: "API usage guidelines and limits",
  https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (table "Per 10
  Seconds / Per Day": Free and Starter 100 / 250,000; Professional 190 / 625,000; Enterprise 190 /
  1,000,000), the same figures on the private apps overview,
  https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview.
- Pipelines: "Accounts with a Starter, Professional, or Enterprise subscription can create
  additional pipelines", https://developers.hubspot.com/docs/api/crm/pipelines (Create a pipeline).
- Search: "the search endpoints are rate limited to five requests per second per account",
  https://developers.hubspot.com/docs/api-reference/search/guide#limitations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tier = Literal["free", "starter", "professional", "enterprise"]
TIERS: tuple[Tier, ...] = ("free", "starter", "professional", "enterprise")


@dataclass(frozen=True)
class TierLimits:
    per_10s: int  # burst limit of one private app, rolling 10 seconds
    daily: int  # requests a day for the whole account; resets at the account's midnight
    creates_pipelines: bool  # may POST /crm/v3/pipelines/deals


TIER_LIMITS: dict[Tier, TierLimits] = {
    "free": TierLimits(per_10s=100, daily=250_000, creates_pipelines=False),
    "starter": TierLimits(per_10s=100, daily=250_000, creates_pipelines=True),
    "professional": TierLimits(per_10s=190, daily=625_000, creates_pipelines=True),
    "enterprise": TierLimits(per_10s=190, daily=1_000_000, creates_pipelines=True),
}

SEARCH_PER_SECOND = 5
"""Search requests an account may make per second, whatever its tier."""
