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


# Every measurement is a fresh interpreter (~4 s to import torch and spikekit here), so the
# end-to-end run is split in two tests that pytest-xdist can run side by side.
def test_layer_and_first_use_at_a_tiny_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    args = _args(
        *("--sizes", "64", "-T", "5", "-B", "2", "--repeats", "1", "--only", "layer"),
        *("--neurons", "lif,li", "--libs", "spikekit", "--out", str(out)),
    )
    assert bench.main(args) == 0
    rows = list(csv.DictReader(open(out / "layer.csv")))
    assert [(r["n"], r["lib"], r["neuron"]) for r in rows] == [
        ("64", "linear", ""),
        ("64", "spikekit", "lif"),
        ("64", "spikekit", "li"),
    ]
    lin, lif, li = rows
    assert not any(r["error"] for r in rows), rows
    assert float(lin["time_x"]) == 1.0 and float(lin["mem_x"]) == 1.0
    for r in (lif, li):
        # the ratio comes from alternating pairs in the library's own process
        assert float(r["time_x"]) > 0 and float(r["linear_s"]) > 0 and float(r["mem_x"]) > 0
    assert lif["kwargs"] == '{"tau": 2.0}' and 0 <= float(lif["rate"]) <= 1
    assert li["kwargs"] == "{}" and li["rate"] == ""  # LI outputs its membrane: no spike rate
    md = (out / "results.md").read_text()
    assert "| 64 | spikekit | lif |" in md and "| 64 | spikekit | li |" in md
    assert "Kernel first use" not in md and not (out / "first_use.csv").exists()
    assert "spikekit" in capsys.readouterr().out

    # first use of the fused kernel: a cold then a warm cache, each in a fresh process (one
    # neuron here: every row costs two interpreter starts)
    args = _args("--only", "compile", "--neurons", "li", "--libs", "spikekit", "--out", str(out))
    assert bench.main(args) == 0
    (row,) = csv.DictReader(open(out / "first_use.csv"))
    assert row["neuron"] == "li" and not row["error"], row
    assert float(row["cold_s"]) > 0 and float(row["warm_s"]) > 0 and float(row["later_s"]) > 0
    assert row["backend"]  # "numba", or "reference (why)" without numba
    assert "| li |" in (out / "results.md").read_text().split("Kernel first use")[1]


def test_conv_and_accuracy_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "res"
    args = _args("--steps", "1", "--epochs", "1", "--libs", "spikekit", "--out", str(out))
    args.only = ["conv", "accuracy"]
    assert bench.main(args) == 0
    conv = list(csv.DictReader(open(out / "conv.csv")))
    assert [r["lib"] for r in conv] == ["spikekit"] and float(conv[0]["samples_per_s"]) > 0
    acc = list(csv.DictReader(open(out / "accuracy.csv")))
    assert [r["lib"] for r in acc] == ["spikekit"] and not acc[0]["error"], acc
    assert 0.0 <= float(acc[0]["test_acc"]) <= 1.0 and float(acc[0]["samples_per_s"]) > 0
    md = (out / "results.md").read_text()
    assert "Conv SNN training throughput" in md and "Conv SNN trained on digits" in md


def test_neuron_choice_and_threshold_search() -> None:
    from spikekit.neurons import list_neurons

    assert bench.parse_neurons(["all"]) == list_neurons() == bench.parse_neurons(None)
    assert bench.parse_neurons(["LIF,li", "lif"]) == ["lif", "li"]
    with pytest.raises(ValueError, match="unknown neurons"):
        bench.parse_neurons(["lif,nope"])
    # a neuron without a measured choice that stays silent gets a lower threshold
    import torch

    probe = torch.full((20, 2, 3), 0.1)
    neuron, kwargs = bench._spikekit_neuron("if", probe=lambda: probe)
    assert kwargs == {} and neuron(probe).any()  # IF integrates 0.1 per step: spikes at v_th 1
    weak = torch.full((20, 2, 3), 0.01)
    neuron, kwargs = bench._spikekit_neuron("if", probe=lambda: weak)
    assert kwargs == {"v_th": 0.125} and neuron(weak).any()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-T", "0"), "T must be > 0"),
        (("--sizes", "0"), "n must be > 0"),
        (("--libs", "nope"), "unknown libraries"),
        (("--neurons", "lif,nope"), "unknown neurons"),
    ],
)
def test_bad_arguments_are_refused(
    argv: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(*argv, "--out", str(tmp_path / "res"))
    assert bench.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
