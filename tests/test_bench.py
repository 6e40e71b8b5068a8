"""``spikekit bench``: runs end to end at a tiny size and writes its tables; bad input is refused."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from spikekit import bench


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench._add_arguments(p)
    return p.parse_args(list(argv))


def test_layer_and_conv_at_a_tiny_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    args = _args("--sizes", "64", "-T", "5", "-B", "2", "--repeats", "2", "--steps", "1", "--epochs", "1")
    args.only = ["layer", "conv", "accuracy"]
    args.libs, args.out = ["spikekit"], str(out)
    assert bench.main(args) == 0
    rows = list(csv.DictReader(open(out / "layer.csv")))
    assert [(r["n"], r["lib"]) for r in rows] == [("64", "linear"), ("64", "spikekit")]
    lin, sf_row = rows
    assert not lin["error"] and not sf_row["error"], rows
    assert float(lin["time_x"]) == 1.0 and float(lin["mem_x"]) == 1.0
    # the ratio comes from alternating pairs in the library's own process
    assert float(sf_row["time_x"]) > 0 and float(sf_row["linear_s"]) > 0 and float(sf_row["mem_x"]) > 0
    conv = list(csv.DictReader(open(out / "conv.csv")))
    assert [r["lib"] for r in conv] == ["spikekit"] and float(conv[0]["samples_per_s"]) > 0
    acc = list(csv.DictReader(open(out / "accuracy.csv")))
    assert [r["lib"] for r in acc] == ["spikekit"] and not acc[0]["error"], acc
    assert 0.0 <= float(acc[0]["test_acc"]) <= 1.0 and float(acc[0]["samples_per_s"]) > 0
    md = (out / "results.md").read_text()
    assert "| 64 | spikekit |" in md and "Conv SNN training throughput" in md
    assert "Conv SNN trained on digits" in md
    assert "spikekit" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-T", "0"), "T must be > 0"),
        (("--sizes", "0"), "n must be > 0"),
        (("--libs", "nope"), "unknown libraries"),
    ],
)
def test_bad_arguments_are_refused(
    argv: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(*argv, "--out", str(tmp_path / "res"))
    assert bench.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
