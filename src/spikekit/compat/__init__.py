"""Peer libraries' names, arguments and defaults, built as native spikekit neurons.

``spikekit.compat.snntorch``, ``.spikingjelly``, ``.norse``, ``.eve`` and ``.snetx`` each give
that library's neurons, surrogates (and, where ours differ under the same name, losses) with
the peer's constructor arguments, defaults and calling convention, mapped onto spikekit's own
neurons: no new math, so the fused kernels, ``stepwise``/``record`` and export apply. Each
mapping is checked against the installed peer package by ``tests/test_compat_<peer>.py``;
``docs/migration/<peer>.md`` lists the differences kept on purpose.

The submodules load on first access (``spikekit.compat.snntorch``) and never import the peer.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["snntorch", "spikingjelly", "norse", "eve", "snetx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
