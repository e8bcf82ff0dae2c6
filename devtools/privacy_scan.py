"""Issue 15's scan (G1): every place a customer's personal values are still readable.

After ``customers/redact`` no byte of the customer's email, phone, name or address may remain
readable in any topic, changelog, RocksDB store or dead letter. This module looks for them, and
says where: topic, partition, offset and key, value or header; or RocksDB store and key; or file
and byte offset. It is the check of the acceptance test (``tests/privacy/test_redact_acceptance.py``)
and a tool an operator can point at a deployment (``python -m devtools.privacy_scan --help``).

**What counts as readable.** A needle (one personal value) is searched in the forms it can take:
as sent, trimmed, lower-cased (an email as contacts are keyed), Unicode-normalised, JSON-escaped
(``\\u00eb``) and escaped twice (a JSON document held in a JSON string: a dead letter's command),
a phone also as E.164 (``+447700900461``) and as its digits only, each as UTF-8 bytes. Each
record or row is searched in layers: its bytes as stored (``raw``); every base64 string inside it
decoded (``base64``: a dead letter's original bytes); every JSON string inside it that is itself
JSON (``json``); and, when the scan is given the data keys the key topic holds now, every sealed
envelope opened with them (``opened``): a value sealed under a key that was not shredded is
readable by anyone holding the secret, so a redaction that shredded nothing must not pass. An
envelope whose key is gone opens to nothing, which is what crypto-shredding means.

**What is not a hit.** The key topic is never scanned: it holds wrapped keys, and it is how the
``opened`` layer opens. A pseudonym (``p1:`` + base64url HMAC) is not personal text, and is not
searched for; a match that lies inside a long run of base64url characters (a pseudonym, an
envelope's ciphertext, a token) is base64 noise, counted in :attr:`Scan.noise` but not a hit.
The test's needles are long and distinctive so that noise stays a theoretical case.

**RocksDB.** The worker's tables are opened read-only with rocksdict (``raw_mode``: faust's
bytes), every column family iterated, each key and value searched in the layers above. The store's
files (SST, WAL ``*.log``, ``MANIFEST``, ``OPTIONS``, ``LOG``) are also searched raw, byte by byte.
The worker's options (``streams.app.rocksdb_options``) leave RocksDB's default compression on:
Snappy for SST data blocks (``compression=kSnappyCompression`` in the store's OPTIONS file), none
for the WAL. So the raw search of an SST file cannot see its values, and the rocksdict iteration is
what this scan relies on for what a store holds now; the raw search sees the WAL and MANIFEST,
superseded versions included. What neither sees: a superseded version inside a compressed SST
block (iteration shows the newest version only), until RocksDB compacts it away. A small store's
tables stay in their memtables and WAL (2 MiB write buffers), where the raw search sees them all.

The functions that search bytes are pure (``needles_for``, ``hits_in``); the shell reads the broker
and the stores (:func:`scan`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from schemas.sealing import SEALED_FIELD, Shredded, decrypt, is_envelope
from streams.topic_reader import batches
from streams.topics import key_topic

MIN_NEEDLE_BYTES = 6
"""A shorter form would match unrelated bytes (an id, a price, base64): refused."""
NOISE_RUN = 24
"""A match inside a run of at least this many base64url characters is base64 noise."""
_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class Customer:
    """The personal values of one customer the scan looks for (None: the customer has none)."""

    email: str
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    zip: str | None = None
    who: str = ""
    """Prefixed to each needle's name (``"ann "``: ``ann email``), when one scan looks for several."""


@dataclass(frozen=True)
class Needle:
    """One personal value in every form it can take: ``what`` names the field, never the value,
    so a scan's report shows no personal data."""

    what: str
    forms: tuple[tuple[str, bytes], ...]
    pattern: re.Pattern[bytes] | None = None
    """A phone's digits in any spacing (``+44 7700 900461``, ``+44 7700-900.461``; a national form
    with a trunk prefix, ``07700 900461``, is not searched): free text on checkouts and addresses
    writes a number many ways."""


@dataclass(frozen=True)
class Hit:
    """One place a needle is readable."""

    where: str  # "topic <name>", "rocksdb <store>", "file <path>"
    location: str  # "p0@12 value", "key 'p1:...'", "byte 1234"
    layer: str  # raw, base64, json, opened
    what: str
    form: str


@dataclass
class Scan:
    """What a scan found: the hits, how much it read, and the matches it took for base64 noise."""

    hits: list[Hit] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    files: int = 0
    records: int = 0
    rows: int = 0
    noise: int = 0
    unopened: int = 0  # envelopes whose key is held but that did not open (damaged): none expected

    def places(self) -> dict[str, int]:
        """Hits by place (topic, store or file), most first."""
        counts: dict[str, int] = {}
        for hit in self.hits:
            counts[hit.where] = counts.get(hit.where, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self, first: int = 3) -> str:
        """The report a failing test prints: each place, its count and fields, and its first
        locations with what each holds (field names and forms: never the values)."""
        head = (
            f"{len(self.hits)} hit(s) in {len(self.places())} place(s) (read {len(self.topics)} topics, "
            f"{self.records} records, {len(self.stores)} RocksDB stores, {self.rows} rows, "
            f"{self.files} files; {self.noise} base64-noise matches ignored)"
        )
        lines = [head]
        for where, count in self.places().items():
            here = [h for h in self.hits if h.where == where]
            whats = sorted({h.what for h in here})
            lines.append(f"  {where}: {count} hit(s) of {', '.join(whats)}")
            by_location: dict[str, dict[str, int]] = {}
            for h in here:
                seen = by_location.setdefault(h.location, {})
                shown = f"{h.what} ({h.form}) [{h.layer}]"
                seen[shown] = seen.get(shown, 0) + 1
            for location, seen in list(by_location.items())[:first]:
                held = ", ".join(f"{k}{f' x{n}' if n > 1 else ''}" for k, n in seen.items())
                lines.append(f"    {location}: {held}")
            if len(by_location) > first:
                lines.append(f"    ... and {len(by_location) - first} more location(s)")
        return "\n".join(lines)


# ---- the core: needles and where they are in bytes ----


def _escaped(text: str) -> tuple[str, str]:
    once = json.dumps(text)[1:-1]  # ensure_ascii: \u00eb, as Python's json and many clients write
    return once, json.dumps(once)[1:-1]


def _text_forms(value: str, email: bool = False) -> list[tuple[str, str]]:
    """A text's forms. Only an email is also searched lower-cased (contacts are keyed by the
    normalised address); a name lower-cased would mostly find the email it is part of."""
    trimmed = value.strip()
    forms = [("as sent", value), ("trimmed", trimmed)]
    if email:
        forms += [
            ("lower-cased", trimmed.lower()),
            ("normalised", unicodedata.normalize("NFKC", trimmed).lower()),
        ]
    for name, text in list(forms):
        for norm in ("NFC", "NFD"):
            forms.append((f"{name}, {norm}", unicodedata.normalize(norm, text)))
    for name, text in list(forms):
        once, twice = _escaped(text)
        forms += [(f"{name}, JSON-escaped", once), (f"{name}, JSON-escaped twice", twice)]
    return forms


def _phone_forms(value: str) -> list[tuple[str, str]]:
    digits = "".join(c for c in value if c.isascii() and c.isdigit())
    return [*_text_forms(value), ("E.164", f"+{digits}"), ("digits only", digits)]


def _spaced(phone: str) -> re.Pattern[bytes]:
    """The phone's digits, in order, with up to two separators (space, dash, dot, brackets)
    between any two, not inside a longer number."""
    digits = [re.escape(c.encode()) for c in phone if c.isascii() and c.isdigit()]
    return re.compile(rb"(?<!\d)" + rb"[\s\-.()/]{0,2}".join(digits) + rb"(?!\d)")


def needle(what: str, forms: Iterable[tuple[str, str]]) -> Needle:
    """A needle of the given text forms, as UTF-8 bytes, each once (the first name given wins)."""
    seen: dict[bytes, str] = {}
    for name, text in forms:
        raw = text.encode()
        if len(raw) < MIN_NEEDLE_BYTES:
            raise ValueError(f"{what} ({name}) is {len(raw)} bytes: too short to scan for without false hits")
        seen.setdefault(raw, name)
    return Needle(what, tuple((name, raw) for raw, name in seen.items()))


def needles_for(customer: Customer) -> list[Needle]:
    """The customer's needles: email, phone, first and last name, address lines, zip."""
    who = customer.who
    out = [needle(f"{who}email", _text_forms(customer.email, email=True))]
    if customer.phone:
        out.append(
            replace(needle(f"{who}phone", _phone_forms(customer.phone)), pattern=_spaced(customer.phone))
        )
    for what in ("first_name", "last_name", "address1", "address2", "zip"):
        value = getattr(customer, what)
        if value:
            out.append(needle(f"{who}{what}", _text_forms(value)))
    return out


def _is_noise(data: bytes, start: int, end: int) -> bool:
    """A match whose form is base64url text, inside a longer base64url run (a pseudonym, a
    ciphertext): its bytes are chance, not the value."""
    if not all(b in _B64URL for b in data[start:end]):
        return False
    left, right = start, end
    while left > 0 and data[left - 1] in _B64URL:
        left -= 1
    while right < len(data) and data[right] in _B64URL:
        right += 1
    return left < start and right > end and right - left >= NOISE_RUN


def hits_in(data: bytes, needles: Sequence[Needle]) -> tuple[list[tuple[str, str, int]], int]:
    """(what, form, offset) of every needle form in ``data``, and the noise matches skipped. A
    match inside a longer one counts once, as the longer (an E.164 phone and its digits; a first
    name inside the email it is part of)."""
    found: list[tuple[str, str, int]] = []
    noise = 0
    taken: list[tuple[int, int]] = []
    forms = sorted(((n.what, name, raw) for n in needles for name, raw in n.forms), key=lambda f: -len(f[2]))
    for what, name, raw in forms:
        start = data.find(raw)
        while start >= 0:
            end = start + len(raw)
            if _is_noise(data, start, end):
                noise += 1
            elif not any(a <= start and end <= b for a, b in taken):
                taken.append((start, end))
                found.append((what, name, start))
            start = data.find(raw, start + 1)
    for n in needles:
        for match in n.pattern.finditer(data) if n.pattern is not None else ():
            start, end = match.span()
            if _is_noise(data, start, end):
                noise += 1
            elif not any(a <= start and end <= b for a, b in taken):
                taken.append((start, end))
                found.append((n.what, "digits, spaced", start))
    return found, noise


@dataclass
class _Layers:
    """The layers of one record or row, searched: what it holds, decoded as far as it goes."""

    keys: Mapping[str, bytes] | None
    needles: Sequence[Needle]
    found: list[tuple[str, str, str]] = field(default_factory=list)  # (layer, what, form)
    noise: int = 0
    unopened: int = 0

    def search(self, data: bytes, layer: str, depth: int = 0) -> None:
        hits, noise = hits_in(data, self.needles)
        self.noise += noise
        self.found += [(layer, what, form) for what, form, _ in hits]
        if depth >= _MAX_DEPTH or not data.lstrip().startswith((b"{", b"[", b'"')):
            return
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        self._walk(tree, depth)

    def _walk(self, value: Any, depth: int, name: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self._walk(v, depth, str(k))
        elif isinstance(value, list):
            for v in value:
                self._walk(v, depth, name)
        elif isinstance(value, str):
            self._string(value, depth, name)

    def _string(self, text: str, depth: int, name: str) -> None:
        if is_envelope(text):
            self._open(text, depth, name)
            return
        if text.lstrip().startswith(("{", "[")):
            self.search(text.encode(), "json", depth + 1)
            return
        if _BASE64_TEXT.fullmatch(text):
            decoded = _unbase64(text)
            if decoded is not None:
                self.search(decoded, "base64", depth + 1)

    def _open(self, envelope: str, depth: int, name: str) -> None:
        if self.keys is None:
            return
        for path in dict.fromkeys((SEALED_FIELD, name)):
            try:
                opened = decrypt(self.keys, path, envelope)
            except ValueError:
                continue
            if not isinstance(opened, Shredded):
                self.search(opened.encode(), "opened", depth + 1)
            return
        self.unopened += 1


def _unbase64(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def search_item(
    data: bytes, needles: Sequence[Needle], keys: Mapping[str, bytes] | None
) -> tuple[list[tuple[str, str, str]], int, int]:
    """(layer, what, form) of every hit in one record's key, value or header, or one row's key or
    value; the noise matches; the envelopes that did not open though their key is held."""
    layers = _Layers(keys, needles)
    layers.search(data, "raw")
    return layers.found, layers.noise, layers.unopened


# ---- the shell: topics, stores, files ----


async def topics_of(settings: Settings) -> list[str]:
    """The run's topics as the broker lists them: every topic under the prefix (declared,
    internal, dead letters) and every topic of the app id (faust's changelogs and its own), but
    the key topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        listed = await admin.list_topics()
    finally:
        await admin.close()
    return run_topics(listed, settings.topic_prefix, settings.app_id, key_topic(settings))


def run_topics(listed: Iterable[str], prefix: str, app_id: str, keys: str) -> list[str]:
    """The run's topics among those listed: under the prefix (every topic but Kafka's own
    ``__*`` when there is none) or of the app id, but the key topic."""
    if not prefix:
        return sorted(t for t in listed if not t.startswith("__") and t != keys)
    return sorted(t for t in listed if t.startswith((prefix, f"{app_id}-")) and t != keys)


def _record(scan: Scan, where: str, location: str, data: bytes | None, needles: Sequence[Needle],
            keys: Mapping[str, bytes] | None) -> None:  # fmt: skip
    if not data:
        return
    found, noise, unopened = search_item(data, needles, keys)
    scan.noise += noise
    scan.unopened += unopened
    scan.hits += [Hit(where, location, layer, what, form) for layer, what, form in found]


def _shown_key(key: bytes | None) -> str:
    """A record's key as a location shows it: the first 40 characters (keys are ids and
    pseudonyms where the fix is in; a key that still holds a value is a hit of its own)."""
    text = (key or b"").decode(errors="replace")
    return text if len(text) <= 40 else text[:40] + "..."


async def scan_topics(
    bootstrap: str, topics: Iterable[str], needles: Sequence[Needle], keys: Mapping[str, bytes] | None,
    scan: Scan, timeout_s: float = 60.0,
) -> None:  # fmt: skip
    """Every record of every topic, from offset 0 to the end offsets: key, value and headers."""
    for topic in topics:
        scan.topics.append(topic)
        async for batch in batches(bootstrap, topic, timeout_s):
            for r in batch:
                scan.records += 1
                at, where = f"p{r.partition}@{r.offset}", f"topic {topic}"
                _record(scan, where, f"{at} key", r.key, needles, keys)
                _record(scan, where, f"{at} value (key {_shown_key(r.key)})", r.value, needles, keys)
                for name, value in r.headers:
                    _record(scan, where, f"{at} header {name}", value, needles, keys)


def stores_under(data_dirs: Iterable[Path]) -> list[Path]:
    """Every RocksDB database below the data dirs (a directory with ``CURRENT`` and a manifest)."""
    out: list[Path] = []
    for root in data_dirs:
        for current in sorted(root.rglob("CURRENT")):
            folder = current.parent
            if any(folder.glob("MANIFEST-*")):
                out.append(folder)
    return out


def scan_stores(
    data_dirs: Sequence[Path], needles: Sequence[Needle], keys: Mapping[str, bytes] | None, scan: Scan
) -> None:
    """Every row of every RocksDB store (read-only), then every file below the data dirs raw."""
    for store in stores_under(data_dirs):
        scan.stores.append(str(store))
        where = f"rocksdb {store.relative_to(_root_of(store, data_dirs))}"
        for attempt in range(OPEN_ATTEMPTS):
            try:
                rows = _rows(store)
                break
            except Exception:  # rocksdict raises a bare Exception for RocksDB's IO errors
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
        for shown, key, value in rows:
            scan.rows += 1
            _record(scan, where, f"{shown} (its key)", key, needles, keys)
            _record(scan, where, f"{shown} (its value)", value, needles, keys)
    for root in data_dirs:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # a running worker's RocksDB deleted it (a compacted SST, an old WAL)
            scan.files += 1
            found, noise = hits_in(data, needles)
            scan.noise += noise
            where = f"file {path.relative_to(root)}"
            scan.hits += [Hit(where, f"byte {at}", "raw", what, form) for what, form, at in found]


OPEN_ATTEMPTS = 3
"""A store is read while its worker may run (read-only needs no lock): a file RocksDB deletes
while the read opens its files fails the read, which is then made again."""


def _rows(store: Path) -> list[tuple[str, bytes, bytes]]:
    """(where in the store, key, value) of every row of every column family, read-only."""
    from rocksdict import AccessType, Options, Rdict

    db = Rdict(str(store), options=Options(raw_mode=True), access_type=AccessType.read_only())
    out: list[tuple[str, bytes, bytes]] = []
    try:
        for family in Rdict.list_cf(str(store)):
            table = db if family == "default" else db.get_column_family(family)
            for key, value in table.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)  # raw_mode
                out.append(
                    (f"{'' if family == 'default' else family + ' '}key {_shown_key(key)}", key, value)
                )
    finally:
        db.close()
    return out


def _root_of(store: Path, data_dirs: Sequence[Path]) -> Path:
    return next(d for d in data_dirs if store.is_relative_to(d))


async def held_keys(settings: Settings) -> dict[str, bytes]:
    """The data keys the key topic holds now (read to its end): what anyone with the secret can
    open with, so what the ``opened`` layer uses. Empty when sealing is off."""
    from handlers.sealer import opener_for

    opener = opener_for(settings)
    if opener is None:
        return {}
    try:
        await opener.ensure([])
        return dict(opener.keys)
    finally:
        await opener.stop()


async def scan(
    settings: Settings, data_dirs: Sequence[Path], customers: Sequence[Customer],
    keys: Mapping[str, bytes] | None = None, topics: Sequence[str] | None = None,
) -> Scan:  # fmt: skip
    """Issue 15's scan for these customers: every topic of the run (:func:`topics_of`, unless
    ``topics`` is given), every RocksDB store and file below ``data_dirs``; sealed values opened
    with ``keys`` (None: the keys the key topic holds now; pass ``{}`` to open nothing)."""
    needles = [n for c in customers for n in needles_for(c)]
    opened = await held_keys(settings) if keys is None else keys
    result = Scan()
    names = list(topics) if topics is not None else await topics_of(settings)
    await scan_topics(settings.kafka_bootstrap_servers, names, needles, opened, result)
    await asyncio.to_thread(scan_stores, data_dirs, needles, opened, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devtools.privacy_scan``: the settings from the environment (as every service:
    ``KAFKA_BOOTSTRAP_SERVERS``, ``SHOPSYNC_TOPIC_PREFIX``, ``SHOPSYNC_APP_ID``,
    ``SHOPSYNC_PRIVACY_SECRET``...), the customer's values as options. Prints places and counts
    (field names, never the values); exits 1 when anything is readable."""
    parser = argparse.ArgumentParser(prog="python -m devtools.privacy_scan", description=main.__doc__)
    parser.add_argument("--email", required=True)
    for name in ("phone", "first-name", "last-name", "address1", "address2", "zip"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--data-dir", type=Path, action="append", default=None,
                        help="A worker's data dir, or any folder to search raw (logs, a backup); repeatable "
                        "[default: SHOPSYNC_DATA_DIR].")  # fmt: skip
    parser.add_argument("--no-open", action="store_true", help="Do not open sealed values.")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        settings.require_privacy_key()
    except ValueError as exc:
        parser.error(str(exc))
    customer = Customer(
        args.email, args.phone, args.first_name, args.last_name, args.address1, args.address2, args.zip
    )
    dirs = args.data_dir or [settings.data_dir]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        parser.error(f"no such data dir: {', '.join(missing)}")
    keys: Mapping[str, bytes] | None = {} if args.no_open else None
    found = asyncio.run(scan(settings, dirs, [customer], keys))
    print(found.summary(first=10))
    return 1 if found.hits else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
