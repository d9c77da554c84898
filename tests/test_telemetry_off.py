"""With no OpenTelemetry provider configured (or none installed), the SDK emits nothing.

Each case runs in a fresh interpreter (tests/telemetry_off_run.py): the global
providers can be set only once per process, and the point is what a process
that never configured OpenTelemetry imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RUN = Path(__file__).with_name("telemetry_off_run.py")


def run(*args: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 (this interpreter and a file of the tests)
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_without_a_provider_no_sdk_module_is_imported_and_nothing_is_emitted() -> None:
    result = run()
    assert result["requests"] >= 5  # three reserves and two renewals reached the server
    assert result["sdk_before"] == []
    # a provider set later finds no span and no instrument of a client or manager
    # built without one: "off" was decided at construction, nothing was left to wake
    assert result["spans"] == 0
    assert result["points"] == 0


def test_without_opentelemetry_installed_the_client_and_manager_work() -> None:
    result = run("--no-otel")
    assert result["requests"] >= 5
    assert result["sdk_before"] == []
