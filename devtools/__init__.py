"""Development aids, outside the product's import path: running the pipeline's parts locally
(``localrun``), a deterministic sample store (``samplestore``), the ``simulate`` and ``demo``
commands, reading an account back (``readback``) and comparing accounts (``account``).

Tests, benchmarks, ``shopsync simulate`` and ``shopsync demo`` import these; no module of
``config``, ``schemas``, ``streams``, ``handlers`` or ``hubspot_sandbox`` does
(tests/test_layering.py checks it).
"""
