"""What travels on ``shopify.compliance``: one record per Shopify compliance webhook (SPEC G1).

Shopify's three mandatory compliance topics (shopify.dev, "Privacy law compliance",
docs/apps/build/compliance/privacy-law-compliance; help.shopify.com/api/guides/gdpr-resources):

- ``customers/data_request``: ``shop_id``, ``shop_domain``, ``customer {id, email, phone}``,
  ``orders_requested`` and ``data_request {id}``: the merchant asks for what the app holds;
- ``customers/redact``: ``shop_id``, ``shop_domain``, ``customer {id, email, phone}``,
  ``orders_to_redact``: erase that customer's personal data (sometimes the customer holds an
  email only, Shopify's page says);
- ``shop/redact``: ``shop_id``, ``shop_domain``, sent 48 hours after the app was uninstalled:
  erase the shop's data.

Unlike every other Shopify topic, the body is **not** stored as sent: the request names the very
customer it asks to forget, and a log kept for the record of requests must not keep the email or
phone that a redact erases. The record keeps the ids (Shopify's customer and order ids, which
the merchant's store issues) and, for the email and the phone, their pseudonyms only (keyed hashes,
``streams.privacy.pseudonym``): enough to find the customer's records, useless without the key.
Every other key of the body is dropped (a future API version's new field could be personal).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import LenientTimestamp, Timestamp

ComplianceTopic = Literal["customers/data_request", "customers/redact", "shop/redact"]
COMPLIANCE_TOPICS: tuple[ComplianceTopic, ...] = ("customers/data_request", "customers/redact", "shop/redact")


class ComplianceRequest(BaseModel):
    """One compliance webhook, its personal identifiers pseudonymised."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["compliance"] = "compliance"
    topic: ComplianceTopic
    shop_domain: str = Field(description="The shop the request is about (body, else the header).")
    shop_id: int | None = None
    webhook_id: str
    event_id: str
    triggered_at: LenientTimestamp = None
    api_version: str | None = None
    received_at: Timestamp
    customer_id: int | None = Field(None, description="Shopify's customer id, when the request names one.")
    email_pseudonym: str | None = Field(None, description="The customer's email, pseudonymised.")
    phone_pseudonym: str | None = Field(None, description="The customer's phone, pseudonymised.")
    orders: tuple[int, ...] = Field(
        (), description="orders_requested (data_request) or orders_to_redact (redact)."
    )
    data_request_id: int | None = Field(None, description="data_request.id (data requests only).")
