"""The loss report (SPEC R7): grouping by reason kind, no payload values, the exit decision, rendering.

Pure: the records are built here in the shapes the worker (``streams/app.py``), the writer
(``handlers/writer.py``), the bridge (parking) and ``schemas.problems`` give them; reading them
from Kafka is covered by the simulate tests.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError

from handlers.loss import (
    EXIT_LOSS,
    MAX_ROWS,
    LossReport,
    add_records,
    dead_letter_record,
    from_pipeline,
)
from schemas.envelope import Delivery
from schemas.problems import FieldProblem, FieldProblemRecord
from schemas.reasons import reason_kind
from streams.inprocess import InProcessPipeline

EMAIL = "ada.lovelace@example.com"


class Line(BaseModel):
    id: int
    price: Decimal | None = None


class Order(BaseModel):
    """A strict stand-in for an order model, so these tests do not move with ``schemas/``."""

    id: int
    email: str | None = None
    name: str | None = None
    total_price: Decimal | None = None
    line_items: list[Line] = []


def body_error(body: dict[str, Any], topic: str = "orders/create") -> str:
    """A reason as the worker dead-letters a body with: its prefix and pydantic's whole text."""
    try:
        Order.model_validate(body)
    except ValidationError as exc:
        return f"body does not fit {topic}: {exc}"
    raise AssertionError("the body fits")


def letter(reason: str, original: bytes = b"{}") -> bytes:
    """A ``shopify.deadletter`` record as the worker writes it."""
    return orjson.dumps({"reason": reason, "topic": "p.shopify.orders", "partition": 0, "offset": 7,
                         "key": "1", "original_base64": base64.b64encode(original).decode()})  # fmt: skip


def test_a_pydantic_reason_keeps_paths_and_messages_and_drops_the_values() -> None:
    reason = body_error({"id": EMAIL, "total_price": "Ada Lovelace"})
    assert "input_value" in reason and EMAIL in reason, "the full reason holds the values"
    kind = reason_kind(reason)
    assert kind.startswith("body does not fit orders/create: id: Input should be a valid integer")
    assert EMAIL not in kind and "Ada" not in kind and "input_value" not in kind
    assert "total_price: Input should be a valid decimal" in kind
    assert "\n" not in kind


def test_records_that_fail_the_same_way_count_as_one_reason_whatever_their_values() -> None:
    report = LossReport()
    bodies = [{"email": f"c{i}@example.com", "line_items": [{"id": 1}] * i} for i in range(1, 4)]
    for body in bodies:
        add_records(report, "shopify.deadletter", [letter(body_error(body))])
    assert report.lost == 3
    assert len(report.dead_letters) == 1, report.dead_letters
    ((where, kind),) = report.dead_letters
    assert where == "shopify.deadletter" and "@" not in kind


def test_list_indices_are_folded_so_one_broken_field_is_one_reason() -> None:
    first = reason_kind(body_error({"id": 1, "line_items": [{"id": 1, "price": "x"}]}))
    fifth = reason_kind(body_error({"id": 1, "line_items": [{"id": 1}] * 4 + [{"id": 1, "price": "x"}]}))
    assert first == fifth and "line_items[*].price" in first
    report = LossReport()
    report.field_problem("orders/create", "line_items[0].price", "not a decimal")
    report.field_problem("orders/create", "line_items[12].price", "not a decimal")
    assert report.field_problems == {("orders/create", "line_items[*].price", "not a decimal"): 2}


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("not a valid record: 1 validation error for M\na\n  Value error, bad ada@x.io [type=value_error, "
         "input_value='ada@x.io', input_type=str]", "not a valid record: a: Value error"),
        (f"association end contacts:email:{EMAIL} does not exist in HubSpot",
         "association end contacts does not exist in HubSpot"),
        ("invalid literal for int() with base 10: 'Ada'", "invalid literal for int() with base 10: '…'"),
        ("unsupported Shopify topic 'orders/edited'", "unsupported Shopify topic 'orders/edited'"),
        (f"order 820982911946154508 of {EMAIL}\nmore detail", "order … of <email>"),
        ("orders/delete has no journey", "orders/delete has no journey"),
    ],
)  # fmt: skip
def test_other_reasons_keep_their_first_line_without_values(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_every_reported_topic_is_read_in_its_own_shape() -> None:
    report = LossReport()
    add_records(report, "shopify.deadletter", [letter("orders/create body has no id or token"), b"garbage"])
    dlq = {"reason": "HubSpot rejected the record", "status": 400, "category": "VALIDATION_ERROR",
           "message": f"Property values were not valid: {EMAIL}", "command": {}, "source": {}}  # fmt: skip
    add_records(report, "hubspot.commands.dlq", [orjson.dumps(dlq)])
    parked = {"reason": "unsupported Shopify topic 'shop/update'", "delivery": {"body": {"email": EMAIL}}}
    add_records(report, "shopify.parking", [orjson.dumps(parked)])
    problem = FieldProblemRecord(
        shopify_topic="checkouts/create", record_key="tok", event_id="e", path="shipping_address",
        reason="an empty list where an object belongs", source_topic="p.shopify.checkouts",
        source_partition=0, source_offset=3,
    )  # fmt: skip
    add_records(report, "shopify.field-problems", [problem.model_dump_json().encode()])
    assert report.dead_letters == {
        ("shopify.deadletter", "orders/create body has no id or token"): 1,
        ("shopify.deadletter", "unreadable dead letter"): 1,
        ("hubspot.commands.dlq", "HubSpot rejected the record (VALIDATION_ERROR)"): 1,
    }
    assert report.parked == {"unsupported Shopify topic 'shop/update'": 1}
    assert report.field_problems == {
        ("checkouts/create", "shipping_address", "an empty list where an object belongs"): 1
    }
    assert report.lost == 3, "field problems and parked deliveries are not loss"
    assert EMAIL not in "\n".join(report.render())


def test_the_exit_code_says_whether_a_record_was_lost() -> None:
    clean = LossReport()
    clean.field_problem("orders/create", "total_price", "not a decimal")
    clean.park("unsupported Shopify topic 'shop/update'")
    assert clean.exit_code() == 0 and clean.exit_code(allow_loss=True) == 0
    lossy = LossReport()
    lossy.dead_letter("shopify.deadletter", "orders/create body has no id or token")
    assert lossy.exit_code() == EXIT_LOSS != 0 and lossy.exit_code(allow_loss=True) == 0


def test_rendering_counts_by_reason_most_frequent_first_and_caps_the_rows() -> None:
    report = LossReport()
    for n in range(MAX_ROWS + 5):
        for _ in range(n + 1):
            report.dead_letter("shopify.deadletter", f"reason number {n}")
    report.dead_letter("hubspot.commands.dlq", "HubSpot rejected the record")
    report.field_problem("orders/create", "total_price", "not a decimal")
    lines = report.render()
    assert lines[0].startswith("LOSS: ") and f"{report.lost} records lost" in lines[0]
    assert "1 field problem " in lines[0] and "0 parked" in lines[0]
    rows = [line for line in lines if line.startswith("  ")]
    assert rows[0].split() == [str(MAX_ROWS + 5), "shopify.deadletter", "reason", "number", str(MAX_ROWS + 4)]
    assert "other reasons" in rows[MAX_ROWS]
    assert any("orders/create  total_price  not a decimal" in line for line in lines)
    assert LossReport().render() == [
        "Nothing lost: 0 records lost (dead-lettered), 0 field problems (synced without the field), "
        "0 parked (kept, not consumed)"
    ]


def test_the_in_process_pipelines_dead_letters_and_field_problems_are_counted() -> None:
    """Replay's source: ``InProcessPipeline.dead_letters``, and ``field_problems`` when it has them."""
    pipeline = InProcessPipeline()
    pipeline.deliver(Delivery(
        topic="orders/create", shop_domain="s.myshopify.com", webhook_id="w", event_id="e",
        received_at=datetime(2026, 3, 2, tzinfo=UTC), body={"email": EMAIL},
    ))  # fmt: skip
    report = from_pipeline(pipeline)
    assert report.lost == 1 and EMAIL not in str(report.dead_letters)
    ((where, _),) = report.dead_letters
    assert where == "replay"

    with_problems = SimpleNamespace(dead_letters=[], field_problems=[
        ("orders/create", FieldProblem(path="line_items[1].price", reason="not a decimal")),
        FieldProblemRecord(
            shopify_topic="orders/create", record_key="1", event_id="e", path="line_items[0].price",
            reason="not a decimal", source_topic="t", source_partition=0, source_offset=0,
        ),
    ])  # fmt: skip
    problems = from_pipeline(with_problems)
    assert problems.lost == 0
    assert problems.field_problems == {("orders/create", "line_items[*].price", "not a decimal"): 2}


def test_a_record_dead_lettered_before_any_topic_held_it_has_the_workers_shape() -> None:
    value = dead_letter_record("import orders: no id", topic="import:orders", key=None, original=b'{"a":1}')
    record = orjson.loads(value)
    assert set(record) == {"reason", "topic", "partition", "offset", "key", "original_base64"}
    assert base64.b64decode(record["original_base64"]) == b'{"a":1}'


def test_the_cli_prints_the_report_and_exits_with_the_loss_code_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_report_and_exit`` is what every pipeline command ends with."""
    import click

    from shopsync.cli import ALLOW_LOSS, _report_and_exit

    lossy = LossReport()
    lossy.dead_letter("shopify.deadletter", body_error({"email": EMAIL}))

    @click.command()
    @ALLOW_LOSS
    def command(allow_loss: bool) -> None:
        _report_and_exit(lossy, allow_loss)

    runner = CliRunner()
    strict, relaxed = runner.invoke(command, []), runner.invoke(command, ["--allow-loss"])
    assert strict.exit_code == EXIT_LOSS and relaxed.exit_code == 0
    for result in (strict, relaxed):
        assert "body does not fit orders/create: id: Field required" in result.output
        assert EMAIL not in result.output
