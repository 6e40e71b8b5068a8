"""Fault injection for ``spikekit train`` (issue 15): is a resumed run the uninterrupted run?

Each trial starts a short run, waits for an epoch to finish, then at a random moment
injects one fault (kill -9 lands 0-300 ms after epoch 2's line, i.e. mostly while that
epoch's logs and checkpoints are being written; the signals land in epoch 2):

- ``kill9``: SIGKILL, nothing can be saved; the run resumes from the last complete checkpoint;
- ``kill9_save``: SIGKILL 0-5 ms after a temp checkpoint file appears (a save in progress);
- ``double_int``: two Ctrl-C (SIGINT) 0.5-30 ms apart: must exit 130 with the position saved;
- ``term``: SIGTERM: must exit 143 with the position saved.

Then ``--resume auto`` runs to the end (a kill -9 before the first checkpoint was complete
restarts with ``--overwrite``). The verdict per trial: exit codes, no temp file or lock left,
no traceback, and the final ``last.pt`` weights bit-equal to an uninterrupted run's. The last
lines count ``resumed == uninterrupted`` per kind.

Run: ``python benchmarks/faults.py [--trials N]`` (about 15 s a trial on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ARGS = ["--epochs", "3", "-T", "2", "--no-plots", "--seed", "1"]  # progress on: "epoch" lines mark a save
KINDS = ("kill9", "kill9_save", "double_int", "term")


def _start(out: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "spikekit.train.cli", "train", *ARGS, "--out-dir", out, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_epoch(proc: subprocess.Popen[str]) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("epoch"):
            return


def _weights(out: str) -> dict:
    from spikekit.train import load_checkpoint

    return load_checkpoint(os.path.join(out, "last.pt"))["model"]


def _leftovers(out: str) -> list[str]:
    return sorted(f for f in os.listdir(out) if f.startswith(".tmp-") or f == ".lock")


def reference(root: str) -> dict:
    """The uninterrupted run's final weights."""
    out = os.path.join(root, "reference")
    p = _start(out)
    _, err = p.communicate(timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed (rc {p.returncode}):\n{err}")
    return _weights(out)


def trial(kind: str, rng: random.Random, root: str, ref: dict) -> tuple[bool, bool, str]:
    """One fault of ``kind``; returns (clean, equal to the reference, one-line verdict)."""
    import torch

    out = tempfile.mkdtemp(prefix=f"{kind}-", dir=root)
    p = _start(out)
    _wait_epoch(p)
    if kind == "kill9":
        _wait_epoch(p)  # epoch 1's checkpoint is complete; epoch 2's logs and save are starting
        time.sleep(rng.uniform(0.0, 0.3))
        p.kill()
    elif kind == "kill9_save":
        _wait_epoch(p)
        # Poll for epoch 2's temp checkpoint and kill while it is being written.
        deadline = time.monotonic() + 120
        while not any(f.startswith(".tmp-") and f.endswith(".pt") for f in os.listdir(out)):
            if time.monotonic() > deadline or p.poll() is not None:
                break
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.005))
        p.kill()
    elif kind == "double_int":
        time.sleep(rng.uniform(0.0, 0.8))
        p.send_signal(signal.SIGINT)
        time.sleep(rng.uniform(0.0005, 0.03))
        p.send_signal(signal.SIGINT)
    else:
        time.sleep(rng.uniform(0.0, 0.8))
        p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    left = _leftovers(out)
    had_ckpt = os.path.isfile(os.path.join(out, "last.pt"))
    r = _start(out, *(["--resume", "auto"] if had_ckpt else ["--overwrite"]))
    _, err2 = r.communicate(timeout=600)
    after = _leftovers(out)
    expected = {"kill9": -signal.SIGKILL, "kill9_save": -signal.SIGKILL, "double_int": 130, "term": 143}[kind]
    clean = p.returncode == expected and r.returncode == 0 and not after and "Traceback" not in err + err2
    if not kind.startswith("kill9"):
        clean = clean and not left  # a handled signal leaves nothing behind
    equal = False
    if r.returncode == 0:
        w = _weights(out)
        equal = w.keys() == ref.keys() and all(torch.equal(w[k], ref[k]) for k in ref)
    verdict = (
        f"{'OK  ' if clean and equal else 'FAIL'} {kind:10s} rc={p.returncode} left={left} "
        f"{'resumed' if had_ckpt else 'restarted (no complete checkpoint yet)'} rc={r.returncode} "
        f"leftovers={after} resumed==uninterrupted={equal}"
    )
    if not clean:
        verdict += "\n" + (err + err2).strip()[-2000:]
    return clean, equal, verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=5, help="trials per fault kind")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault timings")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    root = tempfile.mkdtemp(prefix="spikekit-faults-")
    t0 = time.perf_counter()
    try:
        ref = reference(root)
        results: dict[str, list[tuple[bool, bool]]] = {k: [] for k in KINDS}
        for kind in KINDS:
            for _ in range(a.trials):
                clean, equal, verdict = trial(kind, rng, root, ref)
                results[kind].append((clean, equal))
                print(verdict, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{'fault':10s} {'clean':>7s} {'resumed == uninterrupted':>26s}   ({time.perf_counter() - t0:.0f} s)"
    )
    for kind, rs in results.items():
        n = len(rs)
        print(f"{kind:10s} {sum(c for c, _ in rs):>3d}/{n:<3d} {sum(e for _, e in rs):>22d}/{n}")
    return 0 if all(c and e for rs in results.values() for c, e in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
