"""A bulk export's JSON Lines back into whole records: each node of a nested connection is its own
line carrying ``__parentId``, after its parent's line (Shopify writes parents first), so a root
record is complete when the next root line begins or the file ends.

Every record comes with the byte range of its lines, which is what makes a download resumable:
the offset of the first root not yet appended is where a Range request starts again, and a
line never half-read (a download cut mid-line) is never parsed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = dict[str, Any]

CHILD_LISTS = {
    "LineItem": "lineItems",
    "AbandonedCheckoutLineItem": "lineItems",
    "ProductVariant": "variants",
    "MailingAddress": "addressesV2",
    "Order": "orders",
    "CompanyContact": "contacts",
    "CompanyLocation": "locations",
}
"""Which list of its parent a child line joins, by the kind in its gid (a line does not name the
connection it came from; in the import's queries each kind comes from one connection)."""


@dataclass
class Rebuilt:
    """One root record with its children folded in (``record``), or, when its lines could not be
    read, ``problem`` and the raw bytes. ``start``/``end``: its bytes in the file."""

    start: int
    end: int
    lines: int
    record: JSON | None = None
    problem: str | None = None
    raw: bytes = b""


def _kind(gid: object) -> str:
    return str(gid).removeprefix("gid://shopify/").partition("/")[0]


@dataclass
class ParentRebuilder:
    """Feeds lines in file order; hands back each root once it is complete."""

    open: Rebuilt | None = None
    _by_id: dict[str, JSON] = field(default_factory=dict)

    def feed(self, offset: int, line: bytes) -> list[Rebuilt]:
        """The roots this line completes (none, the open one, or the open one and a bad line)."""
        end = offset + len(line)
        if not line.strip():
            if self.open is not None:
                self.open.end, self.open.lines = end, self.open.lines + 1
            return []
        try:
            node = orjson.loads(line)
            if not isinstance(node, dict):
                raise ValueError("a line that is not a JSON object")
        except ValueError as exc:
            bad = Rebuilt(offset, end, 1, problem=f"unreadable bulk line: {str(exc)[:80]}", raw=line)
            return [*self.finish(), bad]
        parent = node.pop("__parentId", None)
        if parent is None:
            done = self.finish()
            self.open = Rebuilt(offset, end, 1, record=node)
            self._remember(node)
            return done
        holder = self._by_id.get(str(parent))
        if self.open is None or holder is None:
            orphan = Rebuilt(offset, end, 1, problem="a child line whose parent is not before it", raw=line)
            return [*self.finish(), orphan]
        holder.setdefault(CHILD_LISTS.get(_kind(node.get("id")), "children"), []).append(node)
        self._remember(node)
        self.open.end, self.open.lines = end, self.open.lines + 1
        return []

    def _remember(self, node: JSON) -> None:
        if node.get("id") is not None:
            self._by_id[str(node["id"])] = node

    def finish(self) -> list[Rebuilt]:
        """The open root, now complete (the file ended, or the next root began)."""
        done, self.open = self.open, None
        self._by_id.clear()
        return [done] if done is not None else []


async def split_lines(chunks: AsyncIterator[bytes], offset: int) -> AsyncIterator[tuple[int, bytes]]:
    """Complete lines (with their offsets) of a byte stream that starts at ``offset``; a last line
    without its newline is given only when the stream ends cleanly."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while (newline := buffer.find(b"\n", start)) >= 0:
            yield offset, buffer[start : newline + 1]
            offset += newline + 1 - start
            start = newline + 1
        buffer = buffer[start:]
    if buffer:
        yield offset, buffer


def rebuild(lines: Iterator[tuple[int, bytes]]) -> Iterator[Rebuilt]:
    """Every root of a whole file's lines (the air-gap path and tests)."""
    rebuilder = ParentRebuilder()
    for offset, line in lines:
        yield from rebuilder.feed(offset, line)
    yield from rebuilder.finish()
