"""The initial import: the Shopify Admin API token it reads the store with."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart


class ImporterSettings(SettingsPart):
    """``shopsync import``'s access to the store (nothing else reads the Admin API)."""

    shopify_admin_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPIFY_ADMIN_TOKEN", "SHOPSYNC_SHOPIFY_ADMIN_TOKEN"),
        description="Admin API access token of the Shopify app (initial import only).",
    )
