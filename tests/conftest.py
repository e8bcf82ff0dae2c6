"""Shared fixtures: a real Kafka broker for the session, and per-test isolated settings.

The broker, in order of preference: ``KAFKA_BOOTSTRAP_SERVERS`` (an existing cluster, as .ci/run
provides), else testcontainers' Kafka module when a Docker engine answers, else the project's
local KRaft broker fetched from Maven Central. There is no in-memory fake broker.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from tests.g1_modes import PLAIN

_counter = itertools.count()


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bootstrap address of a real broker, for the whole test session."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    if _docker_engine_answers():
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError:  # newer testcontainers layouts
            from testcontainers.community.kafka import KafkaContainer
        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from localkafka import start, stop

    run_dir = tmp_path_factory.mktemp("kafka")
    info = start(run_dir)
    try:
        yield info.bootstrap
    finally:
        stop(run_dir)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings isolated to one test: own topic prefix, app id (consumer group) and data dir."""
    n = next(_counter)
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:40]
    tag = f"t{os.getpid()}-{n}-{name}"
    tag = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in tag)
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"{tag}.",
        app_id=f"shopsync-{tag}",
        data_dir=tmp_path / "worker",
        partitions=2,
        session_timeout_s=6.0,
        **PLAIN,  # G1's settings off (tests/g1_modes.py)
    )
