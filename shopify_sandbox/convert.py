"""Shopify's REST/webhook bodies (the sample store's and the fixtures') turned into the objects
the GraphQL Admin API returns: camelCase fields, gids, enums in capitals, money as MoneyBags,
UTC timestamps. Connections are plain lists under the connection's field name; the resolvers
(``resolvers``) and the bulk writer (``jsonl``) page or stream them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

JSON = dict[str, Any]


def gid(kind: str, value: object) -> str:
    return f"gid://shopify/{kind}/{value}"


def numeric_id(text: str) -> int:
    """A stable numeric id for things REST identifies by a string (a checkout line's key)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def when(value: object) -> str | None:
    """A REST timestamp as GraphQL's DateTime: ISO 8601 in UTC with a Z."""
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(amount: object, currency: object = "USD") -> JSON:
    value = str(Decimal(str(amount if amount not in (None, "") else "0")).quantize(Decimal("0.01")))
    one = {"amount": value, "currencyCode": str(currency or "USD")}
    return {"shopMoney": one, "presentmentMoney": dict(one)}


def tags(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(t) for t in value]
    return [t.strip() for t in str(value or "").split(",") if t.strip()]


def enum(value: object, default: str | None = None) -> str | None:
    return str(value).upper() if value else default


def address(body: object) -> JSON | None:
    if not isinstance(body, dict) or not body:
        return None
    return {
        "id": gid("MailingAddress", body.get("id") or numeric_id(repr(sorted(body.items())))),
        "address1": body.get("address1"), "address2": body.get("address2"), "city": body.get("city"),
        "company": body.get("company"), "country": body.get("country"),
        "countryCodeV2": body.get("country_code"), "firstName": body.get("first_name"),
        "lastName": body.get("last_name"), "name": body.get("name"), "phone": body.get("phone"),
        "province": body.get("province"), "provinceCode": body.get("province_code"),
        "zip": body.get("zip"),
    }  # fmt: skip


def _email_consent(body: JSON) -> JSON | None:
    consent = body.get("email_marketing_consent")
    if isinstance(consent, dict):
        return {
            "marketingState": enum(consent.get("state"), "NOT_SUBSCRIBED"),
            "marketingOptInLevel": enum(consent.get("opt_in_level")),
            "consentUpdatedAt": when(consent.get("consent_updated_at")),
        }
    if body.get("email"):
        state = "SUBSCRIBED" if body.get("accepts_marketing") else "NOT_SUBSCRIBED"
        return {"marketingState": state, "marketingOptInLevel": "SINGLE_OPT_IN", "consentUpdatedAt": None}
    return None


def _sms_consent(body: JSON) -> JSON | None:
    consent = body.get("sms_marketing_consent")
    if not isinstance(consent, dict):
        return None
    return {
        "marketingState": enum(consent.get("state"), "NOT_SUBSCRIBED"),
        "marketingOptInLevel": enum(consent.get("opt_in_level"), "UNKNOWN"),
        "consentUpdatedAt": when(consent.get("consent_updated_at")),
        "consentCollectedFrom": enum(consent.get("consent_collected_from")),
    }


def customer(body: JSON, orders: list[JSON] | None = None) -> JSON:
    """A Customer; ``orders`` (GraphQL orders of this customer) set its order count and spend."""
    first, last = body.get("first_name"), body.get("last_name")
    addresses = [a for a in map(address, body.get("addresses") or []) if a]
    default = address(body.get("default_address"))
    if default is None and addresses:
        default = addresses[0]
    if default is not None and not addresses:
        addresses = [default]
    spent = sum(
        (Decimal(o["totalPriceSet"]["shopMoney"]["amount"]) for o in orders or []
         if o["displayFinancialStatus"] in ("PAID", "PARTIALLY_REFUNDED")),
        Decimal(str(body.get("total_spent") or "0")) if orders is None else Decimal("0"),
    )  # fmt: skip
    return {
        "id": gid("Customer", body["id"]), "email": body.get("email"), "phone": body.get("phone"),
        "firstName": first, "lastName": last,
        "displayName": " ".join(str(p) for p in (first, last) if p) or str(body.get("email") or ""),
        "note": body.get("note"), "state": enum(body.get("state"), "DISABLED"),
        "tags": tags(body.get("tags")), "taxExempt": bool(body.get("tax_exempt")),
        "verifiedEmail": bool(body.get("verified_email")), "createdAt": when(body.get("created_at")),
        "updatedAt": when(body.get("updated_at")),
        "numberOfOrders": str(len(orders) if orders is not None else body.get("orders_count") or 0),
        "amountSpent": money(spent, body.get("currency"))["shopMoney"],
        "emailMarketingConsent": _email_consent(body), "smsMarketingConsent": _sms_consent(body),
        "defaultAddress": default, "addresses": addresses, "addressesV2": addresses,
        "orders": orders or [],
    }  # fmt: skip


def product(body: JSON) -> JSON:
    node: JSON = {
        "id": gid("Product", body["id"]), "title": body.get("title") or "",
        "handle": body.get("handle") or "", "vendor": body.get("vendor") or "",
        "productType": body.get("product_type") or "", "status": enum(body.get("status"), "ACTIVE"),
        "tags": tags(body.get("tags")), "descriptionHtml": body.get("body_html") or "",
        "createdAt": when(body.get("created_at")), "updatedAt": when(body.get("updated_at")),
        "publishedAt": when(body.get("published_at")),
    }  # fmt: skip
    node["variants"] = [
        {
            "id": gid("ProductVariant", v["id"]), "title": v.get("title") or "", "sku": v.get("sku"),
            "price": str(v.get("price") or "0.00"), "compareAtPrice": v.get("compare_at_price"),
            "barcode": v.get("barcode"), "position": int(v.get("position") or 1),
            "inventoryQuantity": v.get("inventory_quantity"), "taxable": bool(v.get("taxable", True)),
            "createdAt": when(v.get("created_at") or body.get("created_at")),
            "updatedAt": when(v.get("updated_at") or body.get("updated_at")), "product": node,
        }
        for v in body.get("variants") or []
    ]  # fmt: skip
    return node


Catalogue = dict[str, JSON]
"""Variants and products by gid, so a line item can answer its variant and product in full."""


def catalogue(products: list[JSON]) -> Catalogue:
    found: Catalogue = {}
    for p in products:
        found[p["id"]] = p
        for v in p["variants"]:
            found[v["id"]] = v
    return found


def _linked(kind: str, value: object, known: Catalogue) -> JSON | None:
    if value is None:
        return None
    return known.get(gid(kind, value)) or {"id": gid(kind, value)}


def _embedded(body: JSON) -> JSON | None:
    """The customer a REST order or checkout embeds, as a GraphQL Customer."""
    embedded = body.get("customer")
    return customer(embedded) if isinstance(embedded, dict) and embedded.get("id") else None


def order(body: JSON, known: Catalogue, buyer: JSON | None = None) -> JSON:
    currency = body.get("currency") or "USD"
    lines = [
        {
            "id": gid("LineItem", li["id"]), "name": li.get("name") or li.get("title") or "",
            "title": li.get("title") or "", "sku": li.get("sku"), "quantity": int(li.get("quantity") or 0),
            "currentQuantity": int(li.get("current_quantity", li.get("quantity")) or 0),
            "variantTitle": li.get("variant_title"), "vendor": li.get("vendor"),
            "variant": _linked("ProductVariant", li.get("variant_id"), known),
            "product": _linked("Product", li.get("product_id"), known),
            "originalUnitPriceSet": money(li.get("price"), currency),
            "totalDiscountSet": money(li.get("total_discount"), currency),
        }
        for li in body.get("line_items") or []
    ]  # fmt: skip
    return {
        "id": gid("Order", body["id"]), "name": body.get("name") or "", "email": body.get("email"),
        "phone": body.get("phone"), "createdAt": when(body.get("created_at")),
        "updatedAt": when(body.get("updated_at")),
        "processedAt": when(body.get("processed_at") or body.get("created_at")),
        "cancelledAt": when(body.get("cancelled_at")), "cancelReason": enum(body.get("cancel_reason")),
        "closedAt": when(body.get("closed_at")), "currencyCode": currency,
        "displayFinancialStatus": enum(body.get("financial_status")),
        "displayFulfillmentStatus": {"fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED",
                                     "restocked": "RESTOCKED"}.get(str(body.get("fulfillment_status")),
                                                                   "UNFULFILLED"),
        "tags": tags(body.get("tags")), "note": body.get("note"), "test": bool(body.get("test")),
        "sourceName": body.get("source_name"),
        "customer": buyer or _embedded(body),
        "billingAddress": address(body.get("billing_address")),
        "shippingAddress": address(body.get("shipping_address")),
        "subtotalPriceSet": money(body.get("subtotal_price"), currency),
        "totalPriceSet": money(body.get("total_price"), currency),
        "totalTaxSet": money(body.get("total_tax"), currency),
        "totalDiscountsSet": money(body.get("total_discounts"), currency),
        "cartToken": body.get("cart_token"), "checkoutToken": body.get("checkout_token"),
        "lineItems": lines,
    }  # fmt: skip


def abandoned_checkout(body: JSON, known: Catalogue, buyer: JSON | None = None) -> JSON:
    """An AbandonedCheckout: Shopify's GraphQL object has no email or token field; the buyer's
    contact is its ``customer``."""
    currency = body.get("currency") or "USD"
    lines = [
        {
            "id": gid("AbandonedCheckoutLineItem", numeric_id(str(li.get("key") or li.get("variant_id")))),
            "title": li.get("title"), "sku": li.get("sku"), "quantity": int(li.get("quantity") or 0),
            "variantTitle": li.get("variant_title"),
            "variant": _linked("ProductVariant", li.get("variant_id"), known),
            "product": _linked("Product", li.get("product_id"), known),
            "originalUnitPriceSet": money(li.get("price"), currency),
            "originalTotalPriceSet": money(li.get("line_price") or li.get("price"), currency),
        }
        for li in body.get("line_items") or []
    ]  # fmt: skip
    return {
        "id": gid("AbandonedCheckout", body["id"]), "name": str(body.get("name") or f"#{body['id']}"),
        "abandonedCheckoutUrl": body.get("abandoned_checkout_url") or "",
        "completedAt": when(body.get("completed_at")), "createdAt": when(body.get("created_at")),
        "updatedAt": when(body.get("updated_at")),
        "customer": buyer or _embedded(body),
        "note": body.get("note") or "",
        "discountCodes": [str(d.get("code")) for d in body.get("discount_codes") or [] if d],
        "taxesIncluded": bool(body.get("taxes_included")),
        "billingAddress": address(body.get("billing_address")),
        "shippingAddress": address(body.get("shipping_address")),
        "subtotalPriceSet": money(body.get("subtotal_price"), currency),
        "totalPriceSet": money(body.get("total_price"), currency),
        "totalTaxSet": money(body.get("total_tax"), currency),
        "totalDiscountSet": money(body.get("total_discounts"), currency),
        "totalLineItemsPriceSet": money(body.get("total_line_items_price"), currency),
        "lineItems": lines,
    }  # fmt: skip
