"""G1's two settings as the tests pin them.

Both are on by default (the product's); a test of anything but privacy reads the plain records it
writes, so it runs with both off (``config.privacy.G1_OFF``, also what the benchmark figures run
with). The privacy tests, the chaos test and the acceptance test turn them on."""

from __future__ import annotations

from typing import Any

from config.privacy import G1_OFF

PLAIN: dict[str, Any] = dict(G1_OFF)
"""Settings fields: nothing sealed, contacts keyed by email."""
