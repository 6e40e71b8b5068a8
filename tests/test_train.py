"""Trainer: BPTT / truncated BPTT, exact resume, atomic and safe checkpoints, Ctrl-C, logging."""

from __future__ import annotations

import csv
import glob
import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import spikekit as spk
from spikekit.data import RandomShift, digits_arrays, make_loader
from spikekit.train import (
    CheckpointError,
    Classifier,
    Trainer,
    bptt_epoch,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)


def _net() -> nn.Module:
    return nn.Sequential(
        spk.layers.Flatten(),  # nn.Flatten(2) would flatten [B, C, H, W] steps wrongly in stepwise (tbptt)
        nn.Linear(64, 32),
        spk.LIF(tau=2.0),
        nn.Dropout(0.2),
        nn.Linear(32, 10),
        spk.LI(tau=2.0, tau_syn=None),
    )


def _loader(n: int = 96, bs: int = 16, seed: int = 0, augment: bool = True):
    # Random shifts draw from the RNG while batches are built: resume must account for that too.
    x, y, *_ = digits_arrays()
    return make_loader(
        TensorDataset(x[:n], y[:n]), bs, train=True, seed=seed, collate_fn=RandomShift(1) if augment else None
    )


def _trainer(out_dir=None, encoder="poisson", callbacks=(), augment=True, **kw) -> Trainer:
    seed_everything(0)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    return Trainer(
        Classifier(net, T=4, encoder=encoder), opt, _loader(augment=augment), _loader(48, 48, augment=False), scheduler=sched,
        out_dir=out_dir, progress=False, callbacks=callbacks, **kw,
    )  # fmt: skip


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.classifier.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_step_returns_loss_and_metrics() -> None:
    clf = Classifier(_net(), T=3)
    x, y, *_ = digits_arrays()
    out = clf.step((x[:8], y[:8]))
    assert set(out) == {"loss", "acc", "n"} and out["n"] == 8
    assert out["loss"].requires_grad and 0.0 <= float(out["acc"]) <= 1.0
    with pytest.raises(ValueError, match="T must be a positive int"):
        Classifier(_net(), T=0)


def test_fit_learns_and_returns_info(tmp_path) -> None:
    t = _trainer(str(tmp_path), encoder="direct", augment=False)
    before = t.test()
    info = t.fit(3)
    assert info["epoch"] == 3 and not info["interrupted"] and len(info["history"]) == 3
    assert info["test_acc"] > before["acc"] + 0.2
    assert info["history"][-1]["train_loss"] < info["history"][0]["train_loss"]
    assert [r["lr"] for r in info["history"]] == pytest.approx(
        [1e-2, 5e-3, 2.5e-3]
    )  # schedule stepped per epoch
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["test_acc"]) == pytest.approx(info["test_acc"])
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3
    assert load_checkpoint(tmp_path / "best.pt")["best_acc"] == pytest.approx(info["best_acc"])


def test_resume_equals_uninterrupted(tmp_path) -> None:
    # Poisson encoding and dropout both draw from the RNG, so this also checks RNG restoring.
    full = _trainer()
    full.fit(2)
    first = _trainer(str(tmp_path))
    first.fit(1)
    second = _trainer()
    second.out_dir = str(tmp_path)
    second.resume(str(tmp_path / "last.pt"))
    info = second.fit(2)
    assert info["epoch"] == 2
    assert _same(_weights(full), _weights(second))
    drop_time = [{k: v for k, v in r.items() if k != "time"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "time"} for r in second.history] == drop_time


class _InterruptAt:
    def __init__(self, at: int, how: str) -> None:
        self.at, self.how, self.count = at, how, 0

    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        self.count += 1
        if self.count == self.at:
            if self.how == "signal":
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
            else:
                raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["signal", "raise"])
def test_ctrl_c_saves_and_resumes_mid_epoch_exactly(tmp_path, how: str) -> None:
    full = _trainer()
    full.fit(2)
    t = _trainer(str(tmp_path), callbacks=[_InterruptAt(8, how)])  # 6 batches per epoch: stop in epoch 2
    info = t.fit(2)
    assert info["interrupted"] and info["epoch"] == 1
    ck = load_checkpoint(tmp_path / "last.pt")
    assert (ck["epoch"], ck["batch_idx"]) == (1, 2)
    resumed = _trainer(str(tmp_path))
    resumed.resume(str(tmp_path / "last.pt"))
    assert not resumed.fit(2)["interrupted"]
    assert _same(_weights(full), _weights(resumed))


def test_interrupted_save_keeps_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")  # some bytes reach the temp file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 1 and torch.equal(ck["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_crafted_checkpoint_is_refused_without_running_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "spikekit-train/1", "model": _Evil(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not a plain-data"):
        load_checkpoint(path)
    t = _trainer()
    with pytest.raises(CheckpointError):
        t.resume(str(path))
    assert not marker.exists()


def test_tbptt_window_covering_the_sequence_equals_full_bptt() -> None:
    full = _trainer(encoder="direct")
    full.fit(1)
    trunc = _trainer(encoder="direct", tbptt=4)  # T=4: one window, but through the stepwise path
    trunc.fit(1)
    a, b = _weights(full), _weights(trunc)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_tbptt_updates_every_k_steps_and_cuts_the_graph() -> None:
    t = _trainer(encoder="direct", tbptt=1)
    steps = []
    orig = t.optimizer.step
    t.optimizer.step = lambda *a, **k: (steps.append(1), orig(*a, **k))[1]  # type: ignore[method-assign]
    t.train_epoch()
    assert len(steps) == 6 * 4  # 6 batches x T/k windows
    with pytest.raises(ValueError, match="tbptt"):
        _trainer(tbptt=0)


def test_bptt_epoch_one_call() -> None:
    seed_everything(0)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    loader = _loader()
    first = bptt_epoch(net, loader, 4, opt, encoder="direct", epoch=0)
    for e in range(1, 3):
        last = bptt_epoch(net, loader, 4, opt, encoder="direct", epoch=e)
    assert set(first) == {"loss", "acc", "n"} and first["n"] == 96
    assert last["loss"] < first["loss"]


def test_bf16_autocast_and_clipping_run() -> None:
    t = _trainer(encoder="direct", bf16=True, clip_grad=0.5)
    info = t.fit(1)
    assert torch.isfinite(torch.tensor(info["train_loss"]))
    assert all(p.dtype == torch.float32 for p in t.classifier.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu(precision: str) -> None:
    t = _trainer(encoder="direct", precision=precision, clip_grad=0.5)
    info = t.fit(1)
    assert torch.isfinite(torch.tensor(info["train_loss"])) and info["train_acc"] > 0.0
    assert all(p.dtype == torch.float32 for p in t.classifier.parameters())
    assert t.scaler.is_enabled() == (precision == "fp16")  # bf16 needs no loss scaling
    with pytest.raises(ValueError, match="contradicts"):
        _trainer(bf16=True, precision="fp16")


def test_fp16_scaler_state_is_checkpointed_and_restored_exactly(tmp_path) -> None:
    full = _trainer(precision="fp16")
    full.fit(2)
    t = _trainer(str(tmp_path), precision="fp16", callbacks=[_InterruptAt(8, "raise")])
    assert t.fit(2)["interrupted"]
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["scaler"] == t.scaler.state_dict()
    assert ck["scaler"] != _trainer(precision="fp16").scaler.state_dict()  # it moved: 8 steps
    resumed = _trainer(str(tmp_path), precision="fp16")
    resumed.resume(str(tmp_path / "last.pt"))
    assert resumed.scaler.state_dict() == ck["scaler"]
    assert not resumed.fit(2)["interrupted"]
    assert resumed.scaler.state_dict() == full.scaler.state_dict()
    assert _same(_weights(full), _weights(resumed))


_SYNCS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__")


def _count_host_reads(monkeypatch) -> list[str]:
    # Calls that read a tensor back to the host, made from spikekit's own code. Not counted:
    # torch's internals, the data collates (CPU work before the copy) and the CPU kernels
    # (numba on host memory by design; a GPU run does not take that path).
    import sys

    root = os.path.dirname(spk.__file__)
    skip = tuple(os.path.join(root, d) for d in ("data", "kernels"))
    calls: list[str] = []
    for name in _SYNCS:
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            f = sys._getframe(1).f_code.co_filename
            if f.startswith(root) and not f.startswith(skip):
                calls.append(f"{_name} from {os.path.relpath(f, root)}:{sys._getframe(1).f_lineno}")
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


@pytest.mark.parametrize(("tbptt", "precision"), [(None, "fp32"), (2, "fp32"), (None, "bf16")])
def test_train_epoch_reads_nothing_back_per_batch(monkeypatch, tbptt, precision) -> None:
    counts = []
    for n in (2, 6):
        # Direct encoding: the Poisson encoder's input-range check reads back on purpose.
        t = _trainer(encoder="direct", augment=False, tbptt=tbptt, precision=precision, max_batches=n)
        calls = _count_host_reads(monkeypatch)
        out = t.train_epoch()
        monkeypatch.undo()
        assert out["n"] == n * 16 and math.isfinite(out["loss"])
        counts.append(list(calls))
    assert len(counts[1]) == len(counts[0]) <= 1, counts  # the one read of the epoch's sums


@pytest.mark.slow
def test_ddp_ranks_stop_at_the_same_batch(tmp_path) -> None:
    # Two gloo processes; only rank 1 sees the "Ctrl-C", after its first batch. Both must stop
    # after the same batch (else one waits forever in DDP's all-reduce): the second, since the
    # ranks' stop vote is read one batch after it was cast.
    import torch.multiprocessing as mp

    ctx = mp.spawn(_ddp_stop_worker, args=(str(tmp_path),), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):  # ranks that part ways hang: fail instead of waiting forever
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two ranks did not finish: one is stuck in a collective")
    seen = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert seen[0] == seen[1] == ["0", "2", "True"], seen  # epoch, batch, interrupted
    assert load_checkpoint(tmp_path / "last.pt")["batch_idx"] == 2


class _AskStop:
    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        if trainer.rank == 1 and trainer.batch_idx == 1:
            trainer._stop = True  # what the SIGINT handler does


def _ddp_stop_worker(rank: int, folder: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        # Random 8x8 "digits": scikit-learn's import would take most of the test's time.
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.rand(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g))
        net = _net()
        t = Trainer(
            Classifier(net, T=2), torch.optim.Adam(net.parameters(), 1e-2), make_loader(data, 16, train=True),
            out_dir=folder, progress=False, callbacks=[_AskStop()],
        )  # fmt: skip
        info = t.fit(2)  # 4 batches per rank and epoch
        (Path(folder) / f"rank{rank}.txt").write_text(f"{t.epoch} {t.batch_idx} {info['interrupted']}")
        dist.barrier()
    finally:
        dist.destroy_process_group()
