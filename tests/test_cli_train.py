"""``spikekit train`` / ``sweep`` end to end on tiny configurations, presets, and bad input."""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

import pytest
import torch

from spikekit.train import load_checkpoint
from spikekit.train.cli import PRESETS, add_parser, main, resolve_config

TINY = ["--epochs", "1", "-T", "1", "--max-batches", "3", "--no-progress"]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors
        rc = int(e.code)
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_end_to_end_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    rc, stdout, err = _run(capsys, ["train", *TINY, "--out-dir", str(out)])
    assert rc == 0, err
    assert "test accuracy" in stdout and str(out / "metrics.csv") in stdout
    for f in ("metrics.csv", "last.pt", "best.pt", "plots/curves.png", "plots/raster_output.png"):
        assert (out / f).is_file(), f
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["test_acc"]) <= 1.0
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["model"] == "digits_convnet" and ck["config"]["T"] == 1 and ck["epoch"] == 1
    # The run summary estimates energy per layer and in total (spk.energy on the first test batch).
    energy = [ln.strip() for ln in stdout.splitlines() if ln.strip().startswith("energy ")]
    assert len(energy) >= 3 and energy[-1].startswith("energy total per sample") and "synops" in energy[-1]


def test_train_writes_activity_and_hparams_to_tensorboard(tmp_path, capsys) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    rc, _, err = _run(capsys, ["train", *TINY, "--epochs", "2", "--no-plots", "--out-dir", str(out)])
    assert rc == 0, err
    acc = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    rates = [t for t in tags["scalars"] if t.startswith("activity/rate/") and t != "activity/rate/mean"]
    assert rates and all([e.step for e in acc.Scalars(t)] == [1, 2] for t in rates)
    assert all(0.0 <= e.value <= 1.0 for t in rates for e in acc.Scalars(t))
    assert any(t.startswith("activity/membrane/") for t in tags["histograms"])
    assert any(t.startswith("activity/raster/") for t in tags["images"])
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")


def test_resume_auto_continues_the_run(tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    base = ["train", "-T", "1", "--max-batches", "2", "--no-progress", "--no-plots", "--out-dir", out]
    assert _run(capsys, [*base, "--epochs", "1"])[0] == 0
    rc, stdout, _ = _run(capsys, [*base, "--epochs", "2", "--resume", "auto"])
    assert rc == 0 and "resumed from" in stdout
    assert load_checkpoint(os.path.join(out, "last.pt"))["epoch"] == 2


def test_options_reach_the_model(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", *TINY, "--no-plots", "--out-dir", str(out), "--neuron", "if", "--surrogate", "sigmoid",
            "--surrogate-alpha", "2", "--neuron-opt", "reset=soft", "--encoder", "poisson", "--lr", "0.01",
            "--batch-size", "32", "--seed", "3", "--optimizer", "sgd", "--clip-grad", "1.0"]  # fmt: skip
    rc, _, err = _run(capsys, argv)
    assert rc == 0, err
    cfg = load_checkpoint(out / "last.pt")["config"]
    assert (cfg["neuron"], cfg["surrogate"], cfg["encoder"], cfg["batch_size"], cfg["seed"]) == (
        "if",
        "sigmoid",
        "poisson",
        32,
        3,
    )
    assert cfg["optimizer"] == "sgd" and cfg["lr"] == 0.01


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--model", "no_such_net"], "unknown model 'no_such_net'"),
        (["train", "-T", "-3"], "expected a positive integer, got -3"),
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
        (["train", "--dataset", "mnist"], "--data-dir"),
        (["train", "--neuron", "hodgkin"], "unknown neuron 'hodgkin'"),
        (["train", "--neuron-opt", "tau"], "expected KEY=VALUE"),
        (["sweep", "--only", "colours"], "unknown sweep group"),
        (["train", "--num-workers", "-1"], "expected an integer >= 0, got -1"),
    ],
)
@pytest.mark.parametrize("earlier_run", [False, True], ids=["fresh", "runs-train-used"])
def test_bad_input_exits_nonzero_with_one_line(
    capsys, tmp_path, monkeypatch, argv: list[str], needle: str, earlier_run: bool
) -> None:
    # In a folder whose runs/train already holds a run, the "writing to runs/train-2" note must
    # not come before the error either.
    monkeypatch.chdir(tmp_path)
    if earlier_run:
        (tmp_path / "runs" / "train").mkdir(parents=True)
        (tmp_path / "runs" / "train" / "last.pt").write_bytes(b"x")
    rc, out, err = _run(capsys, argv)
    assert rc == 2 and out == ""  # nothing printed before the error
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_crafted_resume_checkpoint_is_refused(tmp_path, capsys) -> None:
    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"format": "spikekit-train/1", "model": Evil()}, tmp_path / "evil.pt")
    rc, _, err = _run(
        capsys, ["train", *TINY, "--out-dir", str(tmp_path / "o"), "--resume", str(tmp_path / "evil.pt")]
    )
    assert rc == 2 and "refusing to load" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists()


def test_module_entry_point_real_process(tmp_path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src"),
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        [sys.executable, "-m", "spikekit.train.cli", "train", "-T", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "positive integer" in r.stderr


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_parse(preset: str) -> None:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    cfg = resolve_config(p.parse_args(["train", "--preset", preset, "--lr", "0.5"]))
    assert cfg["preset"] == preset and cfg["lr"] == 0.5  # explicit options beat the preset
    for k, v in PRESETS[preset].items():
        if k != "lr":
            assert cfg[k] == v


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_fall_back_to_digits_and_say_so(tmp_path, capsys, preset: str) -> None:
    out = tmp_path / "run"
    # The VGG preset evaluates 360 upsampled digits per epoch (most of this test's time): one
    # epoch, given explicitly, which also checks that a given --epochs beats the fallback cap.
    given = ["--epochs", "1"] if PRESETS[preset]["model"].startswith("spiking_vgg") else []
    argv = ["train", "--preset", preset, "--data-dir", str(tmp_path / "empty"), "-T", "2", "--max-batches", "1",
            "--no-plots", "--out-dir", str(out), "--batch-size", "32", *given]  # fmt: skip
    rc, stdout, err = _run(capsys, argv)
    assert rc == 0, err
    assert "falling back to the embedded 8x8 digits" in stdout
    assert str(tmp_path / "empty") in stdout  # where it looked
    cfg = load_checkpoint(out / "last.pt")["config"]
    assert cfg["dataset"] == "digits" and cfg["fallback_from"] == PRESETS[preset]["dataset"]
    capped = min(PRESETS[preset]["epochs"], PRESETS[preset]["fallback_epochs"])
    assert cfg["epochs"] == (1 if given else capped)


def test_sweep_writes_table_csv_and_plot(tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    rc, _, err = _run(
        capsys, ["sweep", "--only", "neuron", "--epochs", "1", "--max-batches", "2", "--out-dir", str(out)]
    )
    assert rc == 0, err
    md = (out / "sweep.md").read_text().splitlines()
    assert md[0].startswith("| group") and len(md) == 2 + 2  # header, rule, IF, LIF
    with open(out / "sweep.csv") as f:
        assert [r["config"] for r in csv.DictReader(f)] == ["IF", "LIF"]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_on_event_data_nmnist(tmp_path, capsys) -> None:
    pytest.importorskip("tonic")
    rng = torch.Generator().manual_seed(0)
    for split in ("Train", "Test"):
        for label in (0, 1):
            d = tmp_path / "data" / "NMNIST" / split / str(label)
            d.mkdir(parents=True)
            for i in range(2):
                # N-MNIST 40-bit records: x, y, polarity bit + 23-bit timestamp (us)
                xy = torch.randint(0, 34, (20, 2), generator=rng).tolist()
                rec = b"".join(bytes([x, y, (t % 2) << 7, 0, t * 10]) for t, (x, y) in enumerate(xy))
                (d / f"{i:05d}.bin").write_bytes(rec)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "nmnist", "--data-dir", str(tmp_path / "data"), "-T", "3", "--epochs", "1",
            "--batch-size", "4", "--no-progress", "--no-plots", "--out-dir", str(out)]  # fmt: skip
    rc, stdout, err = _run(capsys, argv)
    assert rc == 0, err
    assert "test accuracy" in stdout
    ck = load_checkpoint(out / "last.pt")
    assert ck["history"][0]["train_acc"] >= 0.0 and ck["config"]["dataset"] == "nmnist"
    assert ck["model"]["body.0.module.0.weight"].shape[1] == 2  # two polarity channels in


# ----------------------------------------------------------------------------- device and precision


def _no_cuda(monkeypatch) -> None:
    # Pin the answer to "no GPU" so these tests mean the same on a machine that has one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_device_auto_resolves_to_cpu_and_says_so_once(tmp_path, capsys, monkeypatch) -> None:
    _no_cuda(monkeypatch)
    out = tmp_path / "run"
    rc, stdout, err = _run(capsys, ["train", *TINY, "--no-plots", "--out-dir", str(out)])
    assert rc == 0, err
    lines = [ln for ln in stdout.splitlines() if ln.startswith("device:")]
    assert lines == ["device: cpu (no CUDA device available)"]
    assert load_checkpoint(out / "last.pt")["config"]["device"] == "cpu"  # resolved, not "auto"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--device", "bogus"], "expected auto, cpu, cuda, cuda:N or mps, got 'bogus'"),
        (["train", "--device", "cuda"], "torch.cuda.is_available() is False"),
        (["train", "--device", "cuda:1"], "torch.cuda.is_available() is False"),
        (["train", "--bf16", "--fp16"], "argument --fp16: not allowed with argument --bf16"),
    ],
)
def test_bad_device_or_precision_fails_before_training(tmp_path, capsys, monkeypatch, argv, needle) -> None:
    _no_cuda(monkeypatch)
    rc, out, err = _run(capsys, [*argv, *TINY, "--out-dir", str(tmp_path / "o")])
    assert rc == 2 and out == ""  # nothing trained, nothing printed before the error
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cuda_index_beyond_the_device_count_is_refused(tmp_path, capsys, monkeypatch) -> None:
    # Pretend one GPU: the index check must refuse cuda:7 before anything touches the device.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    rc, out, err = _run(capsys, ["train", *TINY, "--device", "cuda:7", "--out-dir", str(tmp_path / "o")])
    assert rc == 2 and out == "" and "Traceback" not in err
    assert "expected a CUDA index below the 1 visible device(s)" in err and "got cuda:7" in err


def test_pin_memory_only_for_cuda(tmp_path) -> None:
    from spikekit.train.cli import _load_data, _pin_memory

    assert [_pin_memory(d) for d in ("cpu", "mps", "cuda:0", "cuda:3")] == [False, False, True, True]
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    for device, pinned in (("cpu", False), ("cuda:0", True)):
        cfg = resolve_config(p.parse_args(["train", "--batch-size", "16"]))
        cfg["device"] = device  # as _setup_device leaves it; the loaders are only built, not read
        bundle = _load_data(cfg, print)
        assert bundle.train.pin_memory is pinned and bundle.test.pin_memory is pinned


def test_precision_flags_and_old_bf16_configs() -> None:
    from spikekit.train.cli import CLIError

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    assert resolve_config(p.parse_args(["train"]))["precision"] == "fp32"
    cfg = resolve_config(p.parse_args(["train", "--fp16"]))
    assert (cfg["precision"], cfg["bf16"]) == ("fp16", False)
    cfg = resolve_config(p.parse_args(["train", "--bf16"]))
    assert (cfg["precision"], cfg["bf16"]) == ("bf16", True)
    old = resolve_config(p.parse_args(["train"]), base={"bf16": True})  # a config from before --fp16
    assert (old["precision"], old["bf16"]) == ("bf16", True)
    with pytest.raises(CLIError, match="both bf16 and fp16"):
        resolve_config(p.parse_args(["train", "--fp16"]), base={"bf16": True})


def test_fp16_run_records_precision_and_scaler(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    # The fully connected model: fp16 convolutions are slow on a CPU.
    argv = ["train", *TINY, "--no-plots", "--fp16", "--clip-grad", "1.0", "--model", "snntorch_fc"]
    rc, _, err = _run(capsys, [*argv, "--out-dir", str(out)])
    assert rc == 0, err
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["precision"] == "fp16" and ck["precision"] == "fp16"
    assert ck["scaler"]["scale"] > 0 and ck["scaler"]["_growth_tracker"] >= 0
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in ck["history"])


def test_resume_of_a_gpu_checkpoint_on_a_cpu_machine(tmp_path, capsys, monkeypatch) -> None:
    # Rule: --device (default auto) decides where a resumed run trains, never the checkpoint;
    # a change of device kind is said in a note.
    _no_cuda(monkeypatch)
    out = tmp_path / "run"
    base = ["train", "-T", "1", "--max-batches", "2", "--no-progress", "--no-plots", "--out-dir", str(out)]
    assert _run(capsys, [*base, "--epochs", "1"])[0] == 0
    ck = load_checkpoint(out / "last.pt")
    ck["config"]["device"] = "cuda:0"  # as if written on a GPU machine, with its GPU RNG state
    ck["rng"]["cuda"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(ck, out / "last.pt")
    rc, stdout, err = _run(capsys, [*base, "--epochs", "2", "--resume", "auto"])
    assert rc == 0, err
    assert "note: the checkpoint was written on cuda:0; resuming on cpu" in stdout
    after = load_checkpoint(out / "last.pt")
    assert after["epoch"] == 2 and after["config"]["device"] == "cpu"
