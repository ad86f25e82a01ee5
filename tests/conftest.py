"""Shared fixtures: a small synthetic CIFAR-10 copy in the hub dataset's parquet schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_synthetic_cifar(
    directory: Path,
    train_per_class: int = 60,
    test_per_class: int = 20,
    image_column: str = "img",
    label_column: str = "label",
    seed: int = 0,
) -> Path:
    """Write train and test parquet shards of learnable 32x32 images and return ``directory``.

    Each class has its own mean colour and a class-dependent stripe, plus noise, so a small network
    lowers its loss within a few dozen SGD steps.
    """
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    features = Features({image_column: Image(), label_column: ClassLabel(names=CLASS_NAMES)})
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        images = []
        for label in labels:
            colour = np.array([25 * label, 255 - 25 * label, 128], dtype=np.float64)
            pixels = colour + rng.normal(0, 30, size=(32, 32, 3))
            pixels[:, 3 * label : 3 * label + 3, :] = 255
            images.append(PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
        dataset = Dataset.from_dict({image_column: images, label_column: labels.tolist()}, features=features)
        dataset.to_parquet(str(directory / f"{split}-00000-of-00001.parquet"))
    return directory


@pytest.fixture(scope="session")
def synthetic_cifar_dir(tmp_path_factory) -> Path:
    """A directory of synthetic CIFAR-10 shards: 600 training and 200 test images."""
    return write_synthetic_cifar(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def synthetic_cache_dir(tmp_path_factory) -> Path:
    """A decoded-array cache shared by the tests of one session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def synthetic_data(monkeypatch, synthetic_cifar_dir, synthetic_cache_dir) -> Path:
    """Point LR_ENV_DATA_DIR and LR_ENV_CACHE_DIR at the synthetic copy; returns its directory.

    The variables are set in ``os.environ``, so subprocesses (CLI tests) inherit them.
    """
    monkeypatch.setenv("LR_ENV_DATA_DIR", str(synthetic_cifar_dir))
    monkeypatch.setenv("LR_ENV_CACHE_DIR", str(synthetic_cache_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return synthetic_cifar_dir
