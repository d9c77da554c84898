"""The documentation site's API reference covers every public name (mkdocs.yml, docs/api*.md).

The strict build (`make docs`) fails on a directive naming something that does
not exist; these tests catch the other way round: a public name added to an
``__all__`` without a reference entry, or a nav entry for a page that is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

import openticket_async
import openticket_async.stores
import openticket_async.stores.redis
import openticket_async.testing

ROOT = Path(__file__).resolve().parent.parent
DOORS = [
    openticket_async,
    openticket_async.testing,
    openticket_async.stores,
    openticket_async.stores.redis,
]
_DIRECTIVE = re.compile(r"^::: ([\w.]+)$", re.MULTILINE)
_NAV_PAGE = re.compile(r"^\s+- (?:[^:\n]+: )?([\w./-]+\.md)$", re.MULTILINE)


def test_the_reference_documents_every_public_name_once() -> None:
    pages = sorted((ROOT / "docs").glob("api*.md"))
    targets = [t for page in pages for t in _DIRECTIVE.findall(page.read_text(encoding="utf-8"))]
    documented = [t for t in targets if t not in {door.__name__ for door in DOORS}]
    public = [f"{door.__name__}.{name}" for door in DOORS for name in door.__all__]

    assert sorted(documented) == sorted(public)


def test_every_page_in_the_nav_exists() -> None:
    nav = _NAV_PAGE.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    assert len(nav) >= 12
    assert [page for page in nav if not (ROOT / "docs" / page).is_file()] == []
