"""Fault injection for ``spikekit train`` (issue 15): kill -9 at random moments (saves included),
double Ctrl-C 0.5-30 ms apart, and SIGTERM; after each, the folder must hold a loadable checkpoint
and a ``--resume auto`` must start cleanly (stale lock taken over, temp files removed).

Run: ``python benchmarks/faults.py [--trials N]`` (about 10 s a trial on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ARGS = ["--epochs", "100", "-T", "2", "--no-plots"]  # progress on: "epoch" lines mark a saved checkpoint


def _start(out: str, resume: bool = False) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "spikekit.train.cli", "train", *ARGS, "--out-dir", out]
    return subprocess.Popen(
        cmd + (["--resume", "auto"] if resume else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_epoch(proc: subprocess.Popen[str]) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("epoch"):
            return


def _check(out: str) -> str:
    from spikekit.train import load_checkpoint

    ck = load_checkpoint(os.path.join(out, "last.pt"))
    return f"last.pt epoch {ck['epoch']} batch {ck['batch_idx']}"


def trial(kind: str, rng: random.Random) -> str:
    """One fault of ``kind`` (``kill9``, ``double_int``, ``term``); returns a one-line verdict."""
    out = tempfile.mkdtemp(prefix=f"faults-{kind}-")
    p = _start(out)
    _wait_epoch(p)
    time.sleep(rng.uniform(0.0, 0.5))
    if kind == "kill9":
        p.kill()
    elif kind == "double_int":
        p.send_signal(signal.SIGINT)
        time.sleep(rng.uniform(0.0005, 0.03))
        p.send_signal(signal.SIGINT)
    else:
        p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    left = sorted(f for f in os.listdir(out) if f.startswith(".tmp-") or f == ".lock")
    state = _check(out)
    r = _start(out, resume=True)
    _wait_epoch(r)
    r.send_signal(signal.SIGTERM)
    _, err2 = r.communicate(timeout=120)
    tmp_after = [f for f in os.listdir(out) if f.startswith(".tmp-") or f == ".lock"]
    ok = r.returncode == 143 and not tmp_after and "Traceback" not in err + err2
    if kind != "kill9":
        ok = ok and p.returncode == (130 if kind == "double_int" else 143) and not left
    return (
        f"{'OK  ' if ok else 'FAIL'} {kind:10s} rc={p.returncode} left={left} {state}; "
        f"resume rc={r.returncode} leftovers after resume={tmp_after}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=2, help="trials per fault kind")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lines = [trial(kind, rng) for kind in ("kill9", "double_int", "term") for _ in range(a.trials)]
    print("\n".join(lines))
    return 0 if all(ln.startswith("OK") for ln in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
