"""The runnable examples stay runnable (smoke tests with small settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_learns_digits():
    assert _load("quickstart").main(epochs=2, T=4) > 0.8


def test_stepwise_loop_runs():
    out = _load("stepwise_loop").main(T=10)
    assert 0.0 < out["rate"] < 1.0
