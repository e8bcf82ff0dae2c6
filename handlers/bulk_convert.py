"""GraphQL Admin API records (as a bulk export gives them, parents rebuilt) turned into the
REST/webhook bodies the rules parse (``schemas.shopify``): snake_case fields, numeric ids from
gids, money as strings, enums in lower case, connections as plain lists (``line_items``,
``variants``). Pure functions, one per resource, so the bulk import and its tests share them.

GraphQL carries less than a webhook body in places, and these functions say so rather than
invent: an order has no ``token`` or ``landing_site``; an abandoned checkout has no email and no
token field, so its contact is its ``customer`` and its token is read from the recovery URL
(``/checkouts/{token}/recover``), the one place Shopify's GraphQL object exposes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]

FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}
"""GraphQL's displayFulfillmentStatus as REST's fulfillment_status (anything else: null)."""


class ConversionError(ValueError):
    """A GraphQL record that cannot become a REST body (no gid of the right kind, say)."""


def gid_number(value: object, kind: str | None = None) -> int | None:
    """The number at the end of ``gid://shopify/{kind}/{n}``; None for null; ConversionError for
    anything else (a gid of another kind when ``kind`` is given)."""
    if value is None:
        return None
    text = str(value)
    prefix, _, tail = text.rpartition("/")
    if not prefix.startswith("gid://shopify/") or not tail.split("?")[0].isdigit():
        raise ConversionError(f"not a Shopify global id: {text[:60]!r}")
    if kind is not None and prefix != f"gid://shopify/{kind}":
        raise ConversionError(f"a {prefix.removeprefix('gid://shopify/')} id where a {kind} was expected")
    return int(tail.split("?")[0])


def _lower(value: object) -> str | None:
    return str(value).lower() if value else None


def _amount(bag: object) -> str | None:
    """A MoneyBag's (or MoneyV2's) shop amount as REST's decimal string."""
    if not isinstance(bag, dict):
        return None
    money = bag.get("shopMoney", bag)
    return str(money["amount"]) if isinstance(money, dict) and money.get("amount") is not None else None


def _currency(bag: object) -> str | None:
    if not isinstance(bag, dict):
        return None
    money = bag.get("shopMoney", bag)
    return str(money.get("currencyCode")) if isinstance(money, dict) and money.get("currencyCode") else None


def _tags(value: object) -> str:
    return ", ".join(str(t) for t in value) if isinstance(value, list) else str(value or "")


def address(node: object) -> JSON | None:
    if not isinstance(node, dict):
        return None
    return {
        "id": gid_number(node.get("id")), "first_name": node.get("firstName"),
        "last_name": node.get("lastName"), "name": node.get("name"), "company": node.get("company"),
        "address1": node.get("address1"), "address2": node.get("address2"), "city": node.get("city"),
        "province": node.get("province"), "province_code": node.get("provinceCode"),
        "country": node.get("country"), "country_code": node.get("countryCodeV2"),
        "zip": node.get("zip"), "phone": node.get("phone"),
    }  # fmt: skip


def _consent(node: object, *, sms: bool = False) -> JSON | None:
    if not isinstance(node, dict):
        return None
    found = {
        "state": _lower(node.get("marketingState")),
        "opt_in_level": _lower(node.get("marketingOptInLevel")),
        "consent_updated_at": node.get("consentUpdatedAt"),
    }
    if sms:
        found["consent_collected_from"] = node.get("consentCollectedFrom")
    return found


def customer(node: JSON) -> JSON:
    """A GraphQL Customer as a ``customers/create`` body."""
    addresses = [a for a in map(address, node.get("addresses") or []) if a]
    spent = node.get("amountSpent")
    count = node.get("numberOfOrders")
    return {
        "id": gid_number(node["id"], "Customer"), "email": node.get("email"), "phone": node.get("phone"),
        "first_name": node.get("firstName"), "last_name": node.get("lastName"), "note": node.get("note"),
        "tags": _tags(node.get("tags")), "state": _lower(node.get("state")),
        "verified_email": node.get("verifiedEmail"), "tax_exempt": node.get("taxExempt"),
        "orders_count": int(count) if count is not None else None,
        "total_spent": _amount(spent), "currency": _currency(spent),
        "created_at": node.get("createdAt"), "updated_at": node.get("updatedAt"),
        "email_marketing_consent": _consent(node.get("emailMarketingConsent")),
        "sms_marketing_consent": _consent(node.get("smsMarketingConsent"), sms=True),
        "default_address": address(node.get("defaultAddress")), "addresses": addresses,
    }  # fmt: skip


def _linked_id(node: JSON, field: str, kind: str) -> int | None:
    linked = node.get(field)
    return gid_number(linked.get("id"), kind) if isinstance(linked, dict) else None


def _buyer(node: JSON) -> JSON | None:
    embedded = node.get("customer")
    return customer(embedded) if isinstance(embedded, dict) and embedded.get("id") else None


def order(node: JSON) -> JSON:
    """A GraphQL Order (its ``lineItems`` rebuilt as a list) as an ``orders/create`` body."""
    lines = [
        {
            "id": gid_number(li["id"], "LineItem"), "name": li.get("name"), "title": li.get("title"),
            "sku": li.get("sku"), "quantity": li.get("quantity"),
            "current_quantity": li.get("currentQuantity"), "variant_title": li.get("variantTitle"),
            "vendor": li.get("vendor"), "variant_id": _linked_id(li, "variant", "ProductVariant"),
            "product_id": _linked_id(li, "product", "Product"),
            "price": _amount(li.get("originalUnitPriceSet")),
            "total_discount": _amount(li.get("totalDiscountSet")),
        }
        for li in node.get("lineItems") or []
    ]  # fmt: skip
    buyer = _buyer(node)
    return {
        "id": gid_number(node["id"], "Order"), "name": node.get("name"), "email": node.get("email"),
        "phone": node.get("phone"), "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"), "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"), "cancel_reason": _lower(node.get("cancelReason")),
        "closed_at": node.get("closedAt"), "currency": node.get("currencyCode"),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": FULFILLMENT.get(str(node.get("displayFulfillmentStatus"))),
        "tags": _tags(node.get("tags")), "note": node.get("note"), "test": node.get("test"),
        "source_name": node.get("sourceName"), "customer": buyer,
        "cart_token": node.get("cartToken"), "checkout_token": node.get("checkoutToken"),
        "billing_address": address(node.get("billingAddress")),
        "shipping_address": address(node.get("shippingAddress")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")),
        "total_price": _amount(node.get("totalPriceSet")), "total_tax": _amount(node.get("totalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountsSet")), "line_items": lines,
        "company": purchasing_company(node.get("purchasingEntity")),
    }  # fmt: skip


def purchasing_company(entity: object) -> JSON | None:
    """A B2B order's ``purchasingEntity`` (a PurchasingCompany: the company and the location it
    was placed for) as REST's ``company: {id, location_id}`` (X2); None for a customer's order
    (the export writes the union's other member as an empty object)."""
    if not isinstance(entity, dict) or not isinstance(entity.get("company"), dict):
        return None
    location = entity.get("location")
    return {
        "id": gid_number(entity["company"].get("id"), "Company"),
        "location_id": gid_number(location.get("id"), "CompanyLocation")
        if isinstance(location, dict)
        else None,
    }


def product(node: JSON) -> JSON:
    """A GraphQL Product (its ``variants`` rebuilt as a list) as a ``products/create`` body."""
    ident = gid_number(node["id"], "Product")
    variants = [
        {
            "id": gid_number(v["id"], "ProductVariant"), "product_id": ident, "title": v.get("title"),
            "sku": v.get("sku"), "price": v.get("price"), "compare_at_price": v.get("compareAtPrice"),
            "barcode": v.get("barcode"), "position": v.get("position"),
            "inventory_quantity": v.get("inventoryQuantity"), "taxable": v.get("taxable"),
            "created_at": v.get("createdAt"), "updated_at": v.get("updatedAt"),
        }
        for v in node.get("variants") or []
    ]  # fmt: skip
    return {
        "id": ident, "title": node.get("title"), "body_html": node.get("descriptionHtml"),
        "handle": node.get("handle"), "product_type": node.get("productType"),
        "vendor": node.get("vendor"), "tags": _tags(node.get("tags")), "status": _lower(node.get("status")),
        "published_at": node.get("publishedAt"), "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"), "variants": variants,
    }  # fmt: skip


def checkout_token(recovery_url: object) -> str | None:
    """The checkout token in an ``abandonedCheckoutUrl`` (``.../checkouts/{token}/recover``)."""
    parts = str(recovery_url or "").split("?")[0].split("/")
    after = parts[parts.index("checkouts") + 1 :] if "checkouts" in parts else []
    if after[:1] == ["ac"]:  # Shopify's newer .../checkouts/ac/{token}/recover
        after = after[1:]
    return after[0] if after and after[0] not in ("", "recover") else None


def abandoned_checkout(node: JSON) -> JSON:
    """A GraphQL AbandonedCheckout as a ``checkouts/create`` body: the token from its recovery
    URL, the email its customer's (the object has neither field)."""
    lines = [
        {
            "id": gid_number(li["id"], "AbandonedCheckoutLineItem"), "title": li.get("title"),
            "sku": li.get("sku"), "quantity": li.get("quantity"), "variant_title": li.get("variantTitle"),
            "variant_id": _linked_id(li, "variant", "ProductVariant"),
            "product_id": _linked_id(li, "product", "Product"),
            "price": _amount(li.get("originalUnitPriceSet")),
            "line_price": _amount(li.get("originalTotalPriceSet")),
        }
        for li in node.get("lineItems") or []
    ]  # fmt: skip
    buyer = _buyer(node)
    total = node.get("totalPriceSet")
    return {
        "id": gid_number(node["id"], "AbandonedCheckout"),
        "token": checkout_token(node.get("abandonedCheckoutUrl")), "name": node.get("name"),
        "email": buyer.get("email") if buyer else None, "phone": buyer.get("phone") if buyer else None,
        "customer": buyer, "abandoned_checkout_url": node.get("abandonedCheckoutUrl"),
        "completed_at": node.get("completedAt"), "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"), "currency": _currency(total), "note": node.get("note"),
        "discount_codes": [{"code": c} for c in node.get("discountCodes") or []],
        "taxes_included": node.get("taxesIncluded"),
        "billing_address": address(node.get("billingAddress")),
        "shipping_address": address(node.get("shippingAddress")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")), "total_price": _amount(total),
        "total_tax": _amount(node.get("totalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountSet")),
        "total_line_items_price": _amount(node.get("totalLineItemsPriceSet")), "line_items": lines,
    }  # fmt: skip


def company_address(node: object) -> JSON | None:
    """A CompanyAddress as REST's address (``zoneCode`` is the province code, ``companyName`` the
    company, ``recipient`` the name)."""
    if not isinstance(node, dict):
        return None
    return {
        "id": gid_number(node.get("id")), "first_name": node.get("firstName"),
        "last_name": node.get("lastName"), "name": node.get("recipient"),
        "company": node.get("companyName"), "address1": node.get("address1"),
        "address2": node.get("address2"), "city": node.get("city"), "province": node.get("province"),
        "province_code": node.get("zoneCode"), "country": node.get("country"),
        "country_code": node.get("countryCode"), "zip": node.get("zip"), "phone": node.get("phone"),
    }  # fmt: skip


def company_records(node: JSON) -> list[tuple[str, JSON]]:
    """A GraphQL Company (its ``contacts`` and ``locations`` rebuilt as lists) as the webhook
    bodies Shopify sends for it, each with its topic: ``companies/create``, then one
    ``company_locations/create`` a location and one ``company_contacts/create`` a contact (X2).
    Named by global ids as Shopify's company payloads are (``schemas.shopify.Company``); a contact
    whose customer has no id cannot join anyone and fails the whole company, which is then
    dead-lettered with the reason (nothing half-imported)."""
    gid_number(node["id"], "Company")  # a company gid, or ConversionError
    ref = {"admin_graphql_api_id": node["id"], "name": node.get("name")}
    records: list[tuple[str, JSON]] = [(
        "companies/create",
        {
            "admin_graphql_api_id": node["id"], "name": node.get("name"),
            "external_id": node.get("externalId"), "note": node.get("note"),
            "customer_since": node.get("customerSince"), "created_at": node.get("createdAt"),
            "updated_at": node.get("updatedAt"),
        },
    )]  # fmt: skip
    for location in node.get("locations") or []:
        if gid_number(location.get("id"), "CompanyLocation") is None:
            raise ConversionError("a company location without its id")
        records.append((
            "company_locations/create",
            {
                "admin_graphql_api_id": location["id"], "company": ref, "name": location.get("name"),
                "external_id": location.get("externalId"), "phone": location.get("phone"),
                "created_at": location.get("createdAt"), "updated_at": location.get("updatedAt"),
                "billing_address": company_address(location.get("billingAddress")),
                "shipping_address": company_address(location.get("shippingAddress")),
            },
        ))  # fmt: skip
    for contact in node.get("contacts") or []:
        customer_gid = (contact.get("customer") or {}).get("id")
        if (
            gid_number(contact.get("id"), "CompanyContact") is None
            or gid_number(customer_gid, "Customer") is None
        ):
            raise ConversionError("a company contact without its id or its customer's")
        records.append((
            "company_contacts/create",
            {
                "admin_graphql_api_id": contact["id"], "customer_admin_graphql_api_id": customer_gid,
                "title": contact.get("title"), "company": ref,
                "created_at": contact.get("createdAt"), "updated_at": contact.get("updatedAt"),
            },
        ))  # fmt: skip
    return records


CONVERTERS: dict[str, Callable[[JSON], JSON]] = {
    "customers": customer, "orders": order, "products": product, "checkouts": abandoned_checkout,
}  # fmt: skip
"""Per import resource (``handlers.importer.RESOURCES``), its GraphQL-to-REST conversion."""

EXPANDERS: dict[str, Callable[[JSON], list[tuple[str, JSON]]]] = {"companies": company_records}
"""Resources whose one GraphQL record is several webhook bodies (on their own topics)."""
