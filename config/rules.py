"""The rules' settings (W4: every delay configurable; P5: the variant switch).

``RuleConfig`` is what the pure rules take (a plain frozen model, no environment); ``RuleSettings``
reads the same fields from the environment and hands them over with ``rule_config()``, a plain
``RuleConfig``, so the rules never hold the services' settings (or their secrets). The one secret
the rules are given, ``RuleConfig.contact_pseudonym_key`` (G1, ``SHOPSYNC_REDACTABLE``), is not
an environment setting of its own: ``config.Settings.rule_config`` derives it from
``SHOPSYNC_PRIVACY_SECRET``, so the rules stay pure functions of what they are handed.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field, SecretBytes, field_validator

from config.base import SettingsPart

CommerceObject = Literal["deals", "orders"]
COMMERCE_MODES = ("deals", "orders", "deals,orders")
"""X1: what a purchase journey becomes in HubSpot: deals (the legacy ecommerce pipeline, D1-D7),
HubSpot's Orders and Carts, or both."""


def shop_key_prefix(shop_domain: str) -> str:
    """X3: a non-primary shop's key prefix (a domain holds no '/', so the prefix cannot be part
    of a key of the primary shop: ``cart:<token>``, ``product:<id>``, a company id)."""
    return f"{shop_domain.strip().lower()}/"


LegalBasis = Literal[
    "CONSENT_WITH_NOTICE", "LEGITIMATE_INTEREST_CLIENT", "LEGITIMATE_INTEREST_OTHER",
    "LEGITIMATE_INTEREST_PQL", "NON_GDPR", "PERFORMANCE_OF_CONTRACT", "PROCESS_AND_STORE",
]  # fmt: skip
"""HubSpot's legal bases for a subscription status change (communication preferences API)."""


class RuleFields(BaseModel, frozen=True):
    """Every delay of the rules (W4: all configurable) and the variant switch (P5): what the
    environment sets. (Frozen by a class argument, so ``RuleSettings`` can add the environment's
    settings config beside it.)"""

    abandon_after: timedelta = Field(
        timedelta(minutes=15),
        description="A checkout with an email, neither completed nor updated for this long, is abandoned.",
    )
    abandoned_cart_delay: timedelta = Field(
        timedelta(hours=24), description="W2: the abandoned-cart trigger fires this long after abandonment."
    )
    pending_cleanup_after: timedelta = Field(
        timedelta(hours=48), description="D4: a pending deal never promoted to abandoned leaves the pipeline."
    )
    reengage_after: timedelta = Field(
        timedelta(days=90), description="W3: re-engagement fires this long after a contact's last purchase."
    )
    dedupe_ttl: timedelta = Field(
        timedelta(hours=48),
        description="How long (in event time) a delivery's event id is remembered to drop duplicates; "
        "longer than Shopify's 4-hour retry window.",
    )
    trigger_grace: timedelta = Field(
        timedelta(hours=24),
        description="A trigger found due longer ago than this (records from the initial import, a worker "
        "that was down for days) is recorded but not written, so nobody is emailed about a stale cart.",
    )
    sync_variants: bool = Field(True, description="P5: sync product variants as HubSpot products.")
    pipeline_label: str = Field("Ecommerce Pipeline", description="The deal pipeline the product writes to.")
    commerce_objects: str = Field(
        "deals",
        description="X1: `deals` (the legacy ecommerce pipeline), `orders` (HubSpot Orders for orders, "
        "Carts for abandoned checkouts) or `deals,orders` (both).",
    )
    order_pipeline_label: str = Field(
        "Order Pipeline",
        description="X1: the order pipeline the product writes Orders to (HubSpot's default).",
    )
    primary_shop: str | None = Field(
        None,
        description="X3: the shop whose records keep the single-shop keys (every other shop's keys "
        "are prefixed with its domain); none: every shop keeps them (a single-shop deployment). "
        "Settings default it to the first shop given its own secret in SHOPIFY_WEBHOOK_SECRETS.",
    )

    @field_validator("primary_shop", mode="before")
    @classmethod
    def _shop_domain(cls, value: object) -> object:
        """A shop domain in lower case; empty means none."""
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    def key_prefix(self, shop_domain: str | None) -> str:
        """X3: what a shop's natural keys (and Kafka keys) start with: nothing for the primary
        shop, for a record without a shop, and in a single-shop deployment (no primary shop), so
        those keys stay byte for byte what they were; ``<domain>/`` for any other shop."""
        shop = (shop_domain or "").strip().lower()
        if self.primary_shop is None or not shop or shop == self.primary_shop:
            return ""
        return shop_key_prefix(shop)

    @property
    def several_shops(self) -> bool:
        """X3: whether shops are told apart (a primary shop is set): contacts then list theirs."""
        return self.primary_shop is not None

    sync_email_subscription: str = Field(
        "",
        description="X4: off when blank, the default (nothing subscribes or unsubscribes anyone in "
        "HubSpot). A HubSpot subscription type (its id, or its name as the account lists it): a "
        "Shopify email consent that becomes `unsubscribed` unsubscribes the contact from it, one that "
        "becomes `subscribed` subscribes them (only with `email_legal_basis` set, and never a contact "
        "unsubscribed in HubSpot).",
    )
    email_legal_basis: LegalBasis | Literal[""] = Field(
        "",
        description="X4: the legal basis HubSpot records for a subscription (`CONSENT_WITH_NOTICE`, ...); "
        "without it no one is subscribed.",
    )
    email_legal_basis_explanation: str = Field(
        "Email marketing consent given in the Shopify store",
        description="X4: the explanation HubSpot records beside the legal basis.",
    )

    @field_validator("sync_email_subscription", "email_legal_basis", mode="before")
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        """Blank (the default) is off: nothing is subscribed or unsubscribed in HubSpot."""
        return value.strip() if isinstance(value, str) else value

    @field_validator("commerce_objects", mode="before")
    @classmethod
    def _commerce_mode(cls, value: object) -> object:
        """``deals``, ``orders`` or both, in any order and case (``orders, deals`` is ``deals,orders``)."""
        if not isinstance(value, str):
            return value
        parts = sorted({p.strip().lower() for p in value.split(",") if p.strip()})
        mode = ",".join(parts)
        if mode not in COMMERCE_MODES:
            raise ValueError(f"commerce objects must be one of {', '.join(COMMERCE_MODES)}, not {value!r}")
        return mode

    def writes(self, kind: CommerceObject) -> bool:
        """Whether journeys become HubSpot objects of ``kind`` (deals; orders and carts)."""
        return kind in self.commerce_objects.split(",")


class RuleConfig(RuleFields, frozen=True):
    """What the pure rules take: the environment's fields, and the key of the contact pseudonyms."""

    contact_pseudonym_key: SecretBytes | None = Field(
        None,
        exclude=True,
        description="G1, wiring step 2 (``SHOPSYNC_REDACTABLE``): set, a contact is keyed by its "
        "email's pseudonym (``streams.privacy.pseudonym`` under this key) in every Kafka key, table "
        "key, natural key and id map key; None (the default): by the email, as before.",
    )

    @property
    def redactable(self) -> bool:
        """Whether contacts are keyed by their email's pseudonym (G1, ``SHOPSYNC_REDACTABLE``)."""
        return self.contact_pseudonym_key is not None

    def fingerprint(self) -> str:
        """A short digest of the rule settings (the pseudonym key is excluded from the dump): what
        a stored state's due time was worked out under (``streams.partition_time.due_stamp``), so
        a changed delay is never read from a stamp made under the old one."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class RuleSettings(SettingsPart, RuleFields):
    """``RuleConfig``'s fields read from the environment (``SHOPSYNC_ABANDON_AFTER`` and so on);
    durations are seconds or ISO 8601 (``900``, ``PT15M``, ``P90D``)."""

    @field_validator(
        "abandon_after", "abandoned_cart_delay", "pending_cleanup_after", "reengage_after", "dedupe_ttl",
        "trigger_grace", mode="before",
    )  # fmt: skip
    @classmethod
    def _seconds_or_iso_duration(cls, value: object) -> object:
        """Durations are seconds ("900") or ISO 8601 ("PT15M", "P90D")."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    def rule_config(self) -> RuleConfig:
        """The rules' settings (W4: every delay configurable): the fields both classes share."""
        return RuleConfig(**{name: getattr(self, name) for name in RuleFields.model_fields})
