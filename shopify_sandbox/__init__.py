"""A local stand-in for Shopify's GraphQL Admin API, for tests and the demo: real HTTP, the part
of Shopify's schema an import reads, the bulk-operation lifecycle (failure and partial data
included), cost-based throttling, and bulk exports served as JSONL with HTTP Range. It refuses
what Shopify documents as refused; RULES.md lists each rule with its source. The store is the
project's sample store (``devtools.samplestore``), generated lazily, so the same seed gives the
same store as the webhook path. See ``running_shopify_sandbox`` (tests) and
``shopsync shopify-sandbox`` (the command line).

Where Shopify is needlessly complex here, the sandbox simplifies, and says so:

- Time passes by reads: each request that reads a bulk operation moves it one step on.
- The search ``query``, ``sortKey`` and ``reverse`` of root connections are accepted; only
  ``reverse`` is applied.
- The customer an order or a checkout names lists no orders of its own (no reference cycles, so
  records are freed as soon as they are written).
- The sample store sells to no company: ``companies`` N (``--companies``) makes N companies of its
  first 3N customers (``b2b``); their orders are not B2B orders (no ``purchasingEntity``).
- One app on one shop: one bucket, one list of operations; no access scopes.
"""

from shopify_sandbox.config import ShopifySandboxConfig
from shopify_sandbox.server import ShopifySandbox, running_shopify_sandbox, serve

__all__ = ["ShopifySandbox", "ShopifySandboxConfig", "running_shopify_sandbox", "serve"]
