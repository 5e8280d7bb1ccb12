"""Griffe extension for the API reference: render reST leftovers in docstrings as Markdown.

Docstrings are written to read well in ``help()`` and in doctests, where Sphinx
roles (:func:`jaxseg.iou`) and literal-block markers (``text::``) are common.
Markdown shows those literally, so this turns roles into code spans and ``::``
at the end of a line into ``:`` (the indented block that follows is already a
Markdown code block).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"(\S)::$", re.M)


def to_markdown(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL.sub(r"\1:", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, when its object is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
