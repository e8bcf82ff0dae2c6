"""Crypto-shredding's cost (SPEC G1): CPU per encrypt/decrypt and bytes per record.

Measures ``streams.shredding`` (not wired into the product yet) on the sample store's customer
body: a pseudonym and a key id (HMAC-SHA256), one field sealed and opened (AES-256-GCM), a whole
``customers/*`` body's personal values sealed and opened as the module does it (one envelope per
record) and, for comparison, field by field (one envelope per value), a data key unwrapped; and
what sealing adds to a body's bytes and what one subject costs the key topic; and what the worker
seals itself (a contact's state row, an upsert: ``streams.derived_sealing``). Nonces come from
``os.urandom`` as in production. Figures are per call, best of ``--rounds`` rounds (a shared
machine: the best round is the least disturbed one).

Run: .venv/bin/python -m bench.bench_privacy [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from devtools.localrun import delivery_for
from devtools.samplestore import customer_body, generate
from schemas.commands import Upsert, encode_command
from streams.derived_sealing import open_row, seal_command, seal_row
from streams.entities import ROWS
from streams.inprocess import InProcessPipeline
from streams.privacy import pseudonym
from streams.shredding import (
    decrypt,
    decrypt_customer,
    encrypt,
    encrypt_customer,
    key_encryption_key,
    key_id,
    personal_part,
    unwrap,
    wrap,
)

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = os.urandom(32)
KAFKA_RECORD_OVERHEAD = 70
"""Bytes Kafka adds to a record besides its key and value, roughly (a record's header and varints,
10-20 bytes, and its share of the 61-byte batch header; a batch of one pays it all): an upper bound."""


def best(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Seconds per call, best of ``rounds``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def field_by_field(body: dict[str, Any], kid: str, data_key: bytes) -> dict[str, Any]:
    """The alternative envelope: each personal value sealed where it stands."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(body))
    for place, values in personal_part(body).items():
        target: Any = out
        for step in place.split(".") if place else []:
            target = target[int(step)] if step.isdigit() else target[step]
        for name, value in values.items():
            target[name] = encrypt(data_key, kid, f"{place}.{name}", str(value), os.urandom(12))
    return out


def derived(n: int, r: int) -> dict[str, float]:
    """What the worker seals itself (G1 step 3's second part): a sample-store contact's state row
    sealed and opened whole, and its largest upsert command sealed, as ``streams.app`` does."""
    pipeline = InProcessPipeline()
    for event in sorted(generate(customers=3, seed=11).events, key=lambda e: e.at):
        pipeline.deliver(delivery_for(event))
    state = max(pipeline.contact_states.values(), key=lambda s: len(orjson.dumps(s.model_dump(mode="json"))))
    row = ROWS["contacts"].to_row(state)
    upserts = [c for c in pipeline.commands if isinstance(c, Upsert) and c.record.object_type == "contacts"]
    command = encode_command(max(upserts, key=lambda c: len(encode_command(c))))
    data_key, ref = os.urandom(32), "kid~v"
    sealed = seal_row(row, ref, data_key, os.urandom(12))
    print(
        f"contact row: {len(orjson.dumps(row))} bytes, sealed {len(orjson.dumps(sealed))}; "
        f"upsert: {len(command)} bytes, sealed {len(seal_command(command, ref, data_key, os.urandom(12)))}"
    )
    return {
        "seal a contact's state row (whole)": best(
            lambda: seal_row(row, ref, data_key, os.urandom(12)), n, r
        ),
        "open a contact's state row": best(lambda: open_row(sealed, {ref: data_key}), n, r),
        "seal a contact upsert command": best(
            lambda: seal_command(command, ref, data_key, os.urandom(12)), n, r
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    body = customer_body(4242, "ada.lovelace@example.com", "Ada", "Lovelace", AT, phone="+15556251199")
    email = "ada.lovelace@example.com"
    kid = key_id(SECRET, "s.myshopify.com", email, None)
    assert kid is not None
    data_key, kek = os.urandom(32), key_encryption_key(SECRET)
    ring = {kid: data_key}
    sealed_field = encrypt(data_key, kid, "email", email, os.urandom(12))
    sealed = encrypt_customer(body, kid, data_key, os.urandom(12))
    wrapped = wrap(kek, kid, data_key, os.urandom(12))
    n, r = args.calls, args.rounds
    figures = {
        "pseudonym (HMAC-SHA256)": best(lambda: pseudonym(SECRET, "email", email), n, r),
        "key id (HMAC-SHA256)": best(lambda: key_id(SECRET, "s.myshopify.com", email, None), n, r),
        "seal one field (AES-256-GCM)": best(
            lambda: encrypt(data_key, kid, "email", email, os.urandom(12)), n, r
        ),
        "open one field": best(lambda: decrypt(ring, "email", sealed_field), n, r),
        "seal a customer body (one envelope)": best(
            lambda: encrypt_customer(body, kid, data_key, os.urandom(12)), n, r
        ),
        "open a customer body (one envelope)": best(lambda: decrypt_customer(sealed, ring), n, r),
        "seal a customer body field by field": best(lambda: field_by_field(body, kid, data_key), n // 10, r),
        "unwrap a data key": best(lambda: unwrap(kek, kid, wrapped), n, r),
        "orjson dumps+loads of the body (scale)": best(lambda: orjson.loads(orjson.dumps(body)), n, r),
        **derived(n, r),
    }
    print(f"{'figure':42} {'per call':>11}")
    for name, seconds in figures.items():
        print(f"{name:42} {seconds * 1e6:8.2f} us")
    plain = len(orjson.dumps(body))
    one, each = len(orjson.dumps(sealed)), len(orjson.dumps(field_by_field(body, kid, data_key)))
    values = sum(len(v) for v in personal_part(body).values())
    print(f"customer body: {plain} bytes; one envelope {one} (+{one - plain}, {one / plain:.2f}x); "
          f"field by field {each} (+{each - plain}, {each / plain:.2f}x, {values} values)")  # fmt: skip
    per_key = len(kid) + len(wrapped) + KAFKA_RECORD_OVERHEAD
    print(f"key topic: {len(kid)} bytes of key + {len(wrapped)} of value a subject (~{per_key} with "
          f"Kafka's framing): {per_key * 100_000 / 1e6:.1f} MB for 100,000 customers, "
          f"{per_key:.0f} MB for a million")  # fmt: skip


if __name__ == "__main__":
    main()
