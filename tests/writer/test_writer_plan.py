"""Coalescing a window of commands: newest wins per property, archives cancel, links last-wins."""

from __future__ import annotations

from handlers.writer_plan import Position, coalesce
from schemas.commands import AnyCommand, Archive, Associate, Dissociate, RecordRef, Upsert

DEAL = RecordRef(object_type="deals", id_property="shopify_deal_key", id_value="cart:1")
CONTACT = RecordRef(object_type="contacts", id_property="email", id_value="a@b.co")


def at(*commands: AnyCommand) -> list[tuple[AnyCommand, Position]]:
    return [(c, Position(0, i)) for i, c in enumerate(commands)]


def test_several_upserts_of_one_record_become_one_input_newest_value_per_property() -> None:
    plan = coalesce(at(
        Upsert(record=DEAL, properties={"dealstage": "Checkout Pending", "amount": "5"}),
        Upsert(record=DEAL, properties={"dealstage": "Checkout Abandoned"}),
        Upsert(record=DEAL, properties={"amount": "7"}, create_if_missing=False),
    ))  # fmt: skip
    (record,) = plan.upserts()
    assert record.upsert == {"dealstage": "Checkout Abandoned", "amount": "7"}
    assert record.create_if_missing, "one create-capable upsert in the window keeps it create-capable"
    assert [p.offset for _, p in record.sources] == [0, 1, 2]
    assert plan.archives() == []


def test_an_archive_cancels_earlier_upserts_and_a_later_upsert_recreates() -> None:
    plan = coalesce(at(Upsert(record=DEAL, properties={"amount": "5"}), Archive(record=DEAL)))
    (record,) = plan.archives()
    assert record.upsert is None
    plan = coalesce(at(Archive(record=DEAL), Upsert(record=DEAL, properties={"amount": "9"})))
    (record,) = plan.archives()
    assert record.archive and record.upsert == {"amount": "9"}, "archive first, then re-create"


def test_association_changes_are_last_wins_per_pair_and_type() -> None:
    link = Associate(record=DEAL, to=CONTACT, association_type_id=3)
    unlink = Dissociate(record=DEAL, to=CONTACT, association_type_id=3)
    plan = coalesce(at(link, unlink, link))
    (only,) = plan.links.values()
    assert only.command == link and len(only.sources) == 3
    other = Associate(record=DEAL, to=CONTACT, association_type_id=4)
    assert len(coalesce(at(link, other)).links) == 2


def test_update_only_upserts_stay_update_only() -> None:
    plan = coalesce(at(Upsert(record=CONTACT, properties={"firstname": "A"}, create_if_missing=False)))
    (record,) = plan.upserts()
    assert not record.create_if_missing
