"""A real, single-node Apache Kafka (KRaft broker + controller) for development and tests.

There is no Docker engine on the machines this project is built on, but Java and Maven are, and
Kafka's broker is published on Maven Central. So this module fetches the broker's jars with Maven
(cached after the first run), formats KRaft storage in a run directory, starts the JVM bound to
127.0.0.1 on free ports with a small heap, waits until the broker answers a metadata request, and
stops it by the PID it recorded. Every failure (no Java, no Maven, a port in use, a broker that
exits or never answers) raises :class:`BrokerError` with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

DEFAULT_KAFKA_VERSION = "4.3.1"
DEFAULT_HEAP = "512m"
START_TIMEOUT_S = 90.0


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started, or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerInfo:
    """What a running local broker is: where it listens and how to stop it."""

    pid: int
    bootstrap: str
    port: int
    controller_port: int
    run_dir: str
    kafka_version: str
    started_in_s: float


def cache_dir() -> Path:
    """Where fetched jars live; shared by every run directory so the download happens once."""
    base = os.environ.get("SHOPSYNC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shopify-hubspot-sync"
    )
    return Path(base)


def default_run_dir() -> Path:
    """The development broker's data and log folder (inside the working copy, git-ignored)."""
    return Path(os.environ.get("SHOPSYNC_KAFKA_DIR") or ".local/kafka")


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` was not found on PATH. {hint}")
    return path


def fetch(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return the folder holding Kafka's jars, downloading them with Maven the first time."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = _require_tool("mvn", "Install Apache Maven 3.8+ (Debian: `apt-get install maven`).")
    _require_tool("java", "Install Java 17+ (Debian: `apt-get install openjdk-17-jre-headless`).")
    libs.mkdir(parents=True, exist_ok=True)
    pom = resources.files("localkafka").joinpath("pom.xml")
    with resources.as_file(pom) as pom_path:
        cmd = [
            mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
            f"-Dkafka.version={version}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(libs.glob(f"kafka_2.13-{version}.jar")):
        raise BrokerError(
            f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} "
            f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    marker.write_text(version)
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _server_properties(run_dir: Path, port: int, controller_port: int, message_max_bytes: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={run_dir / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Tests create consumer groups all the time; don't make each first join wait 3 s.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            "log.retention.hours=168",
            # R6: the broker's default record size agrees with SHOPSYNC_MAX_RECORD_BYTES (topics
            # the project creates carry it as max.message.bytes too).
            f"message.max.bytes={message_max_bytes}",
            "",
        ]
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _state_file(run_dir: Path) -> Path:
    return run_dir / "broker.json"


def status(run_dir: Path | None = None) -> BrokerInfo | None:
    """The broker recorded in ``run_dir`` if its process is still alive, else None."""
    run_dir = run_dir or default_run_dir()
    state = _state_file(run_dir)
    if not state.exists():
        return None
    info = BrokerInfo(**json.loads(state.read_text()))
    return info if _pid_alive(info.pid) else None


async def _answers(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def wait_until_answers(bootstrap: str, timeout_s: float = 30.0) -> bool:
    """True once a Kafka client can fetch metadata from ``bootstrap``; False after the timeout."""
    deadline = time.monotonic() + timeout_s
    host, _, port = bootstrap.rpartition(":")
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        if asyncio.run(_answers(bootstrap, 5.0)):
            return True
        time.sleep(0.3)
    return False


def start(
    run_dir: Path | None = None,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    version: str = DEFAULT_KAFKA_VERSION,
    heap: str = DEFAULT_HEAP,
    fresh: bool = True,
    timeout_s: float = START_TIMEOUT_S,
    message_max_bytes: int | None = None,
) -> BrokerInfo:
    """Start a broker in ``run_dir`` and return once it answers (or raise BrokerError).

    ``fresh`` wipes the run directory's data first: a test session wants an empty cluster, and a
    single-node KRaft log formatted with another cluster id would refuse to start anyway. To
    restart a stopped broker with its data, pass ``fresh=False`` and the same two ports.
    ``message_max_bytes`` defaults to the record size the project's settings ask for.
    """
    run_dir = (run_dir or default_run_dir()).resolve()
    running = status(run_dir)
    if running is not None:
        raise BrokerError(
            f"A broker from {run_dir} is already running (pid {running.pid}, "
            f"{running.bootstrap}). Stop it first: `shopsync kafka stop`."
        )
    java = _require_tool("java", "Install Java 17+ (Debian: `apt-get install openjdk-17-jre-headless`).")
    if port is not None and port_in_use(port):
        raise BrokerError(f"Port {port} on 127.0.0.1 is already in use; choose another --port.")
    libs = fetch(version)
    port = port or free_port()
    controller_port = controller_port or free_port()
    while controller_port == port:
        controller_port = free_port()

    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    props = run_dir / "server.properties"
    if message_max_bytes is None:
        from config import Settings

        message_max_bytes = Settings().kafka_message_bytes()
    props.write_text(_server_properties(run_dir, port, controller_port, message_max_bytes))
    log4j = resources.files("localkafka").joinpath("log4j2.properties")
    with resources.as_file(log4j) as log4j_path:
        shutil.copy(log4j_path, run_dir / "log4j2.properties")

    classpath = f"{libs}{os.sep}*"
    jvm = [
        java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={run_dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={run_dir}", "-cp", classpath,
    ]  # fmt: skip
    data = run_dir / "data"
    if not (data / "meta.properties").exists():
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}",
             f"--config={props}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerError(f"Formatting KRaft storage failed:\n{(fmt.stdout + fmt.stderr)[-3000:]}")

    t0 = time.monotonic()
    out = open(run_dir / "stdout.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [*jvm, "kafka.Kafka", str(props)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    out.close()
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise BrokerError(
                f"The Kafka broker exited with code {proc.returncode} while starting.\n{_tail(run_dir)}"
            )
        if wait_until_answers(bootstrap, timeout_s=2.0):
            break
        if time.monotonic() > deadline:
            _kill(proc.pid)
            raise BrokerError(f"The Kafka broker did not answer within {timeout_s:.0f} s.\n{_tail(run_dir)}")
    info = BrokerInfo(
        pid=proc.pid, bootstrap=bootstrap, port=port, controller_port=controller_port,
        run_dir=str(run_dir), kafka_version=version, started_in_s=round(time.monotonic() - t0, 2),
    )  # fmt: skip
    _state_file(run_dir).write_text(json.dumps(asdict(info)))
    return info


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64. Like Kafka's own, never one that
    starts with '-', which a command line would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _tail(run_dir: Path, lines: int = 40) -> str:
    chunks = []
    for name in ("stdout.log", "server.log"):
        path = run_dir / name
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- last lines of {path} ---\n" + "\n".join(text))
    return "\n".join(chunks) or f"(no log in {run_dir})"


def _kill(pid: int, grace_s: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop(run_dir: Path | None = None) -> bool:
    """Stop the broker recorded in ``run_dir``; True if one was running."""
    run_dir = (run_dir or default_run_dir()).resolve()
    info = status(run_dir)
    state = _state_file(run_dir)
    if info is None:
        state.unlink(missing_ok=True)
        return False
    _kill(info.pid)
    state.unlink(missing_ok=True)
    return True
