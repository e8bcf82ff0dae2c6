"""``X-HubSpot-Signature-v3`` as HubSpot's "Validating requests" page documents it.

The inputs are the page's own example request (client secret ``yyyyyyyy-...``, ``POST`` to
``https://www.example.com/webhook_uri`` with the body ``{"example_field":"example_value"}``; the
timestamp is the ``occurredAt`` of the page's example event). The page gives no v3 result, so the
expected signatures were computed apart from this code, with
``printf '%s' "<method><uri><body><timestamp>" | openssl dgst -sha256 -hmac "<secret>" -binary | base64``
over the URI already decoded as the page's table says.
"""

from __future__ import annotations

import pytest

from handlers.signatures import HUBSPOT_DECODED, hubspot_uri, hubspot_v3, hubspot_verified

SECRET = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://www.example.com/webhook_uri"
BODY = b'{"example_field":"example_value"}'
AT = "1564113600000"
EXAMPLE_SIGNATURE = "eT0ip2TKVpsIi1vb5C2Uu42eNdHL+oTE3NRZOF67O2U="  # openssl, over POST + URI + BODY + AT
TABLE_SIGNATURE = "fg1H8tawaHHll0LZXhQOu/RlwRg/TJESDx6GMX1smPc="  # GET + URI?a=:/?@!$'()*,; + AT
UNDECODED_SIGNATURE = "3R1XjlQDF/2LmHJRYvjZpvz9WagL5wrJclnGVb92uhE="  # GET + URI?a=%20%26%253A + AT


def test_the_pages_example_request_signs_to_the_independently_computed_value() -> None:
    assert hubspot_v3(SECRET, "POST", URI, BODY, AT) == EXAMPLE_SIGNATURE
    assert hubspot_verified(SECRET, "POST", URI, BODY, AT, EXAMPLE_SIGNATURE, now_ms=int(AT))


def test_every_encoded_character_of_the_pages_table_is_decoded_before_signing() -> None:
    encoded = f"{URI}?a=" + "".join(HUBSPOT_DECODED)
    assert list(HUBSPOT_DECODED) == ["%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A",
                                     "%2C", "%3B"]  # fmt: skip
    assert hubspot_uri(encoded) == f"{URI}?a=:/?@!$'()*,;"
    assert hubspot_v3(SECRET, "GET", encoded, b"", AT) == TABLE_SIGNATURE
    # Lower-case hex digits name the same characters (RFC 3986, 2.1).
    assert (
        hubspot_v3(SECRET, "GET", f"{URI}?a=" + "".join(HUBSPOT_DECODED).lower(), b"", AT) == TABLE_SIGNATURE
    )


def test_characters_outside_the_table_stay_encoded() -> None:
    """``%20`` and ``%26`` are not in the table, and ``%253A`` is an encoded ``%`` followed by
    ``3A``: decoding it to ``%3A`` (or further, to ``:``) would sign another URI than HubSpot's."""
    uri = f"{URI}?a=%20%26%253A"
    assert hubspot_uri(uri) == uri
    assert hubspot_v3(SECRET, "GET", uri, b"", AT) == UNDECODED_SIGNATURE


def test_a_query_with_an_encoded_colon_verifies_as_hubspot_signs_it() -> None:
    """The bug of the issue: HubSpot signs ``...?at=10:00``; the request line says ``at=10%3A00``."""
    signed_by_hubspot = hubspot_v3(SECRET, "POST", f"{URI}?at=10:00", BODY, AT)
    assert hubspot_verified(SECRET, "POST", f"{URI}?at=10%3A00", BODY, AT, signed_by_hubspot, now_ms=int(AT))


@pytest.mark.parametrize(
    ("age_ms", "accepted"),
    [(0, True), (5 * 60 * 1000, True), (5 * 60 * 1000 + 1, False), (-(5 * 60 * 1000 + 1), False)],
)
def test_a_timestamp_older_than_five_minutes_is_refused(age_ms: int, accepted: bool) -> None:
    now = int(AT) + age_ms
    assert hubspot_verified(SECRET, "POST", URI, BODY, AT, EXAMPLE_SIGNATURE, now_ms=now) is accepted


@pytest.mark.parametrize(
    ("method", "uri", "body", "timestamp", "signature"),
    [
        ("POST", URI, BODY + b" ", AT, EXAMPLE_SIGNATURE),  # another body
        ("GET", URI, BODY, AT, EXAMPLE_SIGNATURE),  # another method
        ("POST", URI + "/", BODY, AT, EXAMPLE_SIGNATURE),  # another URI
        ("POST", URI, BODY, str(int(AT) + 1), EXAMPLE_SIGNATURE),  # another timestamp
        ("POST", URI, BODY, AT, None),
        ("POST", URI, BODY, None, EXAMPLE_SIGNATURE),
        ("POST", URI, BODY, "not-a-number", EXAMPLE_SIGNATURE),
    ],
)
def test_any_other_request_is_refused(
    method: str, uri: str, body: bytes, timestamp: str | None, signature: str | None
) -> None:
    assert not hubspot_verified(SECRET, method, uri, body, timestamp, signature, now_ms=int(AT))
