"""Shared fixtures: a real ``redis-server`` for the RedisStore tests, and a Sentinel group.

The session starts one ``redis-server`` on a free 127.0.0.1 port, with its own
temporary directory and no persistence (``--save '' --appendonly no``), and stops
it at the end. Each test gets its own key prefix, so tests never see each
other's data. :func:`restart_redis` restarts the server on the same port (its
data is lost, as after a crash of a Redis without persistence).

``sentinel_group`` starts, for one test, a primary, a replica and three
``redis-sentinel`` processes watching it (quorum 2, a node is down after 1 s),
all on loopback, and stops every one of them by PID afterwards.

``redis_cluster`` starts, once per session, three ``redis-server
--cluster-enabled yes`` primaries on loopback, each with its own directory,
joins them with ``redis-cli --cluster create`` (no replicas), waits until every
node reports ``cluster_state:ok``, and stops them by PID at the end.
``ClusterGroup(directory, replicas=1)`` is the same with a replica per primary
(tests/test_redis_cluster_failover.py starts one per module).

Without the binary the Redis tests are skipped, except under CI (the ``CI``
environment variable set), where a missing Redis is a failure.

Markers (declared in pyproject.toml): ``redis`` needs the redis-server;
``slow`` is a multi-process or long-running scenario; ``realtime`` runs in real
time (a subprocess of ours, a Redis restart). ``make test-fast`` leaves out the
last two and walks the lifecycle machine with the ``fast`` profile below.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The inner loop's profile for tests/test_lifecycle.py (LIFECYCLE_PROFILE=fast):
# a few hundred random histories instead of CI's ten thousand.
settings.register_profile(
    "fast",
    max_examples=300,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Real seconds redis-server gets to say it is ready after it was started.
START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    return _ask(port, b"PING").startswith(b"+PONG")


def _ask(port: int, command: bytes) -> bytes:
    """The start of the server's answer to an inline ``command`` (b"" if unreachable)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(command + b"\r\n")
            return conn.recv(4096)
    except OSError:
        return b""


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, restartable on the same port.

    ``extra`` are more command-line options (``--replicaof``, say). With
    ``sentinel_conf`` (the lines of a config file) it runs as ``redis-sentinel``.
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        extra: Sequence[str] = (),
        sentinel_conf: Sequence[str] | None = None,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.extra = list(extra)
        self.sentinel_conf = sentinel_conf
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it is ready (RuntimeError if it is not).

        Readiness comes from redis-server itself: run as ``--supervised systemd``
        with ``NOTIFY_SOCKET`` set, it sends "READY=1" to that datagram socket once
        it accepts connections, so the wait is a blocking receive, not a poll.
        """
        notify_dir = tempfile.mkdtemp(prefix="redis-notify-")  # short: AF_UNIX path limit
        notify_path = os.path.join(notify_dir, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            try:
                self._spawn(notify_path)
                self._wait_ready(notify)
            finally:
                shutil.rmtree(notify_dir, ignore_errors=True)

    def _spawn(self, notify_path: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.sentinel_conf is None:
            command = [self.binary, "--save", "", "--appendonly", "no", *self.extra]
        else:  # sentinel rewrites its config file: each gets its own
            conf = self.directory / "sentinel.conf"
            conf.write_text("\n".join(self.sentinel_conf) + "\n")
            command = [self.binary, str(conf), *self.extra]
        command += [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--supervised", "systemd",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]
        env = {**os.environ, "NOTIFY_SOCKET": notify_path}
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)  # noqa: S603

    def _wait_ready(self, notify: socket.socket) -> None:
        give_up = time.monotonic() + START_TIMEOUT
        while True:
            notify.settimeout(max(give_up - time.monotonic(), 0.001))
            try:
                message = notify.recv(4096)
            except TimeoutError:
                break
            if b"READY=1" in message.split(b"\n"):
                if _answers_ping(self.port):
                    return
                break
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on port {self.port}: {log}")

    def stop(self) -> None:
        """Stop the server (its data is gone: there is no persistence)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def signal(self, number: signal.Signals) -> None:
        """Send ``number`` to the server's process (SIGSTOP, SIGCONT, SIGKILL...)."""
        assert self._process is not None
        self._process.send_signal(number)
        if number == signal.SIGKILL:
            self._process.wait()
            self._process = None


def restart_redis(server: RedisServer) -> None:
    """Restart ``server`` on the same port, losing its data (a crash without persistence)."""
    server.restart()


def binaries(*names: str) -> list[str]:
    """The paths of the Redis programs ``names``: the test is skipped without one,
    and fails under CI, which must install them (see .ci/run)."""
    paths = [shutil.which(name) for name in names]
    missing = [name for name, path in zip(names, paths, strict=True) if path is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} not installed: CI must install it (see .ci/run)")
        pytest.skip(f"{', '.join(missing)} not installed")
    return [path for path in paths if path is not None]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server (skipped without the binary, failed under CI)."""
    (binary,) = binaries("redis-server")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server (running: restarted if a test stopped it)."""
    if not _answers_ping(redis_server.port):
        redis_server.restart()
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own."""
    return f"test:{uuid.uuid4().hex[:12]}:"


class SentinelGroup:
    """A primary, a replica and three sentinels watching them (service ``SERVICE``)."""

    SERVICE = "fleet"

    def __init__(self, directory: Path) -> None:
        server, sentinel = binaries("redis-server", "redis-sentinel")
        self.primary = RedisServer(server, directory / "primary")
        self.replica = RedisServer(
            server, directory / "replica", ["--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        conf = [
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2",
            f"sentinel down-after-milliseconds {self.SERVICE} 1000",
            f"sentinel failover-timeout {self.SERVICE} 10000",
        ]
        self.sentinels = [
            RedisServer(sentinel, directory / f"sentinel{n}", sentinel_conf=conf)
            for n in range(3)
        ]

    @property
    def url(self) -> str:
        """The store's URL for the group: every sentinel, the service, database 0."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> None:
        for server in (self.primary, self.replica, *self.sentinels):
            server.start()

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Sentinel group of this test's own, stopped by PID afterwards."""
    group = SentinelGroup(tmp_path)
    group.start()
    yield group
    group.stop()


class ClusterGroup:
    """Three cluster-enabled primaries on loopback, joined into one Redis Cluster.

    With ``replicas``, each primary gets that many replicas of its own (a module's
    cluster for failovers: the session's has none).
    """

    PRIMARIES = 3

    def __init__(self, directory: Path, replicas: int = 0) -> None:
        server, cli = binaries("redis-server", "redis-cli")
        self.cli = cli
        self.replicas = replicas
        self.nodes = [
            RedisServer(server, directory / f"node{n}", [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",  # in the node's own --dir
                "--cluster-node-timeout", "1000",
                # a free bus port of its own (by default the port + 10000, maybe taken)
                "--cluster-port", str(_free_port()),
                # a replica's first sync starts at once, not after the default 5 s
                "--repl-diskless-sync-delay", "0",
            ])
            for n in range(self.PRIMARIES * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """The store's URL for the cluster: every node (the client finds the slots)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(  # noqa: S603
            [self.cli, "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )
        # no notification says the slots are agreed on, or that a replica caught up
        # with its primary: ask every node, briefly
        give_up = time.monotonic() + START_TIMEOUT
        while not all(self._ready(node.port) for node in self.nodes):
            if time.monotonic() > give_up:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def _ready(self, port: int) -> bool:
        if b"cluster_state:ok" not in _ask(port, b"CLUSTER INFO"):
            return False
        replication = _ask(port, b"INFO replication")
        return b"role:master" in replication or b"master_link_status:up" in replication

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    """The session's three-primary Redis Cluster, stopped by PID at the end."""
    group = ClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: ClusterGroup) -> str:
    """The ``redis+cluster://`` URL of the session's cluster."""
    return redis_cluster.url
