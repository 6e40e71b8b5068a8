"""Griffe extension for the API reference: read ``Example:`` sections as ``Examples:``.

spikekit's docstrings title their doctests ``Example:``; griffe's Google parser knows only the
plural, and would render the ``>>>`` lines as prose. Nothing in ``src/`` changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExamplesSection(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is not None and "Example:" in doc.value:
            doc.value = _EXAMPLE.sub(r"\1Examples:", doc.value)
