"""What every sandbox test needs: the test token, an HTTP client for a running sandbox, and a POST
that asserts the status HubSpot would answer."""

from __future__ import annotations

from typing import Any

import httpx

from hubspot_sandbox import Sandbox

TOKEN = "pat-na1-test-token"
SECRET = "app-client-secret"


def http_client(sandbox: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"})


def text_property(name: str, group: str, **changes: Any) -> dict[str, Any]:
    """A property definition HubSpot accepts (string, text), changed by ``changes``."""
    return {"name": name, "label": name, "type": "string", "fieldType": "text", "groupName": group, **changes}


async def post(client: httpx.AsyncClient, path: str, body: Any, status: int) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json() if response.content else None
