"""G1's two settings as the tests pin them.

Both are on by default (the product's); a test of anything but privacy reads the plain records it
writes, so it runs with both off. The privacy tests, the chaos test and the acceptance test turn
them on."""

from __future__ import annotations

from typing import Any

PLAIN: dict[str, Any] = {"seal_personal_data": False, "redactable": False}
"""Settings fields: nothing sealed, contacts keyed by email."""
