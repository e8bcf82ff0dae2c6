"""The local broker helper: starts and stops a real broker, and fails with clear messages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from localkafka import BrokerError, start, status, stop


def shopsync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopsync", *args], capture_output=True, text=True, timeout=180,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(BrokerError, match="`java` was not found"):
        start(tmp_path / "run")


def test_missing_maven_is_a_clear_error_when_jars_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = shutil.which("java")
    assert java is not None
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("SHOPSYNC_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(BrokerError, match="`mvn` was not found"):
        start(tmp_path / "run")


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BrokerError, match=f"Port {port} .* already in use"):
            start(tmp_path / "run", port=port)


def test_a_broker_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"(exited with code|Formatting KRaft storage failed)(.|\n)*heap"):
        start(tmp_path / "run", heap="1k", timeout_s=30)
    assert status(tmp_path / "run") is None


@pytest.mark.kafka
def test_one_command_starts_it_prints_the_bootstrap_and_another_stops_it(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "dev-kafka")
    started = shopsync("kafka", "start", "--dir", run_dir)
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip()
    assert bootstrap.startswith("127.0.0.1:")
    try:
        assert shopsync("kafka", "status", "--dir", run_dir).stdout.strip() == bootstrap
        again = shopsync("kafka", "start", "--dir", run_dir)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = shopsync("kafka", "stop", "--dir", run_dir)
    assert stopped.stdout.strip() == "stopped"
    assert shopsync("kafka", "status", "--dir", run_dir).returncode == 1
    assert not stop(Path(run_dir))


def test_cluster_ids_never_look_like_an_option() -> None:
    """A regression: a random id starting with '-' made `kafka-storage format` fail (~1 in 64)."""
    from localkafka.broker import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
