"""Issue 15: a training run that never loses results, never trains silently wrong, checks its
input before it starts, and says precisely what is wrong (one test per reported case)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import spikekit as spk
from spikekit.data import RandomShift, digits_arrays, make_loader
from spikekit.train import Classifier, Trainer, load_checkpoint, save_checkpoint, seed_everything
from spikekit.train.checkpoint import RunLock
from spikekit.train.cli import main

TINY = ["train", "--epochs", "1", "-T", "2", "--max-batches", "2", "--no-progress", "--no-plots"]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors
        rc = int(e.code)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished 1-epoch tiny run (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("trust") / "run"
    assert main([*TINY, "--out-dir", str(out)]) == 0
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


# ----------------------------------------------------------------------------- 1. lost results


def test_reused_out_dir_is_refused_without_resume_or_overwrite(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    before = (out / "best.pt").read_bytes()
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--seed", "1"])
    assert rc == 2 and "already holds a run" in _one_line_error(err) and "--overwrite" in err
    assert (out / "best.pt").read_bytes() == before
    # --overwrite removes the earlier run only once everything else has been checked.
    for bad in (["--model", "no_such_net"], ["--dataset", "mnist", "--data-dir", str(tmp_path / "none")]):
        rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--overwrite", *bad])
        assert rc == 2 and (out / "best.pt").read_bytes() == before, err
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--seed", "1", "--overwrite"])
    assert rc == 0, err
    assert load_checkpoint(out / "last.pt")["config"]["seed"] == 1


def test_concurrent_run_is_locked_out_and_stale_locks_are_taken_over(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with RunLock(out):  # a live run (this process) holds the folder
        rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out)])
        assert rc == 2 and "another run" in _one_line_error(err)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid, host in ((dead.pid, socket.gethostname()), (os.getpid(), "some-other-host")):
        (out / ".lock").write_text(f'{{"pid": {pid}, "host": "{host}", "started": 0}}')
        if host != socket.gethostname():
            # From another host (a shared file system) the heartbeat decides: fresh means live...
            rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out)])
            assert rc == 2 and "some-other-host" in _one_line_error(err) and "heartbeat" in err
            old = time.time() - RunLock.STALE_AFTER_S - 1
            os.utime(out / ".lock", (old, old))  # ...and one silent for STALE_AFTER_S is stale
        lock = RunLock(out).acquire()
        assert lock.stale is not None and lock.stale["pid"] == pid
        lock.release()
    assert not (out / ".lock").exists()


def test_an_unreadable_lock_is_live_while_fresh_and_stale_when_old(tmp_path) -> None:
    # A run that has just created the lock (O_EXCL) has not written its JSON yet: not stale.
    (tmp_path / ".lock").write_text("")
    with pytest.raises(spk.train.checkpoint.RunLockError, match="just starting"):
        RunLock(tmp_path).acquire()
    old = time.time() - 60
    os.utime(tmp_path / ".lock", (old, old))  # a damaged lock left long ago: taken over
    lock = RunLock(tmp_path).acquire()
    assert lock.stale == {}
    lock.release()


def test_a_held_lock_keeps_its_heartbeat(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(RunLock, "HEARTBEAT_S", 0.02)
    lock = RunLock(tmp_path).acquire()
    old = time.time() - 1000
    os.utime(lock.path, (old, old))
    deadline = time.time() + 10
    while os.path.getmtime(lock.path) < old + 1 and time.time() < deadline:
        time.sleep(0.02)
    assert os.path.getmtime(lock.path) > old + 1  # touched again by the holder
    lock.release()
    assert not os.path.exists(lock.path)


def test_temp_files_of_a_killed_run_are_removed(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    (out / ".tmp-abc123.pt").write_bytes(b"PK partial")
    (out / "metrics.csv.tmp").write_text("epoch\n")
    rc, stdout, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    assert rc == 0, err
    assert "temp file" in stdout
    assert not list(out.glob(".tmp-*")) and not list(out.glob("*.tmp"))


def test_default_out_dir_picks_a_fresh_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "train").mkdir(parents=True)
    (tmp_path / "runs" / "train" / "best.pt").write_bytes(b"x")
    rc, stdout, err = _run(capsys, TINY)
    assert rc == 0, err
    assert (tmp_path / "runs" / "train-2" / "last.pt").is_file() and "train-2" in stdout
    assert (tmp_path / "runs" / "train" / "best.pt").read_bytes() == b"x"


# ----------------------------------------------------------------------------- 2. silently wrong


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    good = load_checkpoint(out / "last.pt")
    argv = [
        *TINY,
        "--out-dir",
        str(out),
        "--resume",
        "auto",
        "--epochs",
        "2",
        "--lr",
        "1e30",  # AdamW decay scales weights by -1e26 a step: inf by batch 2
        "--resume-override",
    ]
    rc, _, err = _run(capsys, argv)
    line = _one_line_error(err)
    assert rc == 3 and "non-finite" in line and "epoch 2" in line and "batch" in line
    assert "parameter" in line and "last.pt" in line
    kept = load_checkpoint(out / "last.pt")
    assert kept["epoch"] == 1 and all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


def test_a_neuron_state_gone_nan_stops_training_naming_the_layer(tmp_path) -> None:
    # One NaN pixel: the first LIF's membrane goes NaN, it outputs zeros, the loss stays finite
    # (the readout sees no spikes from that neuron) and the weights get no NaN gradient.
    seed_everything(0)
    net = _net()
    x, y, *_ = digits_arrays()
    x = x[:64].clone()
    x[37, 0, 3, 3] = float("nan")  # batch 3 of 4 (16 per batch, no shuffle)
    loader = torch.utils.data.DataLoader(TensorDataset(x, y[:64]), batch_size=16)
    clf = Classifier(net, T=2, encoder="direct")
    with torch.no_grad():
        # that pixel reaches hidden neuron 0 only, and the readout ignores that neuron
        net[1].weight.zero_()
        net[1].weight[0, 3 * 8 + 3] = 1.0
        net[3].weight[:, 0] = 0.0
    # Frozen input layer (its gradient through the NaN membrane is NaN); the rest trains.
    net[1].requires_grad_(False)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], 0.1)
    trainer = Trainer(clf, opt, loader, None, out_dir=str(tmp_path), progress=False)
    with pytest.raises(spk.train.NonFiniteError) as e:
        trainer.fit(1)
    msg = str(e.value)
    assert "non-finite neuron state (2.state.v) in epoch 1, batch 3 (in 1 batch(es))" in msg
    assert "non-finite loss" not in msg and "parameter" not in msg and "inputs" in msg
    assert not (tmp_path / "last.pt").exists()
    # The same data without the NaN trains through.
    x[37, 0, 3, 3] = 0.0
    loader = torch.utils.data.DataLoader(TensorDataset(x, y[:64]), batch_size=16)
    ok = Trainer(clf, opt, loader, None, progress=False)
    assert ok.fit(1)["epoch"] == 1


def test_extending_epochs_extends_the_cosine_schedule(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    assert rc == 0, err
    with open(out / "metrics.csv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs == pytest.approx([5e-3, 2.5e-3])  # cosine over 2 epochs, not lr 0 after the old end


def test_resume_with_changed_hyperparameters_is_refused_or_recorded(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    base = [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2", "--lr", "0.5", "-T", "8"]
    rc, _, err = _run(capsys, base)
    line = _one_line_error(err)
    assert rc == 2 and "lr 0.005 -> 0.5" in line and "T 2 -> 8" in line and "--resume-override" in line
    rc, _, err = _run(capsys, [*base, "--resume-override"])
    assert rc == 0, err
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["lr"] == 0.5 and ck["config"]["T"] == 8
    assert ck["config"]["resume_overrides"] == [
        {"epoch": 1, "batch": 0, "changes": {"lr": [0.005, 0.5], "T": [2, 8]}}
    ]
    assert ck["history"][1]["lr"] == pytest.approx(0.25)  # the new lr, on the cosine of 2 epochs
    assert ck["optimizer"]["param_groups"][0]["initial_lr"] == 0.5


def test_resume_keeps_the_checkpoints_options_when_not_given(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    # --lr/-T not given: the checkpoint's run continues (its T = 2, not the default 4).
    rc, _, err = _run(capsys, ["train", "--no-progress", "--no-plots", "--out-dir", str(out), "--resume", "auto",
                               "--epochs", "2"])  # fmt: skip
    assert rc == 0, err
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["T"] == 2 and ck["config"]["max_batches"] == 2 and ck["epoch"] == 2


def test_tensorboard_has_no_duplicate_steps_after_resume(finished, tmp_path, capsys) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = _copy(finished, tmp_path)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    assert rc == 0, err
    steps = []
    for events in sorted((out / "tb").glob("events.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        steps += [e.step for e in acc.Scalars("train_loss")] if "train_loss" in acc.Tags()["scalars"] else []
    assert sorted(steps) == [1, 2]
    with open(out / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]


def _net() -> nn.Module:
    return nn.Sequential(
        spk.layers.Flatten(), nn.Linear(64, 16), spk.LIF(tau=2.0), nn.Linear(16, 10), spk.LI()
    )


def _trainer(out_dir=None, callbacks=(), optimizer: str = "adam") -> Trainer:
    seed_everything(0)
    net = _net()
    opt = (
        torch.optim.Adam(net.parameters(), 1e-2)
        if optimizer == "adam"
        else torch.optim.SGD(net.parameters(), 0.1, momentum=0.9)
    )
    x, y, *_ = digits_arrays()
    loader = make_loader(TensorDataset(x[:64], y[:64]), 16, train=True, seed=0, collate_fn=RandomShift(1))
    return Trainer(Classifier(net, T=2, encoder="poisson"), opt, loader, None, out_dir=out_dir, progress=False,
                   callbacks=callbacks)  # fmt: skip


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.classifier.model.state_dict().items()}


class _Signals:
    """Sends ``signals`` to this process right after batch ``at`` (a real Ctrl-C / SIGTERM)."""

    def __init__(self, at: int, signals: list[int]) -> None:
        self.at, self.signals, self.count = at, signals, 0

    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        self.count += 1
        if self.count == self.at:
            for s in self.signals:
                os.kill(os.getpid(), s)
                time.sleep(0.001)


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT, signal.SIGINT, signal.SIGINT], [signal.SIGTERM], [signal.SIGTERM, signal.SIGINT]],
)
def test_any_number_of_interrupts_or_sigterm_resume_exactly(tmp_path, signals) -> None:
    full = _trainer()
    full.fit(2)
    t = _trainer(str(tmp_path), callbacks=[_Signals(6, signals)])  # 4 batches per epoch: stop in epoch 2
    info = t.fit(2)
    assert info["interrupted"] and info["signal"] == signal.Signals(signals[0]).name
    ck = load_checkpoint(tmp_path / "last.pt")
    assert (ck["epoch"], ck["batch_idx"]) == (1, 2)
    resumed = _trainer(str(tmp_path))
    resumed.resume(str(tmp_path / "last.pt"))
    assert not resumed.fit(2)["interrupted"]
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_progress_bars_in_a_terminal_cover_training_and_evaluation(monkeypatch, capsys) -> None:
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as in a terminal
    t = _trainer()
    t.progress = True
    t.test_loader = t.train_loader
    descs = []
    real = t._batches

    def spy(loader, desc):
        descs.append(desc)
        return real(loader, desc)

    monkeypatch.setattr(t, "_batches", spy)
    info = t.fit(1)
    assert info["epoch"] == 1 and descs == ["epoch 1", "test"]
    err = capsys.readouterr().err
    assert "epoch 1" in err and "test" in err  # tqdm drew both bars


def test_a_late_second_signal_is_ignored_once_the_run_stops() -> None:
    # A second Ctrl-C that arrives after fit() has saved and returned must not kill the exiting
    # CLI with a traceback (benchmarks/faults.py saw exit -2 and an atexit KeyboardInterrupt).
    from spikekit.train.cli import _quiet_after_stop

    class Stub:
        stop_signal = None

    t = Stub()
    before, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _quiet_after_stop(t):
        os.kill(os.getpid(), signal.SIGINT)  # not stopping yet: acts as usual
        time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is before  # restored after a run that was not stopped
    try:
        with _quiet_after_stop(t):
            t.stop_signal = "SIGINT"
            os.kill(os.getpid(), signal.SIGINT)  # while winding down: ignored
            time.sleep(0.05)
        # After the block the signals stay ignored at the C level, which Python's shutdown keeps.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGINT, before)
        signal.signal(signal.SIGTERM, before_term)


def test_sigterm_to_a_real_run_saves_and_exits_143(tmp_path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spikekit.train.cli", "train", "--epochs", "200", "-T", "2", "--no-plots",
           "--out-dir", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("epoch"):  # one epoch done: a checkpoint exists, training goes on
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "--resume auto" in err and "Traceback" not in err
    ck = load_checkpoint(out / "last.pt")
    assert ck["epoch"] >= 1 and not list(out.glob(".tmp-*")) and not (out / ".lock").exists()


# ----------------------------------------------------------------------------- 3. crashes -> messages


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--weight-decay", "-1"], "expected a number >= 0"),
        (["--seed", str(2**64)], "expected a seed in 0..2**63-1"),
        (["--device", "bogus"], "expected auto, cpu, cuda"),
        (["--neuron-opt", "tau=abc"], "--neuron-opt tau=abc"),
    ],
)
def test_bad_options_are_refused_before_training(tmp_path, capsys, extra, needle) -> None:
    rc, stdout, err = _run(capsys, [*TINY, "--out-dir", str(tmp_path / "o"), *extra])
    assert rc == 2 and needle in _one_line_error(err)
    assert "epoch" not in stdout and not (tmp_path / "o" / "last.pt").exists()


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(tmp_path / "o"), "--device", "cuda"])
    assert rc == 2 and "torch.cuda.is_available() is False" in _one_line_error(err)


@pytest.mark.parametrize("case", ["file", "unwritable", "full"])
def test_unusable_out_dir_is_found_before_the_first_epoch(tmp_path, capsys, monkeypatch, case) -> None:
    out = tmp_path / "o"
    if case == "file":
        out.write_text("not a folder")
    elif case == "unwritable":
        out = Path("/proc/spikekit-not-writable")  # even root cannot create folders in /proc
    else:
        import shutil as sh

        monkeypatch.setattr(sh, "disk_usage", lambda p: sh._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    rc, stdout, err = _run(capsys, [*TINY, "--out-dir", str(out)])
    line = _one_line_error(err)
    assert rc == 2 and str(out) in line and "epoch" not in stdout
    assert {"file": "is a file", "unwritable": "cannot be created", "full": "MiB free"}[case] in line


def _edit(finished: Path, tmp_path: Path, **changes) -> Path:
    out = _copy(finished, tmp_path)
    ck = load_checkpoint(out / "last.pt")
    for k, v in changes.items():
        if v is None:
            del ck[k]
        else:
            ck[k] = v
    save_checkpoint(ck, out / "last.pt")
    return out


def test_checkpoint_without_rng_is_named(finished, tmp_path, capsys) -> None:
    out = _edit(finished, tmp_path, rng=None)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    assert rc == 2 and "no 'rng' entry" in _one_line_error(err)


def test_checkpoint_position_past_the_epoch_is_named(finished, tmp_path, capsys) -> None:
    out = _edit(finished, tmp_path, batch_idx=500)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    assert rc == 2 and "past the end of this run's epoch" in _one_line_error(err)


def test_resume_with_another_optimizer_is_named(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    base = [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2", "--optimizer", "sgd"]
    rc, _, err = _run(capsys, base)
    assert rc == 2 and "optimizer 'adamw' -> 'sgd'" in _one_line_error(err)
    rc, _, err = _run(capsys, [*base, "--resume-override"])  # a fresh SGD state, recorded
    assert rc == 0, err
    # The library level says it too, instead of KeyError: 'momentum'.
    t = _trainer(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer state is from AdamW; this run uses SGD"):
        t.load_state_dict(load_checkpoint(finished / "last.pt") | {"model": t.classifier.model.state_dict()})


# ----------------------------------------------------------------------------- 4. clear messages


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_corrupt_checkpoint_is_called_corrupt(finished, tmp_path, capsys, damage) -> None:
    out = _copy(finished, tmp_path)
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2"])
    line = _one_line_error(err)
    assert rc == 2 and "corrupt" in line and "weights_only=False" not in line and "plain-data" not in line


def test_untrusted_checkpoint_is_called_untrusted(tmp_path, capsys) -> None:
    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"format": "spikekit-train/1", "model": Evil()}, tmp_path / "evil.pt")
    rc, _, err = _run(
        capsys, [*TINY, "--out-dir", str(tmp_path / "o"), "--resume", str(tmp_path / "evil.pt")]
    )
    line = _one_line_error(err)
    assert (
        rc == 2 and "not a plain-data" in line and "corrupt" not in line and not (tmp_path / "pwned").exists()
    )


def test_checkpoint_of_another_model_names_the_difference(finished, tmp_path, capsys) -> None:
    out = _copy(finished, tmp_path)
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2",
                               "--model", "spikingjelly_fc"])  # fmt: skip
    assert rc == 2 and "model 'digits_convnet' -> 'spikingjelly_fc'" in _one_line_error(err)
    # Applied anyway, the weights do not fit: each mismatch is named (not "Error(s) in loading").
    rc, _, err = _run(capsys, [*TINY, "--out-dir", str(out), "--resume", "auto", "--epochs", "2",
                               "--model", "spikingjelly_fc", "--resume-override"])  # fmt: skip
    line = _one_line_error(err)
    assert rc == 2 and "does not fit" in line and ("Missing key" in line or "Unexpected key" in line)


def test_out_of_range_label_is_named() -> None:
    clf = Classifier(nn.Sequential(nn.Flatten(2), nn.Linear(4, 3)), T=2)
    with pytest.raises(ValueError, match="label 3 is out of range for a model with 3 outputs"):
        clf.step((torch.rand(2, 1, 2, 2), torch.tensor([0, 3])))
