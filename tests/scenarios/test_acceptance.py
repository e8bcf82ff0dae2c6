"""Acceptance scenarios, one per SPEC rule group, through the whole pipeline.

Each ``<group>.jsonl`` here is a ``shopsync simulate`` scenario (bridge, worker, writer and the
HubSpot sandbox on a real broker); ``<group>.expected.json`` is what the resulting HubSpot account
must hold, as a subset:

- ``contacts`` / ``deals`` / ``products`` / ``line_items``: records by their unique property
  (``email``, ``shopify_deal_key``, ``shopify_product_key``, ``shopify_line_item_key``) mapped to
  the properties they must have (``null`` for a property: absent or empty), or ``null``: the record
  must not exist. A deal's ``stage_label`` and ``pipeline_label`` sit next to its properties; a line
  item's ``hs_product_id`` is named by its product's ``shopify_product_key``.
- ``associations``: ``[from_type, from_key, to_type, to_key, type_id]`` that must exist;
  ``no_associations``: ``[from_type, from_key, to_type]`` with no association at all.
- ``counts``: how many records of each type the account holds; ``archived``: a lower bound of the
  dump's archived counts; ``summary``: rows of the product's summary (S1) and their values.
- ``env``: settings the pipeline runs with (W4's configurable delays).

E1 (the "Ecommerce" dashboard's eight reports) is tested in ``tests/dashboard``: the product computes
the reports from its streams, and they equal the same reports computed from the resulting account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.demo import summary
from devtools.simulate import parse, run

pytestmark = pytest.mark.kafka

HERE = Path(__file__).parent

KEYS = {
    "contacts": "email",
    "deals": "shopify_deal_key",
    "products": "shopify_product_key",
    "line_items": "shopify_line_item_key",
}

GROUPS = {
    "contacts": "C1-C8",
    "deals": "D1-D7",
    "products": "P1-P5",
    "triggers": "W1-W3",
    "triggers_w4": "W4",
    "summary": "S1-L1",
}

KNOWN_BUGS: dict[str, str] = {}


def _case(group: str) -> Any:
    marks = []
    if group in KNOWN_BUGS:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[group]))
    return pytest.param(group, id=f"{group}[{GROUPS[group]}]", marks=marks)


def by_key(account: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every record of the dump by object type and unique property value."""
    keyed: dict[str, dict[str, dict[str, Any]]] = {}
    for otype, prop in KEYS.items():
        keyed[otype] = {}
        for record in account.get(otype, []):
            value = record.get("properties", {}).get(prop)
            if value is not None:
                keyed[otype][str(value)] = record
    return keyed


def natural_key(keyed: dict[str, dict[str, dict[str, Any]]], otype: str, hubspot_id: object) -> str:
    for key, record in keyed.get(otype, {}).items():
        if str(record.get("id")) == str(hubspot_id):
            return key
    return f"<{otype} id {hubspot_id}>"


def associations(account: dict[str, Any]) -> set[tuple[str, str, str, str, int]]:
    """The dump's associations, with both ends named by their unique property."""
    keyed = by_key(account)
    return {
        (
            a["from_type"],
            natural_key(keyed, a["from_type"], a["from_id"]),
            a["to_type"],
            natural_key(keyed, a["to_type"], a["to_id"]),
            int(a["type_id"]),
        )
        for a in account.get("associations", [])
    }


def _empty(value: object) -> bool:
    return value is None or value == ""


def problems(account: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """How the account differs from the expected subset; empty when it holds it."""
    found: list[str] = []
    keyed = by_key(account)
    for otype in KEYS:
        for key, want in expected.get(otype, {}).items():
            record = keyed[otype].get(key)
            if want is None:
                if record is not None:
                    found.append(f"{otype} {key!r} must not exist, but it does: {record.get('properties')}")
                continue
            if record is None:
                found.append(f"{otype} {key!r} is missing")
                continue
            props = record.get("properties", {})
            for name, value in want.items():
                actual = record.get(name) if name in ("stage_label", "pipeline_label") else props.get(name)
                if otype == "line_items" and name == "hs_product_id" and actual is not None:
                    actual = natural_key(keyed, "products", actual)  # named by its product's key
                if value is None:
                    if not _empty(actual):
                        found.append(f"{otype} {key!r}: {name} must be empty, is {actual!r}")
                elif actual != value:
                    found.append(f"{otype} {key!r}: {name} is {actual!r}, expected {value!r}")
    held = associations(account)
    for item in expected.get("associations", []):
        if tuple(item) not in held:
            found.append(f"association {item} is missing")
    for from_type, from_key, to_type in expected.get("no_associations", []):
        extra = [a for a in held if a[0] == from_type and a[1] == from_key and a[2] == to_type]
        if extra:
            found.append(f"{from_type} {from_key!r} must have no {to_type} association, has {extra}")
    for otype, count in expected.get("counts", {}).items():
        actual_count = len(account.get(otype, []))
        if actual_count != count:
            found.append(f"the account holds {actual_count} {otype}, expected {count}")
    for otype, least in expected.get("archived", {}).items():
        archived = int(account.get("archived", {}).get(otype, 0))
        if archived < least:
            found.append(f"{archived} {otype} archived, expected at least {least}")
    if "summary" in expected:
        rows = {
            line.rsplit(maxsplit=1)[0].strip(): line.rsplit(maxsplit=1)[1] for line in summary(account, {})
        }
        for row, value in expected["summary"].items():
            if rows.get(row) != str(value):
                found.append(f"summary row {row!r} is {rows.get(row)!r}, expected {value!r}")
    return found


@pytest.mark.parametrize("group", [_case(group) for group in GROUPS])
async def test_scenario_gives_the_expected_account(
    group: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules named in the id (and in the scenario's comments) hold in the resulting account."""
    expected: dict[str, Any] = orjson.loads((HERE / f"{group}.expected.json").read_bytes())
    for name, value in expected.get("env", {}).items():
        monkeypatch.setenv(name, value)
    result = await run(parse(HERE / f"{group}.jsonl"), kafka_bootstrap, tmp_path, 120)
    found = problems(result.account, expected)
    assert not found, "\n".join(found)
    assert not any(result.dead_letters.values()), result.dead_letters


def test_every_scenario_has_its_expectation_and_parses() -> None:
    """Every scenario file is valid, has an expectation, and names its rules in comments."""
    for group in GROUPS:
        path = HERE / f"{group}.jsonl"
        assert parse(path), group
        assert (HERE / f"{group}.expected.json").exists(), group
        assert any(line.startswith("#") for line in path.read_text().splitlines()), group
