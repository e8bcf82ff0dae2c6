"""Privacy (SPEC G1): the secret pseudonyms and key ids are keyed with, whether personal values are
sealed (crypto-shredding), and where compliance reports are written."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field, SecretStr

from config.base import SettingsPart

PSEUDONYM_CONTEXT = b"shopsync pseudonym v1"
"""What a pseudonym key derived from the Shopify secret is labelled with, so it is never the
webhook secret itself (a leaked pseudonym key must not sign webhooks)."""


G1_OFF: Mapping[str, Any] = {"seal_personal_data": False, "redactable": False}
"""G1's two settings off: nothing sealed, contacts keyed by email. What the tests of anything but
privacy and the benchmark figures run with (they read the plain records they write, and issue 11's
figures are defined without G1); never a deployment's setting (both are on by default)."""


class PrivacySettings(SettingsPart):
    """Shopify's compliance webhooks: how the personal identifiers they carry are pseudonymised."""

    privacy_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPSYNC_PRIVACY_SECRET"),
        description="The key of the pseudonyms (keyed hashes) that stand for a customer's email and "
        "phone on shopify.compliance; empty: derived from the first SHOPIFY_WEBHOOK_SECRETS entry.",
    )
    seal_personal_data: bool = Field(
        True,
        description="G1, crypto-shredding (step 3 of its wiring): the bridge and the importers seal "
        "a delivery's personal values under its customer's key on privacy.keys before they append "
        "it, and the worker and replay open them where a body is parsed. Off: nothing is sealed, "
        "and a sealed record met is dead-lettered (no keys to open it).",
    )
    redactable: bool = Field(
        True,
        description="G1 redact, wiring step 2: every Kafka key, table key, natural key "
        "and id map key that is a customer's email today is the email's pseudonym instead (the email "
        "still reaches HubSpot as the contact's `email` property). Changes every contact key: set it on "
        "a fresh deployment (or replay into one), never flip it under a running one.",
    )
    redact_hubspot: bool = Field(
        False,
        description="G1: a customers/redact also permanently deletes the customer's HubSpot contact "
        "(HubSpot's GDPR delete, by the id in the writer's id map), once their keys are shredded. "
        "Off: HubSpot's records are the merchant's and are left as they are. Needs HUBSPOT_TOKEN "
        "(crm.objects.contacts.write) in the redactor.",
    )
    compliance_dir: str = Field(
        ".local/compliance",
        description="Where `shopsync compliance report` writes one JSON report per data request.",
    )

    def pseudonym_key(self, shopify_secrets: list[bytes]) -> bytes:
        """The key pseudonyms are made with: ``SHOPSYNC_PRIVACY_SECRET`` if set, else one derived
        from the first Shopify secret. Rotating that secret (with the derived key) changes every
        pseudonym, so a deployment that rotates sets its own ``SHOPSYNC_PRIVACY_SECRET``."""
        own = self.privacy_secret.get_secret_value().encode()
        if own:
            return own
        if not shopify_secrets:
            raise ValueError("no SHOPSYNC_PRIVACY_SECRET and no SHOPIFY_WEBHOOK_SECRETS to derive it from")
        return hmac.new(shopify_secrets[0], PSEUDONYM_CONTEXT, hashlib.sha256).digest()
