"""X4: Shopify's email and SMS marketing consent, synced as contact properties, as Shopify holds them.

Shopify keeps one consent record per channel on the customer (``email_marketing_consent``,
``sms_marketing_consent``: state, opt-in level, when it was updated, and for SMS where it was
collected), and says the customer's consent "reflects the consent record with the most recent
``consent_updated_at``; if no date is provided, the date at which the consent information was
sent is used" (Admin API, CustomerEmailMarketingConsentState). So here each channel's properties
follow the consent with the newest ``consent_updated_at``, else the time of the customer version
that carried it (its ``updated_at``, the nested customer's in an order or checkout too), never the
order in which webhooks arrived: a late delivery of an older consent rolls nothing back.

- A channel's object given as ``null`` or left out says nothing (Shopify sends ``null`` for a
  customer without an email or a phone; a nested customer may leave it out).
- Inside the object, a field it carries is written as it is, ``null`` included (a cleared opt-in
  level clears the property); a field it leaves out, or that did not fit (a reported field
  problem, SPEC R1), changes nothing.
- The legacy fields (``accepts_marketing``, ``accepts_marketing_updated_at``,
  ``marketing_opt_in_level``, deprecated in API 2022-04) give the email channel only when the
  version has no ``email_marketing_consent``: ``true`` is ``subscribed`` and ``false``
  ``not_subscribed`` (the boolean cannot tell a withdrawn consent from one never given). At the
  same instant a version with the newer object wins over a legacy one.
- By default nothing here subscribes or unsubscribes anyone in HubSpot: the properties are the
  project's own (``shopify_*``), not HubSpot's subscription types or ``hs_email_optout``. Only
  with ``sync_email_subscription`` set does a change of the email state emit a
  :class:`~schemas.commands.SetSubscription` (:func:`subscription_changes`): ``unsubscribed``
  unsubscribes the address from that subscription type; ``subscribed`` subscribes it only when a
  legal basis is configured too (HubSpot records it with the status); the writer never resubscribes
  an address HubSpot holds as unsubscribed. Other states (``not_subscribed``, ``pending``,
  ``redacted``, ``invalid``) change nothing in HubSpot.

Each consent is dated by a :class:`Version` whose ``updated_at`` is the consent's instant and whose
``digest`` orders ties: the kind (newer object before legacy), then the carrying version's own
instant and digest, so every arrival order of the same versions ends with the same properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from config.rules import RuleConfig
from schemas.commands import PropertyValue, RecordRef, SetSubscription
from schemas.shopify import CustomerBase, ShopifyModel
from schemas.types import (
    ConsentCollectedFrom,
    EmailMarketingState,
    MarketingOptInLevel,
    SmsMarketingState,
)
from streams.mapping import PropertyType, format_value
from streams.rules.common import Version
from streams.rules.keys import contact_ref

EMAIL_STATE = "shopify_email_marketing_consent_state"
EMAIL_OPT_IN_LEVEL = "shopify_email_marketing_opt_in_level"
EMAIL_UPDATED_AT = "shopify_email_marketing_consent_updated_at"
SMS_STATE = "shopify_sms_marketing_consent_state"
SMS_OPT_IN_LEVEL = "shopify_sms_marketing_opt_in_level"
SMS_UPDATED_AT = "shopify_sms_marketing_consent_updated_at"
SMS_COLLECTED_FROM = "shopify_sms_marketing_consent_collected_from"


@dataclass(frozen=True)
class ConsentProperty:
    """One consent property: its HubSpot name and label, the Shopify field it holds, its type and,
    for an enumeration, every value Shopify documents (label, value)."""

    name: str
    label: str
    source: str
    type: PropertyType
    options: tuple[tuple[str, str], ...] = ()


STATE_LABELS = {"subscribed": "Subscribed", "not_subscribed": "Not subscribed",
                "unsubscribed": "Unsubscribed", "pending": "Pending", "redacted": "Redacted",
                "invalid": "Invalid"}  # fmt: skip
LEVEL_LABELS = {"single_opt_in": "Single opt-in", "confirmed_opt_in": "Confirmed opt-in",
                "unknown": "Unknown"}  # fmt: skip
COLLECTED_LABELS = {"SHOPIFY": "Shopify", "OTHER": "Other"}

EMAIL_STATES = tuple((STATE_LABELS[m.value], m.value) for m in EmailMarketingState)
SMS_STATES = tuple((STATE_LABELS[m.value], m.value) for m in SmsMarketingState)
LEVELS = tuple((LEVEL_LABELS[m.value], m.value) for m in MarketingOptInLevel)
COLLECTED_FROM = tuple((COLLECTED_LABELS[m.value], m.value) for m in ConsentCollectedFrom)

CONSENT_PROPERTIES: tuple[ConsentProperty, ...] = (
    ConsentProperty(EMAIL_STATE, "Shopify email marketing consent", "email_marketing_consent.state",
                    "enumeration", EMAIL_STATES),
    ConsentProperty(EMAIL_OPT_IN_LEVEL, "Shopify email marketing opt-in level",
                    "email_marketing_consent.opt_in_level", "enumeration", LEVELS),
    ConsentProperty(EMAIL_UPDATED_AT, "Shopify email marketing consent updated at",
                    "email_marketing_consent.consent_updated_at", "datetime"),
    ConsentProperty(SMS_STATE, "Shopify SMS marketing consent", "sms_marketing_consent.state",
                    "enumeration", SMS_STATES),
    ConsentProperty(SMS_OPT_IN_LEVEL, "Shopify SMS marketing opt-in level",
                    "sms_marketing_consent.opt_in_level", "enumeration", LEVELS),
    ConsentProperty(SMS_UPDATED_AT, "Shopify SMS marketing consent updated at",
                    "sms_marketing_consent.consent_updated_at", "datetime"),
    ConsentProperty(SMS_COLLECTED_FROM, "Shopify SMS marketing consent collected from",
                    "sms_marketing_consent.consent_collected_from", "enumeration", COLLECTED_FROM),
)  # fmt: skip
"""The seven contact properties of X4 (the account set-up defines them, the README lists them)."""

_EMAIL_FIELDS = {"state": EMAIL_STATE, "opt_in_level": EMAIL_OPT_IN_LEVEL,
                 "consent_updated_at": EMAIL_UPDATED_AT}  # fmt: skip
_SMS_FIELDS = {"state": SMS_STATE, "opt_in_level": SMS_OPT_IN_LEVEL, "consent_updated_at": SMS_UPDATED_AT,
               "consent_collected_from": SMS_COLLECTED_FROM}  # fmt: skip
_LEGACY_FIELDS = {"accepts_marketing": EMAIL_STATE, "marketing_opt_in_level": EMAIL_OPT_IN_LEVEL,
                  "accepts_marketing_updated_at": EMAIL_UPDATED_AT}  # fmt: skip

NEWER, LEGACY = "1", "0"
"""Tie-break ranks of the two kinds of email consent at one instant (compared as text)."""

Consent = tuple[Version, dict[str, PropertyValue]]


def consents_of(customer: CustomerBase, carrier: Version) -> list[Consent]:
    """The consents one customer version carries (none, one or both channels), each dated for the
    newest-wins fold; ``carrier`` is the version of the customer (record or nested) carrying them."""
    found: list[Consent] = []
    email = customer.email_marketing_consent
    if email is not None:
        found.append(_consent(email, _EMAIL_FIELDS, email.consent_updated_at, NEWER, carrier))
    elif (legacy := _legacy(customer, carrier)) is not None:
        found.append(legacy)
    sms = customer.sms_marketing_consent
    if sms is not None:
        found.append(_consent(sms, _SMS_FIELDS, sms.consent_updated_at, NEWER, carrier))
    return [c for c in found if c[1]]


def _consent(
    obj: ShopifyModel, fields: dict[str, str], at: datetime | None, rank: str, carrier: Version
) -> Consent:
    carried = obj.model_fields_set
    props = {prop: format_value(getattr(obj, name)) for name, prop in fields.items() if name in carried}
    return _dated(at, rank, carrier), props


def _legacy(customer: CustomerBase, carrier: Version) -> Consent | None:
    carried = customer.model_fields_set & _LEGACY_FIELDS.keys()
    if "accepts_marketing" not in carried:  # a level or a date alone names no consent
        return None
    props: dict[str, Any] = {}
    for name in carried:
        value = getattr(customer, name)
        if name == "accepts_marketing" and value is not None:
            value = EmailMarketingState.SUBSCRIBED if value else EmailMarketingState.NOT_SUBSCRIBED
        props[_LEGACY_FIELDS[name]] = format_value(value)
    return _dated(customer.accepts_marketing_updated_at, LEGACY, carrier), props


def _dated(at: datetime | None, rank: str, carrier: Version) -> Version:
    # The carrier's instant in UTC with a fixed width, so the text compares as the instant does.
    order = f"{rank}|{format_value(carrier.updated_at)}|{carrier.digest}"
    return Version(updated_at=at or carrier.updated_at, digest=order)


def subscription_changes(
    email: str | RecordRef,
    before: dict[str, PropertyValue],
    after: dict[str, PropertyValue],
    config: RuleConfig,
) -> list[SetSubscription]:
    """X4, opt-in: the HubSpot subscription change the contact's email state moving from ``before``
    to ``after`` (its emitted properties) asks for; none unless ``sync_email_subscription`` is set."""
    subscription = config.sync_email_subscription
    state = after.get(EMAIL_STATE)
    if not subscription or state == before.get(EMAIL_STATE):
        return []
    basis = config.email_legal_basis or None
    explanation = config.email_legal_basis_explanation if basis is not None else None
    if state == EmailMarketingState.UNSUBSCRIBED:
        wanted: Literal["SUBSCRIBED", "UNSUBSCRIBED"] = "UNSUBSCRIBED"
    elif state == EmailMarketingState.SUBSCRIBED and basis is not None:
        wanted = "SUBSCRIBED"
    else:
        return []
    record = contact_ref(email) if isinstance(email, str) else email  # G1: a pseudonym-keyed ref
    return [SetSubscription(record=record, subscription=subscription, state=wanted,
                            legal_basis=basis, legal_basis_explanation=explanation)]  # fmt: skip
