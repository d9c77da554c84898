"""``python -m openticket_async.testing serve``: where it listens, and what it says when it cannot.

The command's happy path (a seeded fake answering in its own process) is
tested in tests/test_fake_server.py; these tests hold it to its ``--host`` and
``--port`` options.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest

from openticket_async.testing.__main__ import main

SERVE = [sys.executable, "-m", "openticket_async.testing", "serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.slow
@pytest.mark.asyncio
async def test_serve_listens_on_the_port_it_is_given() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *SERVE, "--host", "127.0.0.1", "--port", str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        info = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=20))
        assert info["url"] == f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()
    assert process.returncode == 0


@pytest.mark.slow
@pytest.mark.asyncio
async def test_serve_on_a_port_in_use_fails_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            *SERVE,
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        finally:
            if process.returncode is None:  # it served instead: no server left behind
                process.kill()
                await process.wait()
    assert process.returncode == 1
    assert stdout == b""
    assert stderr.decode().startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert stderr.count(b"\n") == 1
    assert b"Traceback" not in stderr


def test_serve_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "70000"])
    assert exited.value.code == 2
    assert "--port: must be between 0 and 65535, got 70000" in capsys.readouterr().err
