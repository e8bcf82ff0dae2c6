"""The webhook bridge: where it listens, how long it waits for Kafka, the secrets it checks."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart

ENVELOPE_RESERVE_BYTES = 16 * 1024
"""Room in a delivery envelope beside the body: Shopify's headers and the receive time."""


_SHOP_ENTRY = re.compile(r"^([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+)=(.+)$", re.IGNORECASE)
"""``shop.myshopify.com=secret``: a secret for one shop (the left side must look like a domain, so
a bare secret with '=' in it, base64 padding say, stays a secret for every shop)."""


def shop_entries(configured: str) -> list[tuple[str | None, bytes]]:
    """(shop domain or None for every shop, secret) of a comma-separated list of secrets, each
    bare or ``shop.myshopify.com=secret``, in the order given."""
    entries: list[tuple[str | None, bytes]] = []
    for item in configured.split(","):
        item = item.strip()
        if not item:
            continue
        shop = _SHOP_ENTRY.match(item)
        if shop is None:
            entries.append((None, item.encode()))
        else:
            entries.append((shop.group(1).lower(), shop.group(2).strip().encode()))
    return entries


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
        description="Shopify app client secret(s), comma-separated to allow rotation; "
        "'shop.myshopify.com=secret' for a secret only that shop's deliveries may be signed with.",
    )

    def _secret_entries(self) -> list[tuple[str | None, bytes]]:
        """(shop domain or None for every shop, secret), in the order given."""
        return shop_entries(self.shopify_webhook_secrets.get_secret_value())

    def webhook_secrets(self, shop_domain: str | None = None) -> list[bytes]:
        """The Shopify secrets that may sign a delivery of ``shop_domain`` (X3: several shops in
        one deployment): the ones given for that shop and the ones given for every shop (one app
        installed on several shops signs with its one client secret; a custom app per shop, with
        its own). None: every configured secret. A shop with none of its own, when only per-shop
        secrets are configured, has no secret: its deliveries are refused."""
        wanted = None if shop_domain is None else shop_domain.strip().lower()
        return [secret for shop, secret in self._secret_entries() if wanted is None or shop in (None, wanted)]

    def first_webhook_shop(self) -> str | None:
        """The first shop given a secret of its own, as listed (X3's default primary shop)."""
        return next((shop for shop, _ in self._secret_entries() if shop is not None), None)

    def webhook_shops(self) -> list[str]:
        """The shops given secrets of their own, as configured."""
        return sorted({shop for shop, _ in self._secret_entries() if shop is not None})
