"""HubSpot's current commerce objects (SPEC X1): a journey's Order and Cart.

Since December 2023 HubSpot's own Shopify data sync writes an order as an **Order** and an
abandoned checkout as a **Cart** (developers.hubspot.com, "CRM API | Orders" and "CRM API | Carts").
With ``SHOPSYNC_COMMERCE_OBJECTS`` at ``orders`` or ``deals,orders`` a journey renders them from the
very decision that makes its deal (``streams.rules.journeys``): the same state, stages, timers and
triggers, so an Order and a deal of one journey can never disagree. One journey is one Order and
one Cart at most, each keyed by the journey (``shopify_order_key``, ``shopify_cart_key``).

- **Order**: exists once Shopify has the order. HubSpot's order properties come from the D6 deal
  properties holding the same Shopify fields (``streams.mapping.ORDER_FROM_DEAL``), with every
  ``shopify_*`` D6 property beside them. It sits in the order pipeline
  (``SHOPSYNC_ORDER_PIPELINE_LABEL``, HubSpot's default "Order Pipeline") at the journey's stage:
  Open (placed, not paid yet), Processed (paid), Shipped (fulfilled), Cancelled (cancelled, voided,
  expired, or deleted in Shopify, D5: then ``hs_external_cancelled_date`` is the deletion's date). W1's
  ``shopify_new_customer_order`` is on it.
- **Cart**: exists once the checkout is abandoned (D3's abandonment, judged by Shopify's own times)
  and stays when the buyer comes back, with ``hs_external_status`` ``recovered``,
  ``shopify_recovered_checkout`` and an association to the Order the checkout completed into. Its
  values are the checkout's (a cart is what was left behind). W2's
  ``shopify_abandoned_cart_trigger_at`` is on it.

Both are associated with their contact and their own line items. The association types are
HubSpot's unlabelled defaults for each pair, looked up by the writer (``DEFAULT_ASSOCIATION``).
"""

from __future__ import annotations

from config.rules import RuleConfig
from schemas.commands import DEFAULT_ASSOCIATION, AnyCommand, PropertyValue
from streams.mapping import CART_FROM_DEAL, ORDER_FROM_DEAL, format_value
from streams.rules.journeys import (
    DEAL_PROPERTIES,
    JourneyState,
    Snapshot,
    abandoned_cart_trigger,
    completed_at,
    deal_fields,
    effective_abandonment,
    line_views,
    new_customer_flag,
    shop_marks,
    stage,
)
from streams.rules.keys import cart_line_ref, cart_ref, order_line_ref, order_ref
from streams.rules.views import ObjectKind, ObjectView, diff_object

ORDER = ObjectKind(record=order_ref, line=order_line_ref, line_to_record=DEFAULT_ASSOCIATION,
                   record_to_contact=DEFAULT_ASSOCIATION)  # fmt: skip
CART = ObjectKind(record=cart_ref, line=cart_line_ref, line_to_record=DEFAULT_ASSOCIATION,
                  record_to_contact=DEFAULT_ASSOCIATION, link=order_ref,
                  record_to_link=DEFAULT_ASSOCIATION)  # fmt: skip
ORDER_STAGE = {"Checkout Completed": "Open", "Processed": "Processed", "Shipped": "Shipped",
               "Cancelled": "Cancelled"}  # fmt: skip
"""The order pipeline's stage (its label in HubSpot's default "Order Pipeline") of each journey
stage an order can be in: placed and not paid yet is Open. Shopify does not say when a parcel
arrives, so HubSpot's Delivered stage is never set."""
ORDER_STAGES = tuple(ORDER_STAGE.values())


def _shopify(props: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
    return {k: v for k, v in props.items() if k.startswith("shopify_")}


def _mapped(props: dict[str, PropertyValue], table: tuple[tuple[str, str], ...]) -> dict[str, PropertyValue]:
    return {target: props.get(source) for target, source in table}


def _commerce(snap: Snapshot | None) -> dict[str, PropertyValue]:
    return {"hs_shipping_cost": (snap.commerce if snap is not None else {}).get("hs_shipping_cost")}


def render_order(state: JourneyState, config: RuleConfig) -> ObjectView:
    """The journey's Order: once Shopify has the order; its values are the deal's (D6), the
    order's own for every field it carries."""
    if state.order is None:
        return ObjectView()
    current = stage(state)
    deal = deal_fields(state)
    if state.order_deleted_at is not None:
        deal["shopify_cancelled_at"] = format_value(state.order_deleted_at)  # D5
    props = _shopify(deal)
    props |= _mapped(deal, ORDER_FROM_DEAL) | _commerce(state.order)
    props |= {
        "hs_external_order_id": format_value(state.order_id),
        "hs_source_store": state.shop,
        "hs_pipeline": config.order_pipeline_label,
        "hs_pipeline_stage": ORDER_STAGE.get(current or "", current),
        "shopify_order_key": state.key,
        "shopify_new_customer_order": format_value(new_customer_flag(state, current)),
    } | shop_marks(state, config)
    return ObjectView(
        exists=True,
        properties=props,
        lines=line_views(state.order.lines, state, config),
        contact=state.order.email,
    )


def render_cart(state: JourneyState, config: RuleConfig) -> ObjectView:
    """The journey's Cart: once its checkout is abandoned (D3), with the checkout's values; when
    the checkout completed into an order, ``recovered`` and linked to that Order."""
    checkout = state.checkout
    abandoned = effective_abandonment(state)
    if checkout is None or abandoned is None:
        return ObjectView()
    values: dict[str, PropertyValue] = dict.fromkeys(DEAL_PROPERTIES)
    values.update(
        checkout.properties
        if checkout.sparse
        else {k: v for k, v in checkout.properties.items() if v is not None}
    )
    recovered = completed_at(state) is not None
    props = _shopify(values)
    props |= _mapped(values, CART_FROM_DEAL) | _commerce(checkout)
    props |= {
        "hs_source_store": state.shop,
        "hs_external_status": "recovered" if recovered else "abandoned",
        "shopify_cart_key": state.key,
        "shopify_abandoned_at": format_value(abandoned),
        "shopify_abandoned_cart_trigger_at": format_value(abandoned_cart_trigger(state)),
        "shopify_recovered_checkout": "true" if recovered else None,
    } | shop_marks(state, config)
    return ObjectView(
        exists=True,
        properties=props,
        lines=line_views(checkout.lines, state, config),
        contact=checkout.email,
        linked=state.key if state.order is not None else None,
    )


def write_commerce(
    state: JourneyState, order: ObjectView, cart: ObjectView, config: RuleConfig | None = None
) -> list[AnyCommand]:
    """The commands taking HubSpot from the Order and Cart last written to these."""
    return diff_object(ORDER, state.key, state.emitted_order, order, config) + diff_object(
        CART, state.key, state.emitted_cart, cart, config
    )
