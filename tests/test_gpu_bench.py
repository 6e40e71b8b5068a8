"""``benchmarks/gpu.py``: the dry run goes through every part on whatever device there is and
writes consistent tables; a run out of time and bad arguments are handled."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"

LAYER_COLS = [
    *("n", "T", "B", "dtype", "lib", "variant", "backend", "status", "fwd_ms", "bwd_ms", "total_ms"),
    *("x_floor", "peak_mb", "mem_x_floor", "first_ms", "repeats", "spike_rate", "device"),
]
TRAIN_COLS = [
    *("model", "lib", "variant", "backend", "status", "T", "B", "dtype", "step_ms", "images_per_s"),
    *("x_spikingjelly_triton", "peak_mb", "first_step_ms", "steps", "device"),
]
# (lib, variant) of every peer row the script must always write, with a status
PEER_ROWS = [
    ("spikingjelly", "triton"),
    ("spikingjelly", "cupy"),
    ("spikingjelly", "torch"),
    ("snntorch", ""),
    ("norse", "eager"),
    ("norse", "compile"),
]
CELLS = [(64, "fp32"), (64, "bf16")]  # the dry run's (n, dtype)


def _installed(lib: str) -> bool:
    return importlib.util.find_spec(lib) is not None


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def _one(rows: list[dict[str, str]], **match: Any) -> dict[str, str]:
    found = [r for r in rows if all(r[k] == str(v) for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu") / "res"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p),
    }
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    return p, out


@pytest.mark.slow
def test_dry_run_writes_every_row(dry_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    p, out = dry_run
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in ("layer.csv", "train.csv", "targets.csv", "meta.json"):
        assert (out / name).is_file(), name
    cols, layer = _rows(out / "layer.csv")
    assert cols == LAYER_COLS
    cols, train = _rows(out / "train.csv")
    assert cols == TRAIN_COLS
    # the terminal has the tables and the targets
    for text in ("total ms", "x floor", "images/s", "targets (issue 12)", "time / floor"):
        assert text in p.stdout, text

    for n, dtype in CELLS:
        floor = _one(layer, lib="floor", n=n, dtype=dtype)
        assert floor["status"] == "ok", floor
        assert float(floor["x_floor"]) == 1.0 and float(floor["total_ms"]) > 0
        sk = _one(layer, lib="spikekit", n=n, dtype=dtype)
        assert sk["status"] == "ok", sk
        assert sk["backend"], sk  # e.g. "numba", "triton" or "reference (why)"
        assert 0 <= float(sk["spike_rate"]) <= 1
        ok = [r for r in layer if r["n"] == str(n) and r["dtype"] == dtype and r["status"] == "ok"]
        assert len(ok) >= 2
        for r in ok:
            fwd, bwd, total = float(r["fwd_ms"]), float(r["bwd_ms"]), float(r["total_ms"])
            assert fwd > 0 and bwd > 0 and total > 0, r
            # the ratio is the row's time over the floor's at the same n and dtype
            assert math.isclose(float(r["x_floor"]), total / float(floor["total_ms"]), rel_tol=1e-4), r
            assert int(r["repeats"]) >= 1 and float(r["first_ms"]) > 0
            if r["device"] == "cuda":  # peak memory only from CUDA's allocator
                assert float(r["peak_mb"]) >= 0 and r["mem_x_floor"], r
            else:
                assert r["peak_mb"] == "" and r["mem_x_floor"] == "", r

        for lib, variant in PEER_ROWS:
            r = _one(layer, lib=lib, variant=variant, n=n, dtype=dtype)
            assert r["status"], r  # "ok" or why not
            if not _installed(lib):
                assert r["status"].startswith("not installed"), r
            elif (lib, variant) in (("snntorch", ""), ("norse", "eager"), ("spikingjelly", "torch")):
                assert r["status"] == "ok", r  # these run on any device
            elif lib == "norse" and (shutil.which("cc") or shutil.which("gcc") or r["device"] == "cuda"):
                assert r["status"] == "ok", r  # inductor has a compiler to work with
            elif lib == "spikingjelly" and r["device"] == "cpu":
                assert r["status"] == "skipped (needs CUDA)", r

    for model in ("spiking_vgg11", "sew_resnet18"):
        sk = _one(train, model=model, lib="spikekit")
        assert sk["status"] == "ok", sk
        # a dry run on a CPU trains in fp32 (bf16 convolutions are very slow there)
        assert (
            sk["backend"] and sk["dtype"] == ("bf16" if sk["device"] == "cuda" else "fp32") and sk["T"] == "4"
        )
        assert math.isclose(
            float(sk["images_per_s"]), int(sk["B"]) / (float(sk["step_ms"]) / 1e3), rel_tol=1e-4
        )
        for variant in ("triton", "cupy", "torch"):
            r = _one(train, model=model, lib="spikingjelly", variant=variant)
            assert r["status"], r
        ref = _one(train, model=model, lib="spikingjelly", variant="triton")
        if _installed("spikingjelly") and sk["device"] == "cpu":
            assert ref["status"] == "skipped (needs CUDA)"
            assert _one(train, model=model, lib="spikingjelly", variant="torch")["status"] == "ok"
        if ref["status"] == "ok":
            ratio = float(sk["images_per_s"]) / float(ref["images_per_s"])
            assert math.isclose(float(sk["x_spikingjelly_triton"]), ratio, rel_tol=1e-4)
        else:
            assert sk["x_spikingjelly_triton"] == ""

    _, targets = _rows(out / "targets.csv")
    checks = {(t["check"], t["n"], t["dtype"], t["model"]): t for t in targets}
    assert ("time / floor", "64", "fp32", "") in checks  # the largest n of the run
    t = checks[("time / floor", "64", "fp32", "")]
    sk = _one(layer, lib="spikekit", n=64, dtype="fp32")
    assert math.isclose(float(t["ratio"]), float(sk["x_floor"]), rel_tol=1e-4)
    assert t["result"] == ("PASS" if float(t["ratio"]) <= 1.10 else "FAIL")
    for n, dtype in CELLS:
        assert ("time / best peer", str(n), dtype, "") in checks
        assert ("peak memory / spikingjelly", str(n), dtype, "") in checks
    for model in ("spiking_vgg11", "sew_resnet18"):
        assert checks[("images/s / spikingjelly triton", "", "", model)]["result"] in ("PASS", "FAIL", "n/a")


@pytest.fixture(scope="module")
def gpu() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules[spec.name]


def test_results_are_never_overwritten(gpu: ModuleType, tmp_path: Path) -> None:
    first = gpu._fresh_dir(tmp_path / "res")
    (first / "layer.csv").write_text("old")
    second = gpu._fresh_dir(tmp_path / "res")
    assert (first, second) == (tmp_path / "res", tmp_path / "res-2")
    assert (first / "layer.csv").read_text() == "old" and gpu._fresh_dir(tmp_path / "res").name == "res-3"


def test_out_of_time_rows_say_so(gpu: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a budget too small for any process: nothing starts, every row still has its status
    assert gpu.main(["--dry-run", "--budget", "0.5", "--out", str(tmp_path / "res")]) == 0
    _, layer = _rows(tmp_path / "res" / "layer.csv")
    _, train = _rows(tmp_path / "res" / "train.csv")
    assert {(r["lib"], r["n"], r["dtype"]) for r in layer if r["lib"] in ("floor", "spikekit")} == {
        (lib, str(n), d) for lib in ("floor", "spikekit") for n, d in CELLS
    }
    for r in layer + train:
        assert r["status"], r
        if r["lib"] in ("floor", "spikekit"):
            assert r["status"] == "skipped (time)", r
    _, targets = _rows(tmp_path / "res" / "targets.csv")
    assert targets and all(t["result"] == "n/a" for t in targets)
    assert "skipped (time)" in capsys.readouterr().out


def test_bad_arguments_are_refused(gpu: ModuleType, tmp_path: Path) -> None:
    assert gpu.main(["-T", "0", "--out", str(tmp_path / "x")]) == 2
    assert gpu.main(["--sizes", "64", "-1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        gpu.main(["--libs", "brian2"])
