"""The initial import: the Shopify Admin API token(s) it reads the stores with."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart
from config.bridge import shop_entries


class ImporterSettings(SettingsPart):
    """``shopsync import``'s access to the stores (nothing else reads the Admin API)."""

    shopify_admin_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPIFY_ADMIN_TOKEN", "SHOPSYNC_SHOPIFY_ADMIN_TOKEN"),
        description="Admin API access token of the Shopify app (initial import only); X3: "
        "comma-separated 'shop.myshopify.com=token' entries for several shops (a bare token is for "
        "every shop without one of its own).",
    )

    def admin_token(self, shop_domain: str) -> str:
        """The token to import ``shop_domain`` with: its own, else the one for every shop; empty
        when neither is configured."""
        wanted = shop_domain.strip().lower()
        entries = shop_entries(self.shopify_admin_token.get_secret_value())
        own = [token for shop, token in entries if shop == wanted]
        shared = [token for shop, token in entries if shop is None]
        return ((own or shared or [b""])[0]).decode()
