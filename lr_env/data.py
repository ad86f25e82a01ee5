"""CIFAR-10 loading, train/validation splits and batching on the training device.

`load_cifar10` reads the parquet shards of a local directory or the Hugging Face Hub dataset
`uoft-cs/cifar10`, decodes every image once and caches the uint8 arrays as an uncompressed
`.npz` file. `DeviceSplit` moves a split to the device once, and `TrainBatcher` then draws
shuffled, augmented batches there without any per-batch host work.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lr_env import _cifar10_files as files
from lr_env._cifar10_files import (
    DATA_DIR_ENV,
    HUB_DATASET,
    IMAGE_SHAPE,
    SPLITS,
    Cifar10Arrays,
    DataError,
)

__all__ = [
    "CACHE_DIR_ENV",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATA_DIR_ENV",
    "HUB_DATASET",
    "Cifar10Arrays",
    "DataError",
    "DeviceSplit",
    "TrainBatcher",
    "eval_batches",
    "load_cifar10",
    "normalize",
    "resolve_data_source",
    "split_indices",
]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "LR_ENV_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/lr_env")

# Per-channel mean and standard deviation of the original CIFAR-10 training images, in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CROP_PADDING = 4


def resolve_data_source(data_dir: str | os.PathLike | None = None) -> str | Path:
    """Return the local parquet directory to read, or `HUB_DATASET` to download from the Hub.

    The order is: the `data_dir` argument, then `$LR_ENV_DATA_DIR`, then the Hub. Passing
    `HUB_DATASET` itself as `data_dir` selects the Hub even when the environment variable is set.
    """
    if data_dir is not None:
        if str(data_dir) == HUB_DATASET:
            return HUB_DATASET
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return HUB_DATASET


def load_cifar10(
    data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> Cifar10Arrays:
    """Load CIFAR-10 as uint8 arrays, decoding the images only when no valid cache exists.

    `cache_dir` defaults to `$LR_ENV_CACHE_DIR`, then `~/.cache/lr_env`. For a local directory,
    the Arrow copy that `datasets` builds while reading the shards also goes under `cache_dir`.
    Offline, a Hub source reuses the newest cached Hub copy. Raises DataError for a missing,
    empty, incomplete or corrupt source and for an unreachable Hub with no cached copy.
    """
    source = resolve_data_source(data_dir)
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    cache_root = Path(cache_dir).expanduser()

    if isinstance(source, Path):
        origin = "data_dir argument" if data_dir is not None else f"${DATA_DIR_ENV}"
        shards = files.find_shards(source, origin)
        fingerprint = files.local_fingerprint(shards)
        cached = files.read_cache(files.cache_path(cache_root, fingerprint), fingerprint)
        if cached is not None:
            return cached
        files.check_parquet_footers([path for paths in shards.values() for path in paths])
        dataset_dict = files.load_local(source, shards, cache_root)
    else:
        revision = files.hub_revision()
        if revision is None:
            cached = files.read_newest_hub_cache(cache_root)
            if cached is not None:
                return cached
        else:
            fingerprint = files.hub_fingerprint(f"{HUB_DATASET}@{revision}")
            cached = files.read_cache(files.cache_path(cache_root, fingerprint), fingerprint)
            if cached is not None:
                return cached
        dataset_dict = files.load_hub(cache_root)
        if revision is None:
            # `datasets` loaded a copy from its own cache, so key ours by its fingerprints.
            split_fingerprints = [getattr(dataset_dict[s], "_fingerprint", "") for s in SPLITS]
            fingerprint = files.hub_fingerprint(f"{HUB_DATASET}#{'/'.join(split_fingerprints)}")

    started = time.perf_counter()
    train_images, train_labels = files.decode_split(dataset_dict["train"], "train", source)
    test_images, test_labels = files.decode_split(dataset_dict["test"], "test", source)
    logger.info(
        "Decoded %d CIFAR-10 images from %s in %.1f s",
        len(train_images) + len(test_images), source, time.perf_counter() - started,
    )

    arrays = Cifar10Arrays(
        train_images, train_labels, test_images, test_labels,
        source=str(source), fingerprint=fingerprint,
    )
    files.write_cache(files.cache_path(cache_root, fingerprint), arrays)
    return arrays


def split_indices(
    labels: np.ndarray, val_size: int = 5000, subset: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split training labels into sorted, disjoint (train_idx, val_idx) index arrays.

    The validation set has `val_size / num_classes` images of each class. With `subset`, the
    training indices are `subset / num_classes` images of each class taken from the rest,
    otherwise all of the rest. A seed always gives the same validation set whatever `subset`
    is, and a larger subset contains every smaller one.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    num_classes = len(classes)
    if num_classes == 0:
        raise DataError("Cannot split an empty label array. Pass the training labels.")
    if val_size < 0 or val_size % num_classes:
        raise DataError(f"Invalid val_size={val_size}: it must be a non-negative multiple of "
                        f"the number of classes ({num_classes}), because each class gets "
                        f"val_size / {num_classes} images.")
    if subset is not None and (subset <= 0 or subset % num_classes):
        raise DataError(f"Invalid subset={subset}: it must be a positive multiple of the number "
                        f"of classes ({num_classes}).")

    rng = np.random.default_rng(seed)
    val_per_class = val_size // num_classes
    train_parts, val_parts = [], []
    for label in classes:
        members = rng.permutation(np.flatnonzero(labels == label))
        if val_per_class > len(members):
            raise DataError(f"Invalid val_size={val_size}: class {label} has only {len(members)} "
                            f"images, fewer than the {val_per_class} per class it needs.")
        rest = members[val_per_class:]
        if subset is not None:
            train_per_class = subset // num_classes
            if train_per_class > len(rest):
                raise DataError(
                    f"Invalid subset={subset}: class {label} has only {len(rest)} images left "
                    f"after validation, fewer than the {train_per_class} per class it needs."
                )
            rest = rest[:train_per_class]
        val_parts.append(members[:val_per_class])
        train_parts.append(rest)
    train_idx = np.sort(np.concatenate(train_parts)).astype(np.int64)
    val_idx = np.sort(np.concatenate(val_parts)).astype(np.int64)
    return train_idx, val_idx


class DeviceSplit:
    """A split's images as one uint8 tensor (N, 3, 32, 32) on `device` plus int64 labels (N,).

    The arrays are copied to the device once, here.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 device: torch.device | str = "cpu") -> None:
        images = np.ascontiguousarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"Expected uint8 images of shape (N, 32, 32, 3), got "
                            f"{images.dtype} {images.shape}.")
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"Expected {len(images)} integer labels, got {labels.dtype} "
                            f"{labels.shape}.")
        # Copy first and permute afterwards, so that a CUDA device does the layout change.
        moved = torch.from_numpy(images).to(device)
        self.images = moved.permute(0, 3, 1, 2).contiguous()
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.device = self.images.device

    def __len__(self) -> int:
        return self.images.shape[0]


@functools.cache
def _normalization_affine(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) with pixel * scale + shift == (pixel / 255 - mean) / std."""
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float64)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).to(torch.float32).view(1, 3, 1, 1)
    shift = (-mean / std).to(torch.float32).view(1, 3, 1, 1)
    return scale.to(device), shift.to(device)


def normalize(images_uint8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Convert uint8 (B, 3, H, W) images to `dtype`, normalised with CIFAR10_MEAN and CIFAR10_STD.

    The result stays on the input's device and the computation needs no host synchronisation.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4 or images_uint8.shape[1] != 3:
        raise ValueError(f"Expected uint8 images of shape (B, 3, H, W), got "
                         f"{images_uint8.dtype} {tuple(images_uint8.shape)}.")
    scale, shift = _normalization_affine(images_uint8.device)
    normalized = torch.addcmul(shift, images_uint8.to(torch.float32), scale)
    return normalized if dtype == torch.float32 else normalized.to(dtype)


class TrainBatcher:
    """Endless shuffled training batches drawn on the split's device.

    Each epoch uses a fresh permutation from the batcher's own seeded `torch.Generator` and
    drops the last incomplete batch. With `augment`, every image gets a random crop from the
    image padded with 4 zero pixels per side, and a horizontal flip with probability 0.5. All
    of this is batched tensor indexing, so a batch needs no host synchronisation and no copy
    from the host. The same seed gives bitwise the same sequence of batches on the same device.
    """

    def __init__(self, split: DeviceSplit, batch_size: int, seed: int, augment: bool = True,
                 channels_last: bool = False) -> None:
        if batch_size <= 0 or batch_size > len(split):
            raise ValueError(f"Invalid batch_size={batch_size}: it must be between 1 and the "
                             f"split size {len(split)}.")
        self.split = split
        self.batch_size = batch_size
        self.augment = augment
        self.channels_last = channels_last
        self.steps_per_epoch = len(split) // batch_size
        self.epoch = 0
        # NOTE: for devices other than CUDA (e.g. MPS) the random numbers come from a CPU
        # generator, so each batch copies a few small index tensors to the device.
        generator_device = split.device if split.device.type == "cuda" else torch.device("cpu")
        self.generator = torch.Generator(device=generator_device)
        self.generator.manual_seed(seed)
        self._step = 0
        self._order = self._permutation()
        self._pixel_index = torch.arange(IMAGE_SHAPE[0], device=split.device)

    def _permutation(self) -> torch.Tensor:
        order = torch.randperm(len(self.split), generator=self.generator,
                               device=self.generator.device)
        return order.to(self.split.device)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x, y): float32 normalised images (B, 3, 32, 32) and int64 labels (B,)."""
        start = self._step * self.batch_size
        indices = self._order[start:start + self.batch_size]
        # index_select is about 25x faster than advanced indexing here (torch 2.14, batch of
        # 128, one thread of a 2-core CPU).
        images = self.split.images.index_select(0, indices)
        labels = self.split.labels.index_select(0, indices)

        self._step += 1
        if self._step == self.steps_per_epoch:
            self.epoch += 1
            self._step = 0
            self._order = self._permutation()

        if self.augment:
            images = self._crop_and_flip(images)
        x = normalize(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels

    def _crop_and_flip(self, images: torch.Tensor) -> torch.Tensor:
        """Crop each image at its own random offset in the zero-padded batch, flipping some."""
        padded = F.pad(images, (CROP_PADDING,) * 4)
        offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, self.batch_size),
                                generator=self.generator, device=self.generator.device)
        flips = torch.rand(self.batch_size, generator=self.generator,
                           device=self.generator.device) < 0.5
        offsets = offsets.to(self.split.device)
        flips = flips.to(self.split.device)

        # A flipped image reads its columns right to left, so flipping costs no extra pass.
        columns = torch.where(flips[:, None], self._pixel_index.flip(0), self._pixel_index)
        rows = offsets[0][:, None] + self._pixel_index  # (B, 32)
        columns = offsets[1][:, None] + columns  # (B, 32)
        # Gather each image's pixels through one flat index per image, shared by its three
        # channels. This is about 4x faster than 4-D advanced indexing (torch 2.14, batch of
        # 128, one thread of a 2-core CPU).
        batch, channels, height, width = padded.shape
        flat_index = (rows[:, :, None] * width + columns[:, None, :]).view(batch, 1, -1)
        flat_index = flat_index.expand(batch, channels, flat_index.shape[-1])
        crops = padded.view(batch, channels, height * width).gather(2, flat_index)
        return crops.view(images.shape)


def eval_batches(split: DeviceSplit, batch_size: int = 1000,
                 limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalised, unaugmented (x, y) batches in order. The last one may be smaller.

    With `limit`, only the first `limit` images are used (all of them when `limit` exceeds
    the split size).
    """
    if batch_size <= 0:
        raise ValueError(f"Invalid batch_size={batch_size}: it must be positive.")
    if limit is not None and limit < 0:
        raise ValueError(f"Invalid limit={limit}: it must be non-negative.")
    total = len(split) if limit is None else min(limit, len(split))
    for start in range(0, total, batch_size):
        end = min(start + batch_size, total)
        yield normalize(split.images[start:end]), split.labels[start:end]
