"""Shared fixtures: a real ``redis-server`` for the RedisStore tests.

The session starts one ``redis-server`` on a free 127.0.0.1 port, with its own
temporary directory and no persistence (``--save '' --appendonly no``), and stops
it at the end. Each test gets its own key prefix, so tests never see each
other's data. :func:`restart_redis` restarts the server on the same port (its
data is lost, as after a crash of a Redis without persistence).

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
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
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
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, restartable on the same port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
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
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
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


def restart_redis(server: RedisServer) -> None:
    """Restart ``server`` on the same port, losing its data (a crash without persistence)."""
    server.restart()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server (skipped without the binary, failed under CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not installed: CI must install it (see .ci/run)")
        pytest.skip("redis-server not installed")
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
