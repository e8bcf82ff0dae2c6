"""A local stand-in for the part of HubSpot's CRM API the writer uses: real HTTP, HubSpot's
shapes and semantics, persisted in SQLite, with rate limits, signed deletion webhooks and
injectable faults. See ``running_sandbox`` (tests) and ``python -m hubspot_sandbox serve``."""

from hubspot_sandbox.config import SandboxConfig
from hubspot_sandbox.server import Sandbox, running_sandbox, serve
from hubspot_sandbox.webhooks import sign, verify

__all__ = ["Sandbox", "SandboxConfig", "running_sandbox", "serve", "sign", "verify"]
