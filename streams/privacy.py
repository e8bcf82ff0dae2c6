"""Privacy (SPEC G1), the pure part: pseudonyms of personal identifiers, and the compliance
record the bridge appends for each of Shopify's compliance webhooks.

A pseudonym is a keyed hash (HMAC-SHA256) of a normalised identifier, labelled with its kind, so
the same email always gives the same pseudonym under one key (records can be matched by it) and
no one without the key can test a guessed address against it (a plain hash of an email is
reversed by hashing a list of addresses). It is still personal data in the GDPR's sense (Art. 4(5)
"pseudonymisation"): it stands for the person, it just does not show them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal

from schemas.compliance import COMPLIANCE_TOPICS, ComplianceRequest
from schemas.envelope import Delivery
from streams.rules.keys import normalize_email

PSEUDONYM_PREFIX = "p1:"
IdentifierKind = Literal["email", "phone"]


def normalize_phone(phone: str | None) -> str | None:
    """A phone's digits, with a leading ``+`` if it had one; None without any digit. Shopify sends
    E.164 (``+15556251199``) for customers but free text appears on checkouts, so spacing,
    dashes and brackets must not make two pseudonyms of one number."""
    if phone is None:
        return None
    digits = "".join(c for c in phone if c.isascii() and c.isdigit())
    if not digits:
        return None
    return f"+{digits}" if phone.strip().startswith("+") else digits


def pseudonym(key: bytes, kind: IdentifierKind, value: str | None) -> str | None:
    """``p1:`` + base64url HMAC-SHA256(key, kind NUL normalised value); None when there is no
    usable value (an email without ``@``, a phone without digits)."""
    normal = normalize_email(value) if kind == "email" else normalize_phone(value)
    if normal is None:
        return None
    digest = hmac.new(key, kind.encode() + b"\x00" + normal.encode(), hashlib.sha256).digest()
    return PSEUDONYM_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_compliance_topic(topic: str) -> bool:
    return topic in COMPLIANCE_TOPICS


def _id(value: object) -> int | None:
    """A Shopify id as it comes (a JSON integer, or integer text); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value) or None
    return None


def _ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(i for i in (_id(v) for v in value) if i is not None)


def compliance_request(delivery: Delivery, key: bytes) -> ComplianceRequest:
    """The record of one compliance webhook: its delivery headers, the ids it names, and the
    pseudonyms of the customer's email and phone; nothing else of the body is kept."""
    if not is_compliance_topic(delivery.topic):
        raise ValueError(f"{delivery.topic!r} is not a compliance topic")
    body: dict[str, Any] = delivery.body
    customer = body.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    email, phone = customer.get("email"), customer.get("phone")
    request = body.get("data_request")
    shop = body.get("shop_domain")
    return ComplianceRequest(
        topic=delivery.topic,  # one of COMPLIANCE_TOPICS: checked above
        shop_domain=(shop if isinstance(shop, str) and shop else delivery.shop_domain).strip().lower(),
        shop_id=_id(body.get("shop_id")),
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        triggered_at=delivery.triggered_at,
        api_version=delivery.api_version,
        received_at=delivery.received_at,
        customer_id=_id(customer.get("id")),
        email_pseudonym=pseudonym(key, "email", email if isinstance(email, str) else None),
        phone_pseudonym=pseudonym(key, "phone", phone if isinstance(phone, str) else None),
        orders=_ids(body.get("orders_requested", body.get("orders_to_redact"))),
        data_request_id=_id(request.get("id")) if isinstance(request, dict) else None,
    )


def compliance_key(request: ComplianceRequest) -> bytes:
    """``shopify.compliance``'s key: the shop. One shop's requests stay on one partition in the
    order Shopify sent them, so a ``shop/redact`` is read after every request of that shop before
    it, and a data request after a redact of the same customer finds nothing left."""
    return request.shop_domain.encode()
