"""The sandbox signs its webhooks as HubSpot does, so the bridge's check of them is tested
against HubSpot's rule, not against the sandbox's own shortcut: the URI's table characters
(``%3A`` ...) decoded before signing, nothing else."""

from __future__ import annotations

import pytest

from handlers.signatures import hubspot_v3
from hubspot_sandbox.webhooks import sign

SECRET = "app-secret"
BODY = b'[{"eventId":1,"subscriptionType":"contact.deletion","objectId":7}]'


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/webhooks/hubspot",
        "https://example.com/webhooks/hubspot?portal=a%3Ab%3a%2Fc",  # both hex cases decode
        "https://example.com/webhooks/hubspot?q=one%20two%26three%253A",  # these stay as sent
    ],
)
def test_the_sandbox_signs_what_the_bridge_verifies(uri: str) -> None:
    assert sign(SECRET, "POST", uri, BODY, 1_700_000_000_000) == hubspot_v3(
        SECRET.encode(), "POST", uri, BODY, "1700000000000"
    )


def test_a_decoded_character_changes_nothing_but_an_other_encoding_does() -> None:
    encoded = sign(SECRET, "POST", "https://example.com/h?x=a%3Ab", BODY, 1)
    assert encoded == sign(SECRET, "POST", "https://example.com/h?x=a:b", BODY, 1)
    assert encoded != sign(SECRET, "POST", "https://example.com/h?x=a%253Ab", BODY, 1)
