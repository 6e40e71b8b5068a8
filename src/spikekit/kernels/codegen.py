"""What the printers share: a program printed as statements, and generated modules on disk.

A printer (:mod:`spikekit.kernels.numba_cpu`, :mod:`spikekit.kernels.triton_gpu`) turns the
scalar programs of a traced step (:mod:`spikekit.kernels.graph`) into the body of its loop
over time with :func:`render` and its own table of op templates, then writes the module's
source under :func:`cache_dir` (named by the hash of the source, so neurons whose graphs
differ only in constants share one file) and imports it with :func:`load_module`. The
source must be a real file: numba's cache and Triton's JIT both read it back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from spikekit.kernels.graph import Program

__all__ = ["render", "cache_dir", "write_once", "load_module"]


def render(
    prog: Program, templates: dict[str, str], bind: dict[str, str], indent: str
) -> tuple[list[str], list[str]]:
    """Statements of ``prog`` as assignments ``v_<name> = <template>``.

    Args:
        prog: the program.
        templates: op name -> format string over the operands (``{0}``, ``{1}``, ...).
        bind: input name -> the expression that holds it.
        indent: prefix of every line.

    Returns:
        ``(lines, outputs)``: the statements, and the expression of each output. A constant
        ``("c", i)`` prints as ``c<i>`` (the printer loads the table into those names).
    """
    names = dict(bind)

    def arg(a: Any) -> str:
        if isinstance(a, tuple):
            return f"c{a[1]}"
        return names[a]

    lines = []
    for name, op, args in prog.body:
        local = f"v_{name}"
        lines.append(f"{indent}{local} = {templates[op].format(*(arg(a) for a in args))}")
        names[name] = local
    return lines, [arg(o) for o in prog.outputs]


def cache_dir() -> Path:
    """Where generated kernels live: ``$SPIKEKIT_CACHE`` or ``~/.cache/spikekit``, then ``kernels/``."""
    root = os.environ.get("SPIKEKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spikekit"
    )
    return Path(root) / "kernels"


def write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it exists (atomically; concurrent writers agree)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        # link, not replace: an existing file keeps its mtime, which numba's cache keys on
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


_MODULES: dict[str, Any] = {}
_LOCK = threading.Lock()


def load_module(prefix: str, source: str) -> Any:
    """Import generated ``source`` from ``cache_dir()/<prefix>_<digest>.py`` (once per process).

    A read-only cache directory falls back to a private temporary one for this process.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"spikekit_generated_{prefix}_{digest}"
    path = cache_dir() / f"{prefix}_{digest}.py"
    with _LOCK:
        module = _MODULES.get(str(path))
        if module is not None:
            return module
        try:
            write_once(path, source)
        except OSError:
            path = Path(tempfile.mkdtemp(prefix="spikekit-kernels-")) / path.name
            write_once(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[str(path)] = module
        return module
