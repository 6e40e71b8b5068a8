"""Checkpoints: atomic writes, safe loads, and the RNG state that makes a resume exact."""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (missing, truncated, or containing more than plain data)."""


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write ``obj`` with ``torch.save`` atomically: a temp file in the same folder, then ``os.replace``.

    A crash or Ctrl-C while writing leaves the previous file at ``path`` untouched (the rename
    is atomic on POSIX and Windows) and removes the partial temp file.

    Args:
        obj: plain data (tensors, numbers, strings, lists, tuples, dicts).
        path: destination.

    Returns:
        ``str(path)``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``: tensors and plain data only.

    A file that would need to import or call anything to unpickle (a crafted checkpoint) is
    refused before any of its code runs.

    Raises:
        CheckpointError: the file is absent, truncated, or not plain data.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError on truncation, EOFError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refusing to load checkpoint {path!r}: it is not a plain-data torch checkpoint ({first})"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


def rng_state(device: str | torch.device | None = None) -> dict[str, Any]:
    """The torch, numpy and Python RNG states as plain data (loadable with ``weights_only``).

    Args:
        device: the run's device. For a CUDA device its generator's state is included too
            (dropout and Poisson spikes on a GPU draw from it, not from the CPU generator).

    Returns:
        ``{"torch", "numpy", "python"}`` plus ``"cuda"`` for a CUDA device.
    """
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if device is not None and torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(state: dict[str, Any], device: str | torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned.

    Args:
        state: the dict :func:`rng_state` returned.
        device: the run's device. A saved CUDA state is restored only onto a CUDA device; a run
            resumed on another kind of device keeps its own generator there.
    """
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") is not None and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))
