"""One figure on its own, without the runner: ``python -m bench.figures.NAME [--quick]``.

Builds the ``BenchEnv`` the runner would (``KAFKA_BOOTSTRAP_SERVERS``, else a local broker started
for the run and stopped after), measures the figure once and prints its ``Measured``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import orjson

from bench.suite import BenchEnv, Figure, Measured
from devtools.localrun import kafka_bootstrap
from localkafka import DEFAULT_KAFKA_VERSION


async def _measure(figure: Figure, env: BenchEnv) -> Measured:
    return await figure.run(env)


def run_alone(figure: Figure) -> None:
    parser = argparse.ArgumentParser(description=f"{figure.title} (target {figure.target})")
    parser.add_argument("--quick", action="store_true", help="Small inputs, same code paths.")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix=f"shopsync-bench-{figure.name}-"))
    with kafka_bootstrap(scratch / "kafka") as bootstrap:
        env = BenchEnv(
            bootstrap=bootstrap, quick=args.quick, scratch_dir=str(scratch),
            kafka_version=os.environ.get("SHOPSYNC_KAFKA_VERSION", DEFAULT_KAFKA_VERSION),
        )  # fmt: skip
        measured = asyncio.run(_measure(figure, env))
    print(f"{figure.title}: {measured.result:,.3f} {measured.unit} (target {figure.target})")
    print(orjson.dumps(asdict(measured), option=orjson.OPT_INDENT_2).decode())
