"""The README's quickstart runs as written against the fake server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_quickstart_runs_as_written() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    result = subprocess.run(  # noqa: S603 (our own README, run with our own interpreter)
        [sys.executable, "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "True" in result.stdout  # the order read back is the order created
