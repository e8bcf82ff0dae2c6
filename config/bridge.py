"""The webhook bridge: where it listens, how long it waits for Kafka, the secrets it checks."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart

ENVELOPE_RESERVE_BYTES = 16 * 1024
"""Room in a delivery envelope beside the body: Shopify's headers and the receive time."""


class BridgeSettings(SettingsPart):
    """The bridge's listener and the signatures it verifies (Shopify's HMAC, HubSpot's v3)."""

    bridge_host: str = Field(
        "127.0.0.1", description="Address the bridge listens on (0.0.0.0 in a container)."
    )
    bridge_port: int = Field(8080, ge=0, le=65535, description="Port the bridge listens on.")
    bridge_append_timeout_s: float = Field(
        3.0, gt=0, description="How long the bridge waits for Kafka's acknowledgement before answering "
        "503 (Shopify allows 5 s in all)."
    )  # fmt: skip
    bridge_public_url: str = Field(
        "", description="The bridge's public base URL as HubSpot calls it (for HubSpot's v3 signature, "
        "which covers the URL); empty: the URL of the request as received."
    )  # fmt: skip
    simulation_mode: bool = Field(
        False, description="Simulation only: the bridge takes a delivery's received-at from the "
        "X-Shopsync-Simulated-Received-At header. Never set in production."
    )  # fmt: skip
    hubspot_app_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("HUBSPOT_APP_SECRET", "SHOPSYNC_HUBSPOT_APP_SECRET"),
        description="The HubSpot app's client secret, which signs its webhooks (v3).",
    )
    shopify_webhook_secrets: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPIFY_WEBHOOK_SECRETS", "SHOPSYNC_SHOPIFY_WEBHOOK_SECRETS"),
        description="Shopify app client secret(s), comma-separated to allow rotation.",
    )

    def webhook_secrets(self) -> list[bytes]:
        """The configured Shopify secrets, newest first as given."""
        raw = self.shopify_webhook_secrets.get_secret_value()
        return [s.strip().encode() for s in raw.split(",") if s.strip()]
