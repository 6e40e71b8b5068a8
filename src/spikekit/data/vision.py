"""Static image datasets: the embedded 8x8 digits, and MNIST / Fashion-MNIST / CIFAR via torchvision.

Every function returns loaders of ``[B, C, H, W]`` float tensors in ``[0, 1]`` (an encoder turns
them into ``[T, B, ...]``). Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from spikekit.data._loader import DataBundle, DatasetNotFoundError, make_loader

__all__ = [
    "RandomShift",
    "digits",
    "digits_arrays",
    "vision",
    "mnist_dataset",
    "fmnist_dataset",
    "cifar10_dataset",
    "cifar100_dataset",
    "VISION",
]

# name -> (torchvision class, files that must exist under data_dir, classes, channels, size)
VISION: dict[str, tuple[str, tuple[str, ...], int, int, tuple[int, int]]] = {
    "mnist": (
        "MNIST",
        ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"),
        10,
        1,
        (28, 28),
    ),
    "fmnist": (
        "FashionMNIST",
        ("FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte"),
        10,
        1,
        (28, 28),
    ),
    "cifar10": (
        "CIFAR10",
        ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
        10,
        3,
        (32, 32),
    ),
    "cifar100": ("CIFAR100", ("cifar-100-python/train", "cifar-100-python/test"), 100, 3, (32, 32)),
}


class RandomShift:
    """Collate that shifts each image by up to ``pixels`` in x and y (zero fill): cheap augmentation.

    Each sample goes through torchvision's ``transforms.v2.RandomCrop(size, padding=pixels)``
    (pad with zeros, crop the original size at a uniformly drawn offset), which is exactly a
    random shift. It stays a collate function rather than a dataset transform so that existing
    ``collate_fn=RandomShift(1)`` callers keep working and so that, with the default
    ``num_workers=0``, it draws from the global torch RNG, which the trainer checkpoints: a
    resumed run then shifts exactly as an uninterrupted one. (Worker processes draw from their
    own seeds instead, which a resume does not replay.)

    Args:
        pixels: largest shift in each direction.

    Example:
        >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 1.0
        >>> out, y = RandomShift(1)([(x[0], torch.tensor(3))])
        >>> float(out.sum()), out.shape, y.tolist()
        (1.0, torch.Size([1, 1, 3, 3]), [3])
    """

    def __init__(self, pixels: int = 1) -> None:
        self.pixels = int(pixels)
        self._crops: dict[tuple[int, int], Callable[[torch.Tensor], torch.Tensor]] = {}

    def _crop(self, size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
        if size not in self._crops:
            from torchvision.transforms import v2

            self._crops[size] = v2.RandomCrop(size, padding=self.pixels, fill=0, padding_mode="constant")
        return self._crops[size]

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack ``(image [C, H, W], label)`` samples into ``([B, C, H, W], [B])``, each image shifted."""
        x = torch.stack([b[0] for b in batch])
        y = torch.stack([torch.as_tensor(b[1]) for b in batch])
        if self.pixels <= 0:
            return x, y
        crop = self._crop((int(x.shape[-2]), int(x.shape[-1])))
        return torch.stack([crop(img) for img in x]), y


def digits_arrays(*, test_size: float = 0.2, split_seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled 8x8 digits as tensors, split once (stratified) with ``split_seed``.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images ``[N, 1, 8, 8]`` float32 in ``[0, 1]``
        (the raw 0..16 intensities divided by 16), labels int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    idx_tr, idx_te = train_test_split(
        list(range(len(y))), test_size=test_size, stratify=d.target, random_state=split_seed
    )
    return x[idx_tr], y[idx_tr], x[idx_te], y[idx_te]


def digits(
    batch_size: int = 64,
    test_batch_size: int = 256,
    *,
    seed: int = 0,
    test_size: float = 0.2,
    split_seed: int = 0,
    augment: bool = False,
    pin_memory: bool = False,
    num_workers: int = 0,
) -> DataBundle:
    """The embedded default dataset: 1797 8x8 handwritten digits, no download needed.

    The train/test split is stratified and fixed by ``split_seed`` (so every training seed is
    scored on the same 360 test images); ``seed`` only drives the shuffling.

    Args:
        batch_size: training batch size (per process).
        test_batch_size: evaluation batch size.
        seed: shuffle seed.
        test_size: fraction held out for testing.
        split_seed: seed of the stratified split.
        augment: shift training images by up to one pixel (:class:`RandomShift`, torchvision's
            ``RandomCrop`` with padding).
        pin_memory: page-locked batches (for a CUDA run).
        num_workers: DataLoader worker processes (0: load in the main process).

    Returns:
        A :class:`DataBundle` whose batches are ``([B, 1, 8, 8] float in [0, 1], [B] int64)``.

    Example:
        >>> b = digits(batch_size=32)
        >>> x, y = next(iter(b.train))
        >>> tuple(x.shape), float(x.min()) >= 0.0, float(x.max()) <= 1.0, len(b.test.dataset)
        ((32, 1, 8, 8), True, True, 360)
    """
    x_tr, y_tr, x_te, y_te = digits_arrays(test_size=test_size, split_seed=split_seed)
    return DataBundle(
        train=make_loader(
            TensorDataset(x_tr, y_tr),
            batch_size,
            train=True,
            seed=seed,
            collate_fn=RandomShift(1) if augment else None,
            num_workers=num_workers,
            pin_memory=pin_memory,
        ),
        test=make_loader(
            TensorDataset(x_te, y_te),
            test_batch_size,
            train=False,
            num_workers=num_workers,
            pin_memory=pin_memory,
        ),
        num_classes=10,
        in_channels=1,
        input_size=(8, 8),
        temporal=False,
        name="digits",
    )


def _missing(name: str, data_dir: str, looked: list[str], how: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{name} not found: looked for {', '.join(looked)} under {os.path.abspath(data_dir)!r}; {how}"
    )


def vision(
    name: str,
    data_dir: str,
    batch_size: int = 64,
    test_batch_size: int = 256,
    *,
    transforms: Callable[[Any], Any] | None = None,
    test_transforms: Callable[[Any], Any] | None = None,
    download: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataBundle:
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 through torchvision, from a local directory.

    Args:
        name: ``"mnist"``, ``"fmnist"``, ``"cifar10"`` or ``"cifar100"``.
        data_dir: the torchvision ``root`` (e.g. holding ``MNIST/raw/*-ubyte`` or
            ``cifar-10-batches-py/``).
        batch_size: training batch size (per process). test_batch_size: evaluation batch size.
        transforms: training transform (default ``ToTensor()``: ``[C, H, W]`` in ``[0, 1]``).
        test_transforms: evaluation transform (default ``ToTensor()``).
        download: let torchvision download the files when they are absent.
        seed: shuffle seed. num_workers: loader workers.
        pin_memory: page-locked batches (for a CUDA run).

    Returns:
        A :class:`DataBundle` of ``([B, C, H, W], [B])`` batches.

    Raises:
        DatasetNotFoundError: the files are absent and ``download`` is False.
    """
    import torchvision
    from torchvision.transforms import ToTensor

    if name not in VISION:
        raise ValueError(f"unknown vision dataset {name!r}; expected one of {', '.join(VISION)}")
    cls_name, needed, n_cls, ch, size = VISION[name]
    if not download:
        absent = [p for p in needed if not os.path.exists(os.path.join(data_dir, p))]
        if absent:
            raise _missing(
                name,
                data_dir,
                list(needed),
                "pass download=True (CLI: --download) on a machine with internet access, or copy "
                "the extracted torchvision files there",
            )
    cls = getattr(torchvision.datasets, cls_name)
    train_ds = cls(data_dir, train=True, download=download, transform=transforms or ToTensor())
    test_ds = cls(data_dir, train=False, download=download, transform=test_transforms or ToTensor())
    return DataBundle(
        train=make_loader(
            train_ds, batch_size, train=True, seed=seed, num_workers=num_workers, pin_memory=pin_memory
        ),
        test=make_loader(
            test_ds, test_batch_size, train=False, num_workers=num_workers, pin_memory=pin_memory
        ),
        num_classes=n_cls,
        in_channels=ch,
        input_size=size,
        temporal=False,
        name=name,
    )


def _pair(name: str) -> Callable[..., tuple[DataLoader, DataLoader]]:
    def helper(
        data_dir: str,
        batch_size: int,
        test_batch_size: int,
        transforms: Callable[[Any], Any] | None = None,
        *,
        download: bool = False,
    ) -> tuple[DataLoader, DataLoader]:
        b = vision(name, data_dir, batch_size, test_batch_size, transforms=transforms, download=download)
        return b.train, b.test

    helper.__name__ = helper.__qualname__ = f"{name}_dataset"
    helper.__doc__ = f"""snetx-style helper: ``(train_loader, test_loader)`` of {name} from ``data_dir``.

    Args:
        data_dir: torchvision root directory.
        batch_size: training batch size.
        test_batch_size: test batch size.
        transforms: training transform (default ``ToTensor()``).
        download: download when absent.

    Returns:
        ``(train_loader, test_loader)`` of ``([B, C, H, W], [B])`` batches.
    """
    return helper


mnist_dataset = _pair("mnist")
fmnist_dataset = _pair("fmnist")
cifar10_dataset = _pair("cifar10")
cifar100_dataset = _pair("cifar100")
