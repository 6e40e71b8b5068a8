"""Dataset loaders, each run on tiny files written in the dataset's real on-disk format."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from spikekit import data


def test_digits_split_is_fixed_stratified_and_scaled() -> None:
    a = data.digits(batch_size=50, seed=1)
    b = data.digits(batch_size=50, seed=2)
    xa, ya = a.test.dataset.tensors
    xb, yb = b.test.dataset.tensors
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # split does not move with the training seed
    assert xa.shape == (360, 1, 8, 8) and xa.dtype == torch.float32
    assert float(xa.min()) == 0.0 and float(xa.max()) == 1.0
    counts = torch.bincount(ya, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified: ~36 per class
    # train and test are disjoint: no test image appears in the training set
    xtr = a.train.dataset.tensors[0].flatten(1)
    assert not (xa.flatten(1)[:, None] == xtr[None]).all(-1).any(-1).all()
    assert len(a.train.dataset) + len(a.test.dataset) == 1797


def test_training_order_depends_on_seed_and_epoch_only() -> None:
    def order(seed: int, epoch: int) -> torch.Tensor:
        b = data.digits(batch_size=1437, seed=seed)
        b.train.sampler.set_epoch(epoch)
        return next(iter(b.train))[1]

    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4))
    assert not torch.equal(order(0, 3), order(1, 3))
    state = torch.get_rng_state()
    order(0, 0)
    assert torch.equal(state, torch.get_rng_state())  # iterating never touches the global RNG


def test_shard_sampler_partitions_exactly() -> None:
    ds = list(range(11))
    shards = [list(data.ShardSampler(ds, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == ds and sum(len(s) for s in shards) == 11


def _idx_images(path: str, imgs: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, len(imgs), 28, 28))
        f.write(imgs.astype(np.uint8).tobytes())


def _idx_labels(path: str, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 0x00000801, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize(
    ("name", "folder", "helper"),
    [("mnist", "MNIST", "mnist_dataset"), ("fmnist", "FashionMNIST", "fmnist_dataset")],
)
def test_mnist_family_from_idx_files(tmp_path, name: str, folder: str, helper: str) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    tr, te = rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    _idx_images(str(raw / "train-images-idx3-ubyte"), tr)
    _idx_labels(str(raw / "train-labels-idx1-ubyte"), np.arange(6) % 10)
    _idx_images(str(raw / "t10k-images-idx3-ubyte"), te)
    _idx_labels(str(raw / "t10k-labels-idx1-ubyte"), np.array([9, 8, 7, 6]))
    train, test = getattr(data, helper)(str(tmp_path), 3, 4)
    x, y = next(iter(test))
    assert x.shape == (4, 1, 28, 28) and y.tolist() == [9, 8, 7, 6]
    assert torch.allclose(x[0, 0], torch.tensor(te[0] / 255.0, dtype=torch.float32))
    assert sum(len(b[1]) for b in train) == 6


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_python_pickles(tmp_path, monkeypatch, name: str) -> None:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    root = tmp_path / cls.base_folder
    root.mkdir()
    key = "labels" if name == "cifar10" else "fine_labels"
    rng = np.random.default_rng(1)
    md5 = {}
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    arrays = {}
    for f in files:
        if f == cls.meta["filename"]:
            obj = {cls.meta["key"]: [f"class{i}" for i in range(10 if name == "cifar10" else 100)]}
        else:
            arrays[f] = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
            obj = {"data": arrays[f], key: [1, 2]}
        with open(root / f, "wb") as fh:
            pickle.dump(obj, fh)
        md5[f] = hashlib.md5((root / f).read_bytes()).hexdigest()
    # The real files' checksums are pinned in torchvision; point them at our tiny files.
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})
    train, test = getattr(data, f"{name}_dataset")(str(tmp_path), 4, 8)
    x, y = next(iter(test))
    test_file = cls.test_list[0][0]
    expect = torch.tensor(arrays[test_file][0].reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [1, 2]
    assert torch.allclose(x[0], expect)
    assert sum(len(b[1]) for b in train) == 2 * len(cls.train_list)


def _nmnist_bin(path: str, events: list[tuple[int, int, int, int]]) -> None:
    # 40-bit records: x (8), y (8), polarity (1) + timestamp (23 bits).
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    with open(path, "wb") as f:
        f.write(bytes(out))


def test_nmnist_binary_event_files_become_frames(tmp_path) -> None:
    pytest.importorskip("tonic")
    for split, label in (("Train", 3), ("Test", 7)):
        d = tmp_path / "NMNIST" / split / str(label)
        d.mkdir(parents=True)
        # ToFrame splits [t_first, t_last) into T bins, so the last event only marks the end.
        _nmnist_bin(str(d / "00001.bin"), [(5, 6, 1, 0), (1, 2, 0, 50), (7, 7, 1, 100)])
    b = data.neuromorphic("nmnist", str(tmp_path), T=2, batch_size=1)
    xs, y = next(iter(b.test))
    assert b.temporal and xs.shape == (2, 1, 2, 34, 34) and y.tolist() == [7]
    assert xs.sum() == 2
    assert xs[0, 0, 1, 6, 5] == 1  # [T, B, p, y, x]
    assert xs[1, 0, 0, 2, 1] == 1


def test_dvsgesture_npy_recordings(tmp_path) -> None:
    pytest.importorskip("tonic")
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        d = tmp_path / "DVSGesture" / split / "user01_fluorescent"
        d.mkdir(parents=True)
        # x, y, p, t (ms); the last event only closes the time window (see the N-MNIST test)
        ev = np.array([[10, 20, 1, 0.0], [30, 40, 0, 3.0], [11, 21, 1, 6.0], [0, 0, 0, 9.0]])
        np.save(d / "4.npy", ev)
    b = data.neuromorphic("dvsgesture", str(tmp_path), T=3, batch_size=1)
    xs, y = next(iter(b.train))
    assert xs.shape == (3, 1, 2, 128, 128) and y.tolist() == [4] and b.num_classes == 11
    assert (
        xs.sum() == 3 and xs[0, 0, 1, 20, 10] == 1 and xs[1, 0, 0, 40, 30] == 1 and xs[2, 0, 1, 21, 11] == 1
    )


def test_shd_hdf5(tmp_path) -> None:
    pytest.importorskip("tonic")
    h5py = pytest.importorskip("h5py")
    d = tmp_path / "SHD"
    d.mkdir()
    for split, labels in (("train", [3, 5]), ("test", [19])):
        with h5py.File(d / f"shd_{split}.h5", "w") as f:
            vf, vi = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
            times = f.create_dataset("spikes/times", (len(labels),), dtype=vf)
            units = f.create_dataset("spikes/units", (len(labels),), dtype=vi)
            for i in range(len(labels)):
                times[i] = np.array([0.0, 0.1, 0.3, 0.4], dtype=np.float32)  # seconds; last closes the window
                units[i] = np.array([0, 699, 350 + i, 1], dtype=np.uint16)
            f["labels"] = np.array(labels, dtype=np.uint8)
            f["extra/keys"] = np.array([b"k%d" % i for i in range(20)])
            f["extra/speaker"] = np.zeros(len(labels), dtype=np.uint8)
    b = data.neuromorphic("shd", str(tmp_path), T=4, batch_size=2)
    xs, y = next(iter(b.test))
    assert xs.shape == (4, 1, 1, 1, 700) and y.tolist() == [19] and xs.sum() == 3
    assert (b.in_channels, b.input_size) == (1, (1, 700))
    assert xs[0, 0, 0, 0, 0] == 1 and xs[1, 0, 0, 0, 699] == 1 and xs[3, 0, 0, 0, 350] == 1
    assert sum(len(b_[1]) for b_ in b.train) == 2


@pytest.mark.parametrize("name", ["mnist", "cifar10", "nmnist", "shd"])
def test_missing_dataset_says_where_and_how(tmp_path, name: str) -> None:
    if name in ("nmnist", "shd"):
        pytest.importorskip("tonic")
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load(name, data_dir=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert os.path.abspath(str(tmp_path / "nowhere")) in msg and "download" in msg
    assert not (tmp_path / "nowhere").exists()  # nothing was created or downloaded


def test_loaders_shard_under_a_process_group(tmp_path) -> None:
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        b = data.digits(batch_size=8)
        assert isinstance(b.train.sampler, DistributedSampler) and b.train.sampler.num_replicas == 1
        assert isinstance(b.test.sampler, data.ShardSampler)
    finally:
        dist.destroy_process_group()


def test_random_shift_moves_digits_by_at_most_one_pixel() -> None:
    x, y, *_ = data.digits_arrays()
    batch = [(x[i], y[i]) for i in range(64)]
    torch.manual_seed(0)
    a, ya = data.RandomShift(1)(batch)
    torch.manual_seed(0)
    b, _ = data.RandomShift(1)(batch)
    assert torch.equal(a, b) and torch.equal(ya, y[:64])  # driven by the (checkpointed) global RNG
    orig = x[:64]
    moved = 0
    for i in range(64):
        fits = [
            torch.equal(a[i], torch.nn.functional.pad(orig[i], (1, 1, 1, 1))[..., dy : dy + 8, dx : dx + 8])
            for dy in range(3)
            for dx in range(3)
        ]
        assert any(fits)
        moved += not torch.equal(a[i], orig[i])
    assert moved > 32
    loader = data.digits(batch_size=16, augment=True).train
    assert isinstance(loader.collate_fn, data.RandomShift)


def test_random_shift_is_torchvision_random_crop() -> None:
    from torchvision.transforms import v2

    shift = data.RandomShift(2)
    x = torch.arange(2 * 25, dtype=torch.float32).reshape(2, 1, 5, 5)
    torch.manual_seed(3)
    ours, _ = shift([(x[0], 0), (x[1], 1)])
    torch.manual_seed(3)
    crop = v2.RandomCrop(5, padding=2)
    assert torch.equal(ours, torch.stack([crop(x[0]), crop(x[1])]))
    assert isinstance(shift._crop((5, 5)), v2.RandomCrop)


def test_event_frames_are_cached_on_disk(tmp_path) -> None:
    pytest.importorskip("tonic")
    for split, label in (("Train", 3), ("Test", 7)):
        d = tmp_path / "NMNIST" / split / str(label)
        d.mkdir(parents=True)
        _nmnist_bin(str(d / "00001.bin"), [(5, 6, 1, 0), (1, 2, 0, 50), (7, 7, 1, 100)])
    first = next(iter(data.neuromorphic("nmnist", str(tmp_path), T=2, batch_size=1).test))[0]
    cached = list((tmp_path / "cache" / "nmnist-T2" / "test").glob("*.hdf5"))
    assert len(cached) == 1
    # The frames now come from the cache: changing the raw file does not change them.
    _nmnist_bin(str(tmp_path / "NMNIST" / "Test" / "7" / "00001.bin"), [(0, 0, 0, 0), (0, 0, 0, 100)])
    again = next(iter(data.neuromorphic("nmnist", str(tmp_path), T=2, batch_size=1).test))[0]
    assert torch.equal(first, again)
    fresh = data.neuromorphic("nmnist", str(tmp_path), T=2, batch_size=1, cache=False)
    assert float(next(iter(fresh.test))[0].sum()) == 1  # uncached: binned from the new file
    other = tmp_path / "elsewhere"
    data.neuromorphic("nmnist", str(tmp_path), T=3, batch_size=1, cache_dir=str(other))
    assert (other / "nmnist-T3" / "train").is_dir()  # one folder per T: frames of another T never mix


def test_num_workers_reaches_the_loaders() -> None:
    b = data.load("digits", batch_size=8, num_workers=2)
    assert b.train.num_workers == b.test.num_workers == 2 and b.train.persistent_workers
    assert data.load("digits", batch_size=8).train.num_workers == 0
    with pytest.raises(ValueError, match="num_workers"):
        data.make_loader(list(range(4)), 2, train=False, num_workers=-1)
