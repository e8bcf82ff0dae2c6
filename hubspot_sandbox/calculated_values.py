"""The line-item values HubSpot calculates, kept up to date on every write so reads answer them as
HubSpot would: pre-discount amount = price x quantity; total discount = unit discount x quantity,
else pre-discount amount x percentage / 100; net price (``amount``) = the difference. Writers may
not set them (catalog marks them read-only); this module is the only thing that does.

Rounding follows currency precision in HubSpot; the sandbox keeps two decimals."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

_CENT = Decimal("0.01")
INPUTS = frozenset({"price", "quantity", "discount", "hs_discount_percentage"})


def _number(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def line_item_amounts(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str | None]:
    """The calculated values after ``changes`` apply to ``current`` (None clears one), or nothing
    when the write touches none of their inputs."""
    if not INPUTS & changes.keys():
        return {}
    merged = {**current, **changes}
    price, quantity = _number(merged.get("price")), _number(merged.get("quantity"))
    if price is None or quantity is None:
        return {"hs_pre_discount_amount": None, "hs_total_discount": None, "amount": None}
    gross = price * quantity
    unit, percentage = _number(merged.get("discount")), _number(merged.get("hs_discount_percentage"))
    if unit is not None:
        discount = unit * quantity
    elif percentage is not None:
        discount = gross * percentage / 100
    else:
        discount = Decimal(0)
    return {
        "hs_pre_discount_amount": str(gross.quantize(_CENT)),
        "hs_total_discount": str(discount.quantize(_CENT)),
        "amount": str((gross - discount).quantize(_CENT)),
    }
