"""B2B companies for the sandbox's store (X2), made from its sample customers: the sample store
itself sells to no company, so ``companies`` N turns the first 3N customers into the contacts of
N companies (three each, the first the main contact), each with two locations addressed from its
main contact's address. Deterministic: the same store and N give the same companies, ids included.

The objects follow Shopify's GraphQL Admin reference (2026-10): ``Company`` (name, externalId,
note, customerSince, mainContact, contacts, locations), ``CompanyContact`` (customer,
isMainContact, title), ``CompanyLocation`` (name, externalId, phone, billingAddress and
shippingAddress as ``CompanyAddress``: address1, address2, city, companyName, country,
countryCode, zip, zoneCode, firstName, lastName, recipient, phone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shopify_sandbox.convert import JSON, gid

CONTACTS_PER_COMPANY = 3
COMPANY_BASE, LOCATION_BASE, CONTACT_BASE, ADDRESS_BASE = 7_100_000, 7_200_000, 7_300_000, 7_400_000


def _company_address(mailing: JSON | None, company: str, ident: int) -> JSON:
    """A CompanyAddress from a customer's MailingAddress (address1, companyName and countryCode
    are non-null in Shopify's schema, so they always have a value here)."""
    mailing = mailing or {}
    first, last = mailing.get("firstName"), mailing.get("lastName")
    return {
        "id": gid("CompanyAddress", ident), "address1": mailing.get("address1") or "1 Main Street",
        "address2": mailing.get("address2"), "city": mailing.get("city"), "companyName": company,
        "country": mailing.get("country"), "countryCode": mailing.get("countryCodeV2") or "US",
        "zip": mailing.get("zip"), "zoneCode": mailing.get("provinceCode"),
        "province": mailing.get("province"), "firstName": first, "lastName": last,
        "recipient": " ".join(str(p) for p in (first, last) if p) or None,
        "phone": mailing.get("phone"),
    }  # fmt: skip


def _company(number: int, members: list[JSON]) -> JSON:
    name = f"Sample Company {number}"
    since = min(str(m["createdAt"]) for m in members)
    updated = max(str(m["updatedAt"]) for m in members)
    contacts = [
        {
            "id": gid("CompanyContact", CONTACT_BASE + number * CONTACTS_PER_COMPANY + i),
            "customer": member,
            "isMainContact": i == 0,
            "title": "Buyer" if i else "Owner",
            "locale": "en",
            "createdAt": since,
            "updatedAt": updated,
        }
        for i, member in enumerate(members)
    ]
    locations = []
    for i, place in enumerate(("Head office", "Warehouse")):
        ident = LOCATION_BASE + number * 2 + i
        address = _company_address(members[0].get("defaultAddress"), name, ADDRESS_BASE + ident)
        locations.append({
            "id": gid("CompanyLocation", ident), "name": f"{name} {place}",
            "externalId": f"LOC-{number}-{i + 1}", "note": None, "phone": address["phone"],
            "createdAt": since, "updatedAt": updated, "billingAddress": address,
            "shippingAddress": address,
        })  # fmt: skip
    return {
        "id": gid("Company", COMPANY_BASE + number), "name": name, "externalId": f"CO-{number}",
        "note": None, "customerSince": since, "createdAt": since, "updatedAt": updated,
        "mainContact": contacts[0], "contacts": contacts, "locations": locations,
    }  # fmt: skip


def companies(customers: Iterable[JSON], count: int) -> Iterator[JSON]:
    """``count`` companies from the first ``3 * count`` of ``customers`` (GraphQL Customers, in
    the store's order); fewer when the store has fewer customers."""
    if count <= 0:
        return
    members: list[JSON] = []
    number = 1
    for customer in customers:
        members.append({k: v for k, v in customer.items() if k != "orders"})
        if len(members) == CONTACTS_PER_COMPANY:
            yield _company(number, members)
            members, number = [], number + 1
            if number > count:
                return
