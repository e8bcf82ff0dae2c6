"""Contacts (SPEC C1, C2, C7, C8): which Shopify customers become which HubSpot contacts."""

from __future__ import annotations

from schemas.commands import RecordRef, Upsert
from schemas.shopify import Customer
from streams.mapping import contact_properties


def normalize_email(email: str | None) -> str | None:
    """The contact key: trimmed and lower-cased; None when there is no usable address (C2)."""
    if email is None:
        return None
    cleaned = email.strip().lower()
    return cleaned if "@" in cleaned else None


def contact_ref(email: str) -> RecordRef:
    return RecordRef(object_type="contacts", id_property="email", id_value=email)


def contact_upsert(customer: Customer) -> Upsert | None:
    """C1/C2/C7: a customer with an email becomes (or updates) the contact with that email.

    A customer without an email makes no contact (C2, D7). HubSpot's upsert by ``email`` creates
    the contact only when none has that address, else updates it, which is C2 exactly.
    """
    email = normalize_email(customer.email)
    if email is None:
        return None
    props = contact_properties(customer)
    props["email"] = email
    props["shopify_customer_id"] = str(customer.id)
    return Upsert(record=contact_ref(email), properties=props)
