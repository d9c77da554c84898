"""mkdocs hook: a link from a page to a file of the repository outside docs/ goes to GitHub.

The pages link to the code as the README does (``../examples/renewal_worker.py``),
which works when docs/ is read on GitHub; the site has no such files, so here those
links become links to the file on the repository's main branch. A link to a file
that does not exist is left alone, for the strict build to report.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite ``](../path)`` links that leave docs/ into links to the repository."""
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    page_dir = posixpath.dirname(page.file.src_uri)
    base = config["repo_url"].rstrip("/") + "/blob/main/"

    def rewrite(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(page_dir, match.group(1)))
        path = (docs / target).resolve()
        if path.is_relative_to(docs) or not path.exists():
            return match.group(0)
        return f"]({base}{path.relative_to(repo).as_posix()}{match.group(2) or ''})"

    return _LINK.sub(rewrite, markdown)
