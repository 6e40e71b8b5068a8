"""Checkpoints: atomic writes, safe loads, the RNG state that makes a resume exact, and the
output folder's lock (one run per folder) and clean-up of temp files left by a killed run."""

from __future__ import annotations

import glob
import json
import os
import pickle
import random
import socket
import tempfile
import threading
import time
import zipfile
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "RunLockError",
    "RunLock",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "remove_temp_files",
    "TEMP_PATTERNS",
]

# What an interrupted save leaves behind: save_checkpoint's temp files and the CSV's.
TEMP_PATTERNS = (".tmp-*.pt", "*.tmp")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (missing, truncated, or containing more than plain data)."""


class RunLockError(RuntimeError):
    """Another live run holds the output folder's lock."""


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
    # torch.save writes a zip archive: anything else (a truncated copy, random bytes, another
    # format) is corrupt, which is a different problem from an untrusted pickle.
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        raise CheckpointError(
            f"refusing to load checkpoint {path!r}: it is corrupt or truncated ({size} bytes, not a "
            f"complete torch zip archive); use an intact copy, e.g. best.pt or an earlier last.pt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "weights only" in text.lower() or "weights_only" in text:
            what = _unsafe_global(text)
            raise CheckpointError(
                f"refusing to load checkpoint {path!r}: it is not a plain-data torch checkpoint (loading "
                f"it would import or call {what}; only tensors and plain data are loaded, and spikekit "
                f"never loads with weights_only=False)"
            ) from None
        raise CheckpointError(f"refusing to load checkpoint {path!r}: it is corrupt ({_first(e)})") from None
    except Exception as e:  # RuntimeError / EOFError on a damaged archive member, ...
        raise CheckpointError(f"refusing to load checkpoint {path!r}: it is corrupt ({_first(e)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _unsafe_global(text: str) -> str:
    # torch names what the pickle asked for, e.g. "Unsupported global: GLOBAL builtins.open".
    import re

    m = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported operand[^\n]*", text)
    return m.group(1) if m and m.groups() else (m.group(0) if m else "code outside torch's allow-list")


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


def remove_temp_files(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the temp files an earlier killed run left in ``folder`` (``.tmp-*.pt``, ``*.tmp``).

    Call it only while holding the folder's :class:`RunLock`: a live run's temp files are
    otherwise indistinguishable from a dead one's.

    Args:
        folder: a run's output folder.

    Returns:
        The paths removed.
    """
    removed = []
    for pattern in TEMP_PATTERNS:
        for p in glob.glob(os.path.join(os.fspath(folder), pattern)):
            try:
                os.remove(p)
                removed.append(p)
            except OSError:
                pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunLock:
    """An exclusive lock on a run's output folder: ``folder/.lock`` holding pid, host and start time.

    Created with ``O_EXCL`` so two runs cannot both take it. While held, a background thread
    touches the file every :attr:`HEARTBEAT_S` seconds. A lock is stale, and is taken over, when
    its process is gone: on the same host, its pid is not alive; from another host (a folder on
    a shared file system, where the pid means nothing here), its heartbeat is older than
    :attr:`STALE_AFTER_S` seconds (so clocks may differ by up to that much less a heartbeat).
    The takeover is again ``O_EXCL``, so of two runs that find the same stale lock only one wins.

    Args:
        folder: the output folder (created if absent).

    Example:
        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp()) as lock:
        ...     lock.stale is None
        True
    """

    NAME = ".lock"
    #: seconds between two touches of a held lock
    HEARTBEAT_S = 30.0
    #: a lock from another host whose last touch is older than this is stale
    STALE_AFTER_S = 300.0

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, self.NAME)
        self.stale: dict[str, Any] | None = None  # the stale lock taken over, if any
        self._held = False
        self._stop: threading.Event | None = None

    def _live(self, held: dict[str, Any] | None, host: str) -> str | None:
        """Why the lock ``held`` belongs to a live run (``None``: it is stale)."""
        if held is None:
            # Unreadable: half-written by a run taking it this instant (O_EXCL create, then the
            # JSON), or left damaged long ago. Only the second is stale.
            try:
                fresh = time.time() - os.path.getmtime(self.path) < 10.0
            except OSError:
                return None
            return "another run (just starting: its lock is being written)" if fresh else None
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("started", 0))))
        who = f"another run (pid {held.get('pid')} on {held.get('host')}, started {since})"
        if held.get("host") == host:
            return who if _pid_alive(int(held.get("pid", -1))) else None
        try:
            age = time.time() - os.path.getmtime(self.path)
        except OSError:
            return None
        if age >= self.STALE_AFTER_S:
            return None
        return (
            f"{who}, alive {age:.0f} s ago by its heartbeat (a lock from another host is taken over "
            f"{self.STALE_AFTER_S:.0f} s after its last heartbeat)"
        )

    def acquire(self) -> RunLock:
        """Take the lock.

        Returns:
            ``self``.

        Raises:
            RunLockError: a live run (same host, pid alive) holds it; its pid, host and start named.
        """
        os.makedirs(self.folder, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self._read()
                live = self._live(held, me["host"])
                if live is not None:
                    raise RunLockError(
                        f"{live} is writing to {self.folder!r}; wait for it or choose another --out-dir"
                    ) from None
                self.stale = held or {}
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            self._stop = threading.Event()
            threading.Thread(target=self._heartbeat, args=(self._stop,), daemon=True).start()
            return self
        raise RunLockError(f"could not take the lock {self.path!r} (another run keeps taking it)")

    def _read(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as f:
                held = json.load(f)
            return held if isinstance(held, dict) else None
        except (OSError, ValueError):
            return None  # half-written or unreadable (see _live)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return  # removed (released, or the folder is gone): nothing left to keep alive

    def release(self) -> None:
        """Remove the lock if this object holds it."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._held:
            self._held = False
            held = self._read()
            if held is None or held.get("pid") == os.getpid():
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
