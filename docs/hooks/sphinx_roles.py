"""griffe extension: the docstrings' Sphinx roles become Markdown for the API reference.

The docstrings are written for ``help()`` and editors, with roles such as
``:class:`~openticket_async.Hold```. mkdocstrings renders Markdown, where those
would show as ":class:" and a path: a role naming an ``openticket_async`` path
becomes a cross-reference to that name's entry (shown by its last part, as
Sphinx's ``~`` asks), any other role plain code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(~?)([^`]+)`")


def _markdown(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    shown = target.rsplit(".", 1)[-1] if short else target
    if target.startswith("openticket_async.") and not target.split(".")[1].startswith("_"):
        return f"[`{shown}`][{target}]"
    return f"`{shown}`"


class SphinxRoles(griffe.Extension):
    """Rewrites every Sphinx role in a docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_markdown, obj.docstring.value)
