"""Folding commands into an account: archiving a record drops its associations at either end."""

from __future__ import annotations

from handlers.account_fold import fold
from schemas.commands import Archive, Associate, Dissociate, RecordRef, Upsert


def ref(object_type: str, key: str) -> RecordRef:
    prop = {"contacts": "email", "deals": "shopify_deal_key", "line_items": "shopify_line_item_key"}[
        object_type
    ]
    return RecordRef(object_type=object_type, id_property=prop, id_value=key)


def test_archive_drops_the_links_of_its_record_only_and_a_relink_counts() -> None:
    contact, deal, other, item = (
        ref("contacts", "a@x.com"),
        ref("deals", "d1"),
        ref("deals", "d2"),
        ref("line_items", "i1"),
    )
    account = fold(
        [
            Upsert(record=contact, properties={"email": "a@x.com"}),
            Upsert(record=deal, properties={"dealname": "#1"}),
            Upsert(record=other, properties={"dealname": "#2"}),
            Associate(record=deal, to=contact, association_type_id=3),
            Associate(record=other, to=contact, association_type_id=3),
            Associate(record=item, to=deal, association_type_id=20),
            Archive(record=deal),  # its links go, at either end; the other deal's stays
            Associate(record=other, to=contact, association_type_id=5),
            Dissociate(record=other, to=contact, association_type_id=5),
        ]
    )
    assert account.associations == {(("deals", "d2"), ("contacts", "a@x.com"), 3)}
    assert ("deals", "d1") in account.archived and ("deals", "d1") not in account.records
    again = fold([Upsert(record=deal, properties={}), Associate(record=item, to=deal, association_type_id=20),
                  Archive(record=item)])  # fmt: skip
    assert again.associations == set()
